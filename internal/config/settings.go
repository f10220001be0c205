package config

import (
	"encoding"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// envPrefix starts every environment variable this package reads.
const envPrefix = "CLOUDCLOUD_"

// setting is one configurable key (section.key), found by reflection over
// Config so that a new struct field is a new key in the file, the environment
// and the flags without further code.
type setting struct {
	section string       // "device"
	key     string       // "ping_interval"
	index   []int        // field path from Config to the value
	typ     reflect.Type // the field's type
	help    string       // the field's `help` tag
}

// name is the key as written in messages and flags: "device.ping_interval".
func (s setting) name() string { return s.section + "." + s.key }

// env is the environment variable: "CLOUDCLOUD_DEVICE_PING_INTERVAL".
func (s setting) env() string { return envPrefix + strings.ToUpper(s.section+"_"+s.key) }

// fileOnly reports keys that hold tables ([[device.secrets]]): they have no
// sensible one-line text form, so only the file can set them.
func (s setting) fileOnly() bool {
	return s.typ.Kind() == reflect.Slice && s.typ.Elem().Kind() == reflect.Struct
}

// field returns the addressable value of s inside c.
func (s setting) field(c *Config) reflect.Value {
	return reflect.ValueOf(c).Elem().FieldByIndex(s.index)
}

// sensitiveKey reports keys whose values must not appear in error messages,
// which end up in logs.
func sensitiveKey(key string) bool {
	return strings.Contains(key, "secret") || strings.Contains(key, "password") || strings.Contains(key, "api_key")
}

type registry struct {
	list     []setting
	byName   map[string]setting  // "web.listen"
	byEnv    map[string]setting  // "CLOUDCLOUD_WEB_LISTEN"
	sections []string            // in Config field order
	keys     map[string][]string // section -> keys in field order
}

var settings = sync.OnceValue(func() *registry {
	r := &registry{
		byName: make(map[string]setting),
		byEnv:  make(map[string]setting),
		keys:   make(map[string][]string),
	}
	top := reflect.TypeFor[Config]()
	for i := range top.NumField() {
		sf := top.Field(i)
		sec := tomlName(sf)
		r.sections = append(r.sections, sec)
		for j := range sf.Type.NumField() {
			kf := sf.Type.Field(j)
			s := setting{section: sec, key: tomlName(kf), index: []int{i, j}, typ: kf.Type, help: kf.Tag.Get("help")}
			r.list = append(r.list, s)
			r.byName[s.name()] = s
			r.byEnv[s.env()] = s
			r.keys[sec] = append(r.keys[sec], s.key)
		}
	}
	return r
})

// tomlName returns the `toml` tag of a field. Every Config field has one; a
// missing tag is a programming error that the package tests catch.
func tomlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if name == "" {
		panic(fmt.Sprintf("config: field %s has no toml tag", f.Name))
	}
	return name
}

var (
	durationType = reflect.TypeFor[Duration]()
	sizeType     = reflect.TypeFor[Size]()
)

// want describes what a value of type t is written as, for error messages.
func want(t reflect.Type) string {
	switch {
	case t == durationType:
		return `a duration in quotes, e.g. "15s"`
	case t == sizeType:
		return `a size, e.g. "4MiB" or 65536`
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "text in quotes"
	case reflect.Int:
		return "a whole number"
	case reflect.Pointer:
		return "a number, e.g. 52.52"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Struct {
			return "a list of tables with keys " + strings.Join(structKeys(t.Elem()), ", ")
		}
		return `a list of text, e.g. ["10.0.0.0/8", "192.168.1.10"]`
	}
	return t.String()
}

// typeName names the type for usage text: "-web.listen string".
func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t == sizeType:
		return "size"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return "float"
	case reflect.Slice:
		return "list"
	}
	return t.Kind().String()
}

func structKeys(t reflect.Type) []string {
	keys := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		keys = append(keys, tomlName(t.Field(i)))
	}
	return keys
}

// describe names a decoded TOML value for error messages: `integer 8000`.
// hide leaves the value out (secrets).
func describe(data any, hide bool) string {
	var kind, value string
	switch d := data.(type) {
	case string:
		kind, value = "text", strconv.Quote(d)
	case int64:
		kind, value = "integer", strconv.FormatInt(d, 10)
	case float64:
		kind, value = "float", strconv.FormatFloat(d, 'g', -1, 64)
	case bool:
		kind, value = "boolean", strconv.FormatBool(d)
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "a list of tables"
	case []any:
		return "a list"
	case time.Time:
		kind, value = "date/time", d.String()
	default:
		return fmt.Sprintf("a %T", data)
	}
	if hide {
		return "a value of type " + kind
	}
	return kind + " " + value
}

func wrongType(t reflect.Type, data any, hide bool) error {
	return fmt.Errorf("got %s; want %s", describe(data, hide), want(t))
}

