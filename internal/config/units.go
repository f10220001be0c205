package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written as Go duration text ("2s", "10m") in
// the config file, the environment and flags.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String returns d as the shortest Go duration text: "720h", not "720h0m0s".
func (d Duration) String() string {
	s := time.Duration(d).String()
	// time.Duration.String always spells out the smaller units; "10m" reads
	// better than "10m0s" in usage text and error messages.
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	v, err := time.ParseDuration(s)
	if err != nil {
		example := `"15s" or "1m"`
		// A bare number is the most common mistake: suggest it with a unit.
		if _, numErr := strconv.ParseUint(s, 10, 32); numErr == nil {
			example = fmt.Sprintf(`"%ss" or "1m"`, s)
		}
		return fmt.Errorf("%q is not a duration; write e.g. %s (units: ms, s, m, h)", string(text), example)
	}
	*d = Duration(v)
	return nil
}

// Size is a number of bytes, written as "4MiB", "64KiB", "512B" or plain
// bytes ("65536"). Only the binary units B, KiB, MiB and GiB are accepted,
// so that "4MB" cannot silently mean 4,000,000 or 4,194,304.
type Size int64

// Size units.
const (
	B   Size = 1
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
)

// sizeUnits lists the units from largest to smallest, the order String tries them in.
var sizeUnits = []struct {
	name string
	size Size
}{{"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}, {"B", B}}

const sizeHelp = `sizes take B, KiB, MiB or GiB (powers of 1024) or plain bytes, e.g. "4MiB", "64KiB" or "65536"`

// String returns s in the largest unit that represents it exactly: "4MiB", "4097B".
func (s Size) String() string {
	if s == 0 {
		return "0B"
	}
	for _, u := range sizeUnits {
		if s%u.size == 0 {
			return strconv.FormatInt(int64(s/u.size), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B" // unreachable: B divides everything
}

// MarshalText implements encoding.TextMarshaler.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Size) UnmarshalText(text []byte) error {
	v, err := parseSize(string(text))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

func parseSize(text string) (Size, error) {
	t := strings.TrimSpace(text)
	digits := 0
	for digits < len(t) && t[digits] >= '0' && t[digits] <= '9' {
		digits++
	}
	if digits == 0 {
		return 0, fmt.Errorf("%q is not a size; %s", text, sizeHelp)
	}
	n, err := strconv.ParseInt(t[:digits], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is too large for a size; %s", text, sizeHelp)
	}
	unitName := strings.TrimSpace(t[digits:])
	if strings.HasPrefix(unitName, ".") || strings.HasPrefix(unitName, ",") {
		return 0, fmt.Errorf("%q is not a whole number; use a smaller unit (\"1536KiB\", not \"1.5MiB\"); %s", text, sizeHelp)
	}
	unit := Size(0)
	if unitName == "" {
		unit = B
	}
	for _, u := range sizeUnits {
		if u.name == unitName {
			unit = u.size
		}
	}
	if unit == 0 {
		return 0, fmt.Errorf("%q has unit %q; %s", text, unitName, sizeHelp)
	}
	if n > math.MaxInt64/int64(unit) {
		return 0, fmt.Errorf("%q is too large for a size; %s", text, sizeHelp)
	}
	return Size(n) * unit, nil
}
