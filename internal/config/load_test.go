package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// writeConfig writes content to config.toml in a fresh temporary directory.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func ptr[T any](v T) *T { return &v }

func TestLoadDefaults(t *testing.T) {
	got, err := Load("", nil)
	if err != nil {
		t.Fatalf("Load with no file: %v", err)
	}
	want := Default()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load(\"\", nil) = %+v, want the defaults %+v", got, want)
	}
	// Spot checks against the documented defaults, so that a wrong
	// Default() cannot pass by agreeing with itself.
	checks := []struct {
		name      string
		got, want any
	}{
		{"web.listen", got.Web.Listen, ":8000"},
		{"web.username", got.Web.Username, "admin"},
		{"web.session_ttl", got.Web.SessionTTL.D(), 720 * time.Hour},
		{"device.listen", got.Device.Listen, ":8080"},
		{"device.handshake_timeout", got.Device.HandshakeTimeout.D(), 10 * time.Second},
		{"device.ping_interval", got.Device.PingInterval.D(), 15 * time.Second},
		{"device.keepalive_timeout", got.Device.KeepaliveTimeout.D(), 45 * time.Second},
		{"device.write_timeout", got.Device.WriteTimeout.D(), 10 * time.Second},
		{"device.max_frame_size", got.Device.MaxFrameSize, Size(4096)},
		{"device.send_queue", got.Device.SendQueue, 64},
		{"device.log_lines", got.Device.LogLines, 1000},
		{"device.auth_backoff", got.Device.AuthBackoff.D(), time.Second},
		{"device.auth_backoff_max", got.Device.AuthBackoffMax.D(), 30 * time.Second},
		{"weather.interval", got.Weather.Interval.D(), 10 * time.Minute},
		{"weather.sun_transition", got.Weather.SunTransition.D(), 40 * time.Minute},
		{"weather.endpoint", got.Weather.Endpoint, "https://api.openweathermap.org"},
		{"weather.wind_beaufort", got.Weather.WindBeaufort, 6},
		{"weather.timeout", got.Weather.Timeout.D(), 10 * time.Second},
		{"storage.dir", got.Storage.Dir, "data"},
		{"firmware.max_size", got.Firmware.MaxSize, Size(4 << 20)},
		{"log.level", got.Log.Level, "info"},
		{"log.format", got.Log.Format, "text"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("default %s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestLoadFileOverrides(t *testing.T) {
	tests := []struct {
		name  string
		toml  string
		check func(t *testing.T, c Config)
	}{
		{
			name: "strings, durations and sizes",
			toml: "[web]\nlisten = \"127.0.0.1:9000\"\nsession_ttl = \"1h\"\n[device]\nping_interval = \"5s\"\nmax_frame_size = \"8KiB\"\n[firmware]\nmax_size = 1048576\n",
			check: func(t *testing.T, c Config) {
				if c.Web.Listen != "127.0.0.1:9000" || c.Web.SessionTTL.D() != time.Hour ||
					c.Device.PingInterval.D() != 5*time.Second || c.Device.MaxFrameSize != 8*KiB || c.Firmware.MaxSize != MiB {
					t.Errorf("got %+v", c)
				}
				if c.Web.Username != "admin" {
					t.Errorf("username = %q, want the default kept", c.Web.Username)
				}
			},
		},
		{
			name: "lists, floats and ints",
			toml: "[web]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.168.1.10\"]\n[weather]\nlat = 52.52\nlon = 13\nwind_beaufort = 8\n",
			check: func(t *testing.T, c Config) {
				if !reflect.DeepEqual(c.Web.TrustedProxies, []string{"10.0.0.0/8", "192.168.1.10"}) {
					t.Errorf("trusted_proxies = %q", c.Web.TrustedProxies)
				}
				if c.Weather.Lat == nil || *c.Weather.Lat != 52.52 || c.Weather.Lon == nil || *c.Weather.Lon != 13 {
					t.Errorf("lat/lon = %v/%v", c.Weather.Lat, c.Weather.Lon)
				}
				if c.Weather.WindBeaufort != 8 {
					t.Errorf("wind_beaufort = %d", c.Weather.WindBeaufort)
				}
			},
		},
		{
			name: "named secrets",
			toml: "[device]\nauth_secret = \"shared-secret\"\n[[device.secrets]]\nname = \"bedroom\"\nsecret = \"bedroom-secret\"\n[[device.secrets]]\nname = \"kitchen\"\nsecret = \"kitchen-secret\"\n",
			check: func(t *testing.T, c Config) {
				want := []NamedSecret{{"bedroom", "bedroom-secret"}, {"kitchen", "kitchen-secret"}}
				if !reflect.DeepEqual(c.Device.Secrets, want) || c.Device.AuthSecret != "shared-secret" {
					t.Errorf("secrets = %+v, auth_secret = %q", c.Device.Secrets, c.Device.AuthSecret)
				}
			},
		},
		{
			name: "inline tables and dotted keys",
			toml: "web = {listen = \":9001\"}\ndevice.listen = \":9002\"\n",
			check: func(t *testing.T, c Config) {
				if c.Web.Listen != ":9001" || c.Device.Listen != ":9002" {
					t.Errorf("listen = %q / %q", c.Web.Listen, c.Device.Listen)
				}
			},
		},
		{
			name: "empty file",
			toml: "",
			check: func(t *testing.T, c Config) {
				if !reflect.DeepEqual(c, Default()) {
					t.Errorf("got %+v, want defaults", c)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeConfig(t, tt.toml), nil)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestLoadEnvOverridesFile(t *testing.T) {
	path := writeConfig(t, "[web]\nlisten = \":9000\"\npassword = \"from-file\"\n[device]\nauth_secret = \"file-secret\"\n[weather]\napi_key = \"file-key\"\n")
	environ := []string{
		"HOME=/root",
		"CLOUDCLOUD_WEB_PASSWORD=from-env",
		"CLOUDCLOUD_DEVICE_AUTH_SECRET=env-secret",
		"CLOUDCLOUD_WEATHER_API_KEY=env-key",
		"CLOUDCLOUD_STORAGE_DIR=/var/lib/cloudcloud",
		"CLOUDCLOUD_DEVICE_PING_INTERVAL=20s",
		"CLOUDCLOUD_DEVICE_MAX_FRAME_SIZE=2KiB",
		"CLOUDCLOUD_WEB_TRUSTED_PROXIES=10.0.0.0/8, 127.0.0.1",
		"CLOUDCLOUD_WEATHER_LAT=52.5",
		"CLOUDCLOUD_WEATHER_LON=-13.4",
		"CLOUDCLOUD_DEVICE_SEND_QUEUE=16",
	}
	c, err := Load(path, environ)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"web.listen (file only)", c.Web.Listen, ":9000"},
		{"web.password", c.Web.Password, "from-env"},
		{"device.auth_secret", c.Device.AuthSecret, "env-secret"},
		{"weather.api_key", c.Weather.APIKey, "env-key"},
		{"storage.dir", c.Storage.Dir, "/var/lib/cloudcloud"},
		{"device.ping_interval", c.Device.PingInterval.D(), 20 * time.Second},
		{"device.max_frame_size", c.Device.MaxFrameSize, 2 * KiB},
		{"web.trusted_proxies", strings.Join(c.Web.TrustedProxies, "|"), "10.0.0.0/8|127.0.0.1"},
		{"weather.lat", *c.Weather.Lat, 52.5},
		{"weather.lon", *c.Weather.Lon, -13.4},
		{"device.send_queue", c.Device.SendQueue, 16},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestLoadFileErrors(t *testing.T) {
	tests := []struct {
		name string
		toml string
		want []string // each must appear in the error
		not  []string // none may appear
	}{
		{
			name: "unknown key with suggestion",
			toml: "[web]\nlistne = \":8000\"\n",
			want: []string{`config.toml: unknown key "web.listne"`, `did you mean "web.listen"?`, "known keys in [web]: listen, username, password, trusted_proxies, session_ttl"},
		},
		{
			name: "key in the wrong section",
			toml: "[web]\nauth_secret = \"abcdefgh\"\n",
			want: []string{`unknown key "web.auth_secret"`, "auth_secret belongs in [device]"},
		},
		{
			name: "unknown section",
			toml: "[wbe]\nlisten = \":8000\"\n",
			want: []string{`unknown key "wbe"`, "did you mean [web]?", "known sections: [web], [device], [weather], [storage], [firmware], [log]"},
		},
		{
			name: "key at the top level",
			toml: "listen = \":8000\"\n",
			want: []string{`unknown key "listen" at the top level`, "[web] or [device]"},
		},
		{
			name: "keys are case-sensitive",
			toml: "[web]\nListen = \":8000\"\n",
			want: []string{`unknown key "web.Listen"`, `did you mean "web.listen"?`},
		},
		{
			name: "duration without unit, with line",
			toml: "[device]\n\n\nping_interval = 15\n",
			want: []string{`config.toml:4: device.ping_interval: "15" is not a duration; write e.g. "15s" or "1m"`},
		},
		{
			name: "boolean in quotes",
			toml: "[firmware]\ndownload_auth = \"false\"\n",
			want: []string{`config.toml:2: firmware.download_auth: got text "false"; want true or false`},
		},
		{
			name: "bad duration text",
			toml: "[device]\nkeepalive_timeout = \"abc\"\n",
			want: []string{`config.toml:2: device.keepalive_timeout: "abc" is not a duration`},
		},
		{
			name: "bad size unit",
			toml: "[firmware]\nmax_size = \"4MB\"\n",
			want: []string{`config.toml:2: firmware.max_size: "4MB" has unit "MB"`, "B, KiB, MiB or GiB"},
		},
		{
			name: "number where text is wanted",
			toml: "[web]\nlisten = 8000\n",
			want: []string{"config.toml:2: web.listen: got integer 8000; want text in quotes"},
		},
		{
			name: "text where a number is wanted",
			toml: "[device]\nsend_queue = \"64\"\n",
			want: []string{`config.toml:2: device.send_queue: got text "64"; want a whole number`},
		},
		{
			name: "list item of the wrong type",
			toml: "[web]\ntrusted_proxies = [\"10.0.0.1\", 5]\n",
			want: []string{"config.toml:2: web.trusted_proxies: item 2: got integer 5; want text in quotes"},
		},
		{
			name: "section that is not a table",
			toml: "web = 5\n",
			want: []string{"config.toml:1: web: got integer 5; want a table"},
		},
		{
			name: "secret values stay out of messages",
			toml: "[device]\nauth_secret = 12345678\n",
			want: []string{"config.toml:2: device.auth_secret: got a value of type integer; want text in quotes"},
			not:  []string{"12345678"},
		},
		{
			name: "unknown key in a named secret",
			toml: "[[device.secrets]]\nname = \"a\"\nsecret = \"abcdefgh\"\n[[device.secrets]]\nnmae = \"b\"\nsecret = \"12345678\"\n",
			want: []string{`config.toml: device.secrets: entry 2: unknown key "nmae" (known keys: name, secret)`},
		},
		{
			name: "secrets written as a plain list",
			toml: "[device]\nsecrets = [\"abc\"]\n",
			want: []string{"device.secrets: entry 1: got a value of type text; want a table with keys name, secret"},
			not:  []string{"abc"},
		},
		{
			name: "every problem is reported",
			toml: "[web]\nlisten = 1\nusername = 2\n[device]\nping_interval = \"x\"\nbogus = 1\n",
			want: []string{"config.toml:2: web.listen", "config.toml:3: web.username", "config.toml:5: device.ping_interval", `unknown key "device.bogus"`},
		},
		{
			name: "syntax error keeps its line",
			toml: "[web]\nlisten = \":8000\"\nusername = \n",
			want: []string{"config.toml:3: "},
		},
		{
			name: "duplicate key is a syntax error",
			toml: "[web]\nlisten = \":1\"\nlisten = \":2\"\n",
			want: []string{"config.toml:3: ", "already been defined"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			// Load from the directory so that messages say "config.toml".
			t.Chdir(dir)
			if err := os.WriteFile("config.toml", []byte(tt.toml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load("config.toml", nil)
			errorSays(t, err, tt.want, tt.not)
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.toml")
	_, err := Load(path, nil)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("Load(missing) = %v, want a not-exist error naming the path", err)
	}
}

func TestLoadEnvErrors(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		want    []string
		not     []string
	}{
		{
			name:    "bad duration",
			environ: []string{"CLOUDCLOUD_DEVICE_PING_INTERVAL=abc"},
			want:    []string{`env CLOUDCLOUD_DEVICE_PING_INTERVAL: "abc" is not a duration; write e.g. "15s" or "1m"`},
		},
		{
			name:    "bad bool",
			environ: []string{"CLOUDCLOUD_FIRMWARE_DOWNLOAD_AUTH=nope"},
			want:    []string{`env CLOUDCLOUD_FIRMWARE_DOWNLOAD_AUTH: "nope" is not true or false`},
		},
		{
			name:    "bad int",
			environ: []string{"CLOUDCLOUD_DEVICE_SEND_QUEUE=many"},
			want:    []string{`env CLOUDCLOUD_DEVICE_SEND_QUEUE: "many" is not a whole number`},
		},
		{
			name:    "bad float",
			environ: []string{"CLOUDCLOUD_WEATHER_LAT=north"},
			want:    []string{`env CLOUDCLOUD_WEATHER_LAT: "north" is not a number`},
		},
		{
			name:    "bad size",
			environ: []string{"CLOUDCLOUD_FIRMWARE_MAX_SIZE=4MB"},
			want:    []string{`env CLOUDCLOUD_FIRMWARE_MAX_SIZE: "4MB" has unit "MB"`},
		},
		{
			name:    "unknown variable names the closest",
			environ: []string{"CLOUDCLOUD_WEB_PASSWROD=hunter22"},
			want:    []string{"env CLOUDCLOUD_WEB_PASSWROD: unknown variable; did you mean CLOUDCLOUD_WEB_PASSWORD?"},
			not:     []string{"hunter22"},
		},
		{
			name:    "unknown variable far from any",
			environ: []string{"CLOUDCLOUD_X=1"},
			want:    []string{"env CLOUDCLOUD_X: unknown variable; did you mean CLOUDCLOUD_"},
		},
		{
			name:    "secrets are file-only",
			environ: []string{"CLOUDCLOUD_DEVICE_SECRETS=a:b"},
			want:    []string{"env CLOUDCLOUD_DEVICE_SECRETS: device.secrets can only be set in the config file"},
		},
		{
			name:    "every problem is reported",
			environ: []string{"CLOUDCLOUD_DEVICE_SEND_QUEUE=x", "CLOUDCLOUD_LOG_LEVL=debug"},
			want:    []string{"CLOUDCLOUD_DEVICE_SEND_QUEUE", "CLOUDCLOUD_LOG_LEVL: unknown variable; did you mean CLOUDCLOUD_LOG_LEVEL?"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load("", tt.environ)
			errorSays(t, err, tt.want, tt.not)
		})
	}
}

func TestLoadEnvIgnoresOtherVariables(t *testing.T) {
	environ := []string{"PATH=/bin", "cloudcloud_web_listen=:1", "CLOUDCLOUD", "NOT_CLOUDCLOUD_WEB_LISTEN=x", "=weird"}
	c, err := Load("", environ)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("got %+v, want defaults", c)
	}
}

func TestLoadEmptyEnvUnsetsOptionalFloat(t *testing.T) {
	path := writeConfig(t, "[weather]\nlat = 1.0\nlon = 2.0\n")
	c, err := Load(path, []string{"CLOUDCLOUD_WEATHER_LAT=", "CLOUDCLOUD_WEATHER_LON="})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Weather.Lat != nil || c.Weather.Lon != nil {
		t.Errorf("lat/lon = %v/%v, want both unset", c.Weather.Lat, c.Weather.Lon)
	}
}

func TestLoadValidates(t *testing.T) {
	path := writeConfig(t, "[device]\nping_interval = \"1m\"\n")
	_, err := Load(path, nil)
	if err == nil || !strings.Contains(err.Error(), "device.ping_interval: 1m must be shorter than device.keepalive_timeout (45s)") {
		t.Errorf("Load = %v, want the ping/keepalive rule", err)
	}
}

// FuzzDecodeTOML feeds arbitrary documents to the file decoder: it must
// return errors, never panic, and never leave a problem unexplained.
func FuzzDecodeTOML(f *testing.F) {
	seeds := []string{
		"",
		"[web]\nlisten = \":8000\"\n",
		"[device]\nping_interval = 15\n",
		"[[device.secrets]]\nname = \"a\"\nsecret = \"abcdefgh\"\n",
		"web = {listen = 1}\n",
		"[weather]\nlat = nan\nlon = inf\n",
		"a.b.c = 1\n[web.listen]\nx = 1\n",
		"[device]\nsecrets = [1, {name = 2}]\n",
		"[web]\ntrusted_proxies = [[1]]\n",
		"x = 1979-05-27T07:32:00Z\n[log]\nlevel = 1979-05-27\n",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		cfg := Default()
		for _, err := range decodeTOML("fuzz.toml", []byte(doc), &cfg) {
			if !strings.HasPrefix(err.Error(), "fuzz.toml") {
				t.Fatalf("error without the file name: %v", err)
			}
		}
		_ = cfg.Validate()
	})
}

// FuzzEnv sets one known variable to arbitrary text: never a panic.
func FuzzEnv(f *testing.F) {
	f.Add(uint8(0), "x")
	f.Add(uint8(7), "15s")
	f.Add(uint8(20), "NaN")
	n := len(settings().list)
	f.Fuzz(func(t *testing.T, index uint8, value string) {
		s := settings().list[int(index)%n]
		_, _ = Load("", []string{s.env() + "=" + value})
	})
}

// errorSays checks that err happened, says every want and none of not.
func errorSays(t *testing.T, err error, want, not []string) {
	t.Helper()
	if err == nil {
		t.Fatal("Load succeeded, want an error")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not contain %q:\n%v", w, err)
		}
	}
	for _, n := range not {
		if strings.Contains(err.Error(), n) {
			t.Errorf("error contains %q, which must stay out of it:\n%v", n, err)
		}
	}
}
