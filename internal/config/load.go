package config

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// load reads the defaults, overlaid with the TOML file at path ("" = no
// file), overlaid with the CLOUDCLOUD_* variables of environ, without
// validating, so that Parse can apply flags first.
// Validation is skipped when a value could not be read at all: it would
// judge a mix of the values that were read and defaults the person did not
// choose, and its complaints would mislead.
func load(path string, environ []string) (Config, error) {
	cfg := Default()
	var errs []error
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("read config file: %w", err)
		}
		errs = append(errs, decodeTOML(path, data, &cfg)...)
	}
	errs = append(errs, applyEnv(&cfg, environ)...)
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return cfg, nil
}

// decodeTOML overlays the TOML document data (read from path, used in
// messages) onto cfg and returns every problem found.
//
// The document is decoded key by key through toml.Primitive rather than in
// one toml.Decode into Config, because the decoder stops at the first bad
// value, matches keys case-insensitively, and words type errors in Go terms.
// Decoding each key on its own collects every problem, keeps keys exact, and
// lets each message carry the key's line (the parser's position comes back in
// a toml.ParseError when a toml.Unmarshaler fails).
func decodeTOML(path string, data []byte, cfg *Config) []error {
	var top map[string]toml.Primitive
	md, err := toml.Decode(string(data), &top)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return []error{fmt.Errorf("%s:%d: %s", path, pe.Position.Line, pe.Message)}
		}
		return []error{fmt.Errorf("%s: %w", path, err)}
	}
	d := &fileDecoder{path: path, md: md, cfg: cfg}
	reg := settings()
	sections := make(map[string]map[string]toml.Primitive)
	done := make(map[string]bool)
	// md.Keys is in document order, so the problems come out in that order.
	for _, key := range md.Keys() {
		sec := key[0]
		if !done[sec] {
			done[sec] = true
			if prims := d.section(sec, top[sec]); prims != nil {
				sections[sec] = prims
			}
		}
		prims, ok := sections[sec]
		if len(key) < 2 || !ok {
			continue
		}
		if prim, ok := prims[key[1]]; ok && !done[sec+"."+key[1]] {
			done[sec+"."+key[1]] = true
			d.leaf(sec, key[1], prim)
		}
	}
	// Keys of inline tables (web = {listen = ":1"}) may not be listed by
	// md.Keys: pick up whatever the loop above did not reach.
	for _, sec := range reg.sections {
		prims := sections[sec]
		for _, k := range slices.Sorted(maps.Keys(prims)) {
			if !done[sec+"."+k] {
				done[sec+"."+k] = true
				d.leaf(sec, k, prims[k])
			}
		}
	}
	return d.errs
}

type fileDecoder struct {
	path string
	md   toml.MetaData
	cfg  *Config
	errs []error
}

// at is the message prefix for a position: "config.toml:12" or "config.toml".
func (d *fileDecoder) at(line int) string {
	if line > 0 {
		return fmt.Sprintf("%s:%d", d.path, line)
	}
	return d.path
}

// valueDecoder receives one key's raw TOML value from PrimitiveDecode. As a
// toml.Unmarshaler it gets the value whatever its TOML type, and its error
// comes back wrapped in a toml.ParseError carrying the key's position.
type valueDecoder struct {
	store func(data any) []error
	errs  []error
}

var errValueRejected = errors.New("value rejected")

func (v *valueDecoder) UnmarshalTOML(data any) error {
	v.errs = v.store(data)
	if len(v.errs) > 0 {
		return errValueRejected
	}
	return nil
}

// decode runs store on prim's value and returns its problems with the line
// of the key (0 if unknown).
func (d *fileDecoder) decode(prim toml.Primitive, store func(data any) []error) (int, []error) {
	vd := &valueDecoder{store: store}
	err := d.md.PrimitiveDecode(prim, vd)
	if err == nil {
		return 0, nil
	}
	line := 0
	var pe toml.ParseError
	if errors.As(err, &pe) {
		line = pe.Position.Line
	}
	if len(vd.errs) == 0 { // the decoder's own error, not ours
		return line, []error{err}
	}
	return line, vd.errs
}

