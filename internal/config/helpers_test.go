package config

// Load is Parse without flags: the defaults, the TOML file at path ("" = no
// file) and the CLOUDCLOUD_* variables of environ, validated.
func Load(path string, environ []string) (Config, error) {
	cfg, err := load(path, environ)
	if err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}
