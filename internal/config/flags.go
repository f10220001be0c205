package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// Parse reads the configuration of `cloudcloud serve`: it parses args as
// flags (-config PATH and one -section.key flag per key, e.g. -web.listen),
// then overlays defaults < the -config file < the CLOUDCLOUD_* variables of
// environ < the flags given in args, and validates the result.
//
// For -h or -help it writes the usage to output and returns flag.ErrHelp.
// Other problems are only returned, not written, so the caller reports them
// once.
func Parse(name string, args []string, environ []string, output io.Writer) (Config, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// The flag package would print each error and the whole usage; the caller
	// prints the returned error instead, and usage is printed only for -h.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	configPath := fs.String("config", "", "TOML config `file`; config.example.toml documents every key")

	// Flag values are parsed into their own Config as they are seen, so a
	// bad value fails right away naming the flag; after the file and the
	// environment are applied, only the flags actually given are copied over.
	flagged := Default()
	reg := settings()
	for _, s := range reg.list {
		if s.fileOnly() {
			continue
		}
		fs.Var(&flagValue{field: s.field(&flagged)}, s.name(), s.help)
	}

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			writeUsage(output, fs)
			return Config{}, flag.ErrHelp
		}
		return Config{}, explainFlagError(name, err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q: flags go before it and every flag needs -name value (run %s -h for the list)", fs.Arg(0), name)
	}

	cfg, err := load(*configPath, environ)
	if err != nil {
		return Config{}, err
	}
	fs.Visit(func(f *flag.Flag) {
		if s, ok := reg.byName[f.Name]; ok {
			s.field(&cfg).Set(s.field(&flagged))
		}
	})
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// flagValue is the flag.Value of one key; it writes into a Config field.
type flagValue struct {
	field reflect.Value
}

func (f *flagValue) Set(text string) error { return setText(f.field, text) }

// IsBoolFlag lets a true/false key be given as -key alone, as the flag
// package does for its own booleans (-key=false turns it off).
func (f *flagValue) IsBoolFlag() bool { return f.field.IsValid() && f.field.Kind() == reflect.Bool }

func (f *flagValue) String() string {
	// The flag package calls String on a zero flagValue to learn the zero
	// default; there is no field then.
	if f == nil || !f.field.IsValid() {
		return ""
	}
	return formatText(f.field)
}

// explainFlagError adds the closest flag to the flag package's "flag
// provided but not defined" error.
func explainFlagError(name string, err error) error {
	const undefined = "flag provided but not defined: -"
	msg := err.Error()
	if !strings.HasPrefix(msg, undefined) {
		return fmt.Errorf("%w (run %s -h for the list of flags)", err, name)
	}
	flagName := strings.TrimPrefix(msg, undefined)
	names := []string{"config"}
	for _, s := range settings().list {
		if !s.fileOnly() {
			names = append(names, s.name())
		}
	}
	best, _ := closest(flagName, names)
	return fmt.Errorf("unknown flag -%s; did you mean -%s? (run %s -h for the list of flags)", flagName, best, name)
}

// writeUsage lists the flags in Config order, with their environment
// variables and defaults.
func writeUsage(w io.Writer, fs *flag.FlagSet) {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s [flags]\n\n", fs.Name())
	b.WriteString("Settings come from, lowest to highest precedence: built-in defaults, the -config file,\n")
	b.WriteString("environment variables CLOUDCLOUD_<SECTION>_<KEY>, then these flags.\n")
	b.WriteString("Durations are written like 15s or 10m, sizes like 4MiB, lists comma-separated.\n\n")
	b.WriteString("  -config file\n        TOML config file; config.example.toml documents every key\n")
	for _, s := range settings().list {
		if s.fileOnly() {
			continue
		}
		fmt.Fprintf(&b, "  -%s %s\n        %s\n        env %s", s.name(), typeName(s.typ), s.help, s.env())
		if f := fs.Lookup(s.name()); f != nil && f.DefValue != "" {
			fmt.Fprintf(&b, ", default %s", f.DefValue)
		}
		b.WriteString("\n")
	}
	b.WriteString("\n[[device.secrets]] (per-lamp named secrets) can only be set in the config file.\n")
	_, _ = io.WriteString(w, b.String()) // usage is best effort: nothing to do if the terminal is gone
}