// setTOML stores a value decoded by the TOML parser into v, converting it by
// v's type. It returns every problem it finds, each one a complete sentence
// without the key (the caller prefixes it).
func setTOML(v reflect.Value, data any, hide bool) []error {
	if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		var text string
		switch d := data.(type) {
		case string:
			text = d
		case int64:
			// Plain bytes for a Size; for a Duration it yields the
			// "write e.g. "15s"" hint instead of a type error.
			text = strconv.FormatInt(d, 10)
		default:
			return []error{wrongType(v.Type(), data, hide)}
		}
		if err := u.UnmarshalText([]byte(text)); err != nil {
			return []error{err}
		}
		return nil
	}
	switch v.Kind() {
	case reflect.Bool:
		d, ok := data.(bool)
		if !ok {
			return []error{wrongType(v.Type(), data, hide)}
		}
		v.SetBool(d)
	case reflect.String:
		d, ok := data.(string)
		if !ok {
			return []error{wrongType(v.Type(), data, hide)}
		}
		v.SetString(d)
	case reflect.Int:
		d, ok := data.(int64)
		if !ok {
			return []error{wrongType(v.Type(), data, hide)}
		}
		if v.OverflowInt(d) {
			return []error{fmt.Errorf("%d is too large", d)}
		}
		v.SetInt(d)
	case reflect.Pointer:
		var f float64
		switch d := data.(type) {
		case float64:
			f = d
		case int64:
			f = float64(d)
		default:
			return []error{wrongType(v.Type(), data, hide)}
		}
		p := reflect.New(v.Type().Elem())
		p.Elem().SetFloat(f)
		v.Set(p)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Struct {
			return setTables(v, data, hide)
		}
		items, ok := data.([]any)
		if !ok {
			return []error{wrongType(v.Type(), data, hide)}
		}
		out := reflect.MakeSlice(v.Type(), len(items), len(items))
		var errs []error
		for i, item := range items {
			for _, err := range setTOML(out.Index(i), item, hide) {
				errs = append(errs, fmt.Errorf("item %d: %w", i+1, err))
			}
		}
		if len(errs) > 0 {
			return errs
		}
		if len(items) == 0 {
			v.SetZero() // "[]" means the same as leaving the key out
			return nil
		}
		v.Set(out)
	default:
		return []error{fmt.Errorf("values of type %s are not supported", v.Type())}
	}
	return nil
}

// setTables stores an array of tables ([[device.secrets]]) into a slice of
// structs, checking each table's keys strictly.
func setTables(v reflect.Value, data any, hide bool) []error {
	var tables []map[string]any
	switch d := data.(type) {
	case []map[string]any:
		tables = d
	case []any: // secrets = [{name = "a", secret = "..."}]
		for i, item := range d {
			table, ok := item.(map[string]any)
			if !ok {
				return []error{fmt.Errorf("entry %d: got %s; want a table with keys %s",
					i+1, describe(item, hide), strings.Join(structKeys(v.Type().Elem()), ", "))}
			}
			tables = append(tables, table)
		}
	default:
		return []error{wrongType(v.Type(), data, hide)}
	}
	elemType := v.Type().Elem()
	keys := structKeys(elemType)
	out := reflect.MakeSlice(v.Type(), len(tables), len(tables))
	var errs []error
	for i, table := range tables {
		for _, k := range slices.Sorted(maps.Keys(table)) {
			fieldIndex := slices.Index(keys, k)
			if fieldIndex < 0 {
				errs = append(errs, fmt.Errorf("entry %d: unknown key %q (known keys: %s)", i+1, k, strings.Join(keys, ", ")))
				continue
			}
			for _, err := range setTOML(out.Index(i).Field(fieldIndex), table[k], hide || sensitiveKey(k)) {
				errs = append(errs, fmt.Errorf("entry %d: %s: %w", i+1, k, err))
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	v.Set(out)
	return nil
}

// setText stores text from an environment variable or a flag into v.
// Lists are comma-separated.
func setText(v reflect.Value, text string) error {
	if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return u.UnmarshalText([]byte(text))
	}
	switch v.Kind() {
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(text))
		if err != nil {
			return fmt.Errorf("%q is not true or false", text)
		}
		v.SetBool(b)
	case reflect.String:
		v.SetString(text)
	case reflect.Int:
		n, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
		if err != nil || v.OverflowInt(n) {
			return fmt.Errorf("%q is not a whole number", text)
		}
		v.SetInt(n)
	case reflect.Pointer:
		t := strings.TrimSpace(text)
		if t == "" { // empty means unset, as in the file
			v.SetZero()
			return nil
		}
		f, err := strconv.ParseFloat(t, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number; write e.g. 52.52", text)
		}
		p := reflect.New(v.Type().Elem())
		p.Elem().SetFloat(f)
		v.Set(p)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("can only be set in the config file")
		}
		var items []string
		for item := range strings.SplitSeq(text, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		v.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("values of type %s are not supported", v.Type())
	}
	return nil
}

// formatText is the inverse of setText, for usage text and flag defaults.
func formatText(v reflect.Value) string {
	if m, ok := v.Interface().(encoding.TextMarshaler); ok {
		text, err := m.MarshalText()
		if err != nil {
			return ""
		}
		return string(text)
	}
	switch v.Kind() {
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.String:
		return v.String()
	case reflect.Int:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Pointer:
		if v.IsNil() {
			return ""
		}
		return strconv.FormatFloat(v.Elem().Float(), 'g', -1, 64)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.String {
			return strings.Join(v.Interface().([]string), ",")
		}
	}
	return ""
}

// closest returns the option nearest to word by edit distance, for
// "did you mean" hints, and that distance.
func closest(word string, options []string) (string, int) {
	best, bestDist := "", -1
	for _, o := range options {
		if d := editDistance(word, o); bestDist < 0 || d < bestDist {
			best, bestDist = o, d
		}
	}
	return best, bestDist
}

// editDistance is the Levenshtein distance between a and b, case-insensitive
// so that "LISTEN" is close to "listen".
func editDistance(a, b string) int {
	ra, rb := []rune(strings.ToLower(a)), []rune(strings.ToLower(b))
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