// section checks a top-level key and returns its keys, or nil after
// recording why it cannot be used.
func (d *fileDecoder) section(name string, prim toml.Primitive) map[string]toml.Primitive {
	reg := settings()
	if !slices.Contains(reg.sections, name) {
		d.unknownSection(name)
		return nil
	}
	line, errs := d.decode(prim, func(data any) []error {
		if _, ok := data.(map[string]any); !ok {
			return []error{fmt.Errorf("got %s; want a table: a [%s] line with its keys below it", describe(data, false), name)}
		}
		return nil
	})
	for _, err := range errs {
		d.errs = append(d.errs, fmt.Errorf("%s: %s: %w", d.at(line), name, err))
	}
	if len(errs) > 0 {
		return nil
	}
	var prims map[string]toml.Primitive
	if err := d.md.PrimitiveDecode(prim, &prims); err != nil {
		d.errs = append(d.errs, fmt.Errorf("%s: %s: %w", d.path, name, err))
		return nil
	}
	return prims
}

// leaf decodes one section.key into the config.
func (d *fileDecoder) leaf(sec, key string, prim toml.Primitive) {
	s, ok := settings().byName[sec+"."+key]
	if !ok {
		d.unknownKey(sec, key)
		return
	}
	field := s.field(d.cfg)
	line, errs := d.decode(prim, func(data any) []error {
		return setTOML(field, data, sensitiveKey(key))
	})
	if s.fileOnly() {
		// For [[device.secrets]] the parser keeps only the last header's
		// line, which would point at the wrong entry; the messages number
		// the entries instead.
		line = 0
	}
	for _, err := range errs {
		d.errs = append(d.errs, fmt.Errorf("%s: %s: %w", d.at(line), s.name(), err))
	}
}

func (d *fileDecoder) unknownSection(name string) {
	reg := settings()
	if owners := sectionsWithKey(name); len(owners) > 0 {
		d.errs = append(d.errs, fmt.Errorf("%s: unknown key %q at the top level; it belongs below a section header: [%s]",
			d.path, name, strings.Join(owners, "] or [")))
		return
	}
	hint := ""
	if best, dist := closest(name, reg.sections); dist <= typoDistance(name) {
		hint = fmt.Sprintf("did you mean [%s]? ", best)
	}
	d.errs = append(d.errs, fmt.Errorf("%s: unknown key %q (%sknown sections: [%s])",
		d.path, name, hint, strings.Join(reg.sections, "], [")))
}

func (d *fileDecoder) unknownKey(sec, key string) {
	known := settings().keys[sec]
	hint := ""
	if owners := sectionsWithKey(key); len(owners) > 0 {
		hint = fmt.Sprintf("%s belongs in [%s]; ", key, strings.Join(owners, "] or ["))
	} else if best, dist := closest(key, known); dist <= typoDistance(key) {
		hint = fmt.Sprintf("did you mean %q? ", sec+"."+best)
	}
	d.errs = append(d.errs, fmt.Errorf("%s: unknown key %q (%sknown keys in [%s]: %s)",
		d.path, sec+"."+key, hint, sec, strings.Join(known, ", ")))
}

// sectionsWithKey lists the sections that have a key of this name.
func sectionsWithKey(key string) []string {
	var owners []string
	for _, s := range settings().list {
		if s.key == key {
			owners = append(owners, s.section)
		}
	}
	return owners
}

// typoDistance is how far a word may be from a known one to be called a typo
// of it.
func typoDistance(word string) int {
	return max(2, len(word)/3)
}

// applyEnv overlays the CLOUDCLOUD_* variables of environ onto cfg. A
// CLOUDCLOUD_ variable that is no key is an error: it is almost always a
// misspelt one that would otherwise be silently ignored.
func applyEnv(cfg *Config, environ []string) []error {
	reg := settings()
	var errs []error
	for _, entry := range environ {
		name, value, ok := strings.Cut(entry, "=")
		if !ok || !strings.HasPrefix(name, envPrefix) {
			continue
		}
		s, ok := reg.byEnv[name]
		switch {
		case !ok:
			// The value is left out: it may well be a secret.
			errs = append(errs, fmt.Errorf("env %s: unknown variable; did you mean %s? (config.example.toml lists every variable)",
				name, closestEnv(name)))
		case s.fileOnly():
			errs = append(errs, fmt.Errorf("env %s: %s can only be set in the config file, as [[%s]] tables",
				name, s.name(), s.name()))
		default:
			if err := setText(s.field(cfg), value); err != nil {
				errs = append(errs, fmt.Errorf("env %s: %w", name, err))
			}
		}
	}
	return errs
}

func closestEnv(name string) string {
	var names []string
	for _, s := range settings().list {
		if !s.fileOnly() {
			names = append(names, s.env())
		}
	}
	best, _ := closest(name, names)
	return best
}
