package protocol

import (
	"fmt"
	"strings"
)

// ParseError says what is wrong with a packet and where.
type ParseError struct {
	Input  string
	Reason string
}

func (e *ParseError) Error() string {
	in := e.Input
	if len(in) > 40 {
		in = in[:40] + "…"
	}
	return fmt.Sprintf("bad packet %q: %s", in, e.Reason)
}

// Parse reads one packet strictly: only the canonical form AppendTo writes is
// accepted (no spaces, no leading zeros, no trailing zeros in an intensity),
// so the simulator and the tests notice any drift from the protocol.
func Parse(s string) (Packet, error) {
	fail := func(format string, args ...any) (Packet, error) {
		return Packet{}, &ParseError{Input: s, Reason: fmt.Sprintf(format, args...)}
	}
	body, ok := strings.CutPrefix(s, "[cc:")
	if !ok {
		return fail(`it must start with "[cc:"`)
	}
	body, ok = strings.CutSuffix(body, "]")
	if !ok {
		return fail(`it must end with "]"`)
	}
	parts := strings.Split(body, ":")
	if len(parts) != 3 {
		return fail("it needs exactly three fields (kind:p1:p2), found %d", len(parts))
	}
	kind, p1, p2 := parts[0], parts[1], parts[2]
	if len(kind) != 1 {
		return fail("kind %q must be one character", kind)
	}
	unused := func(k Kind) (Packet, error) {
		if p1 != "?" || p2 != "?" {
			return fail("kind %c takes no parameters: write ?:?", k)
		}
		return Packet{Kind: k}, nil
	}
	switch k := Kind(kind[0]); k {
	case KindOff, KindReset, KindUpdate:
		return unused(k)
	case KindWeather:
		code, err := parseUint(p1, 9)
		if err != nil || code < 1 {
			return fail("weather code %q must be 1-9", p1)
		}
		in, err := parseIntensity(p2)
		if err != nil {
			return fail("intensity %q: %v", p2, err)
		}
		return Packet{Kind: k, Weather: WeatherCode(code), Intensity: in}, nil
	case KindManual:
		rgb := strings.Split(p1, ",")
		if len(rgb) != 3 {
			return fail("colour %q must be r,g,b", p1)
		}
		var c [3]uint8
		for i, v := range rgb {
			n, err := parseUint(v, 255)
			if err != nil {
				return fail("colour channel %q must be 0-255", v)
			}
			c[i] = uint8(n)
		}
		pulse, err := parseUint(p2, 9)
		if err != nil {
			return fail("pulse %q must be 0-9", p2)
		}
		return Packet{Kind: k, Color: RGB{c[0], c[1], c[2]}, Pulse: uint8(pulse)}, nil
	case KindDebug:
		if p2 != "?" {
			return fail("debug takes no second parameter: write ?")
		}
		switch p1 {
		case "1":
			return Packet{Kind: k, On: true}, nil
		case "0":
			return Packet{Kind: k}, nil
		}
		return fail("debug switch %q must be 1 or 0", p1)
	}
	return fail("unknown kind %q (known: 0 1 2 r u d)", kind)
}

// parseUint reads a canonical decimal number (no sign, no leading zeros) up to max.
func parseUint(s string, max int) (int, error) {
	if s == "" || len(s) > 1 && s[0] == '0' || len(s) > 3 {
		return 0, fmt.Errorf("not a canonical number")
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("not a number")
		}
		n = n*10 + int(s[i]-'0')
	}
	if n > max {
		return 0, fmt.Errorf("above %d", max)
	}
	return n, nil
}

func parseIntensity(s string) (Intensity, error) {
	whole, frac, hasFrac := strings.Cut(s, ".")
	w, err := parseUint(whole, 10)
	if err != nil {
		return 0, fmt.Errorf("must be 0-10 with at most two decimals")
	}
	in := Intensity(w * 100)
	if !hasFrac {
		return in, nil
	}
	if len(frac) < 1 || len(frac) > 2 || frac[len(frac)-1] == '0' {
		return 0, fmt.Errorf("decimals must be 1 or 2 digits without trailing zeros")
	}
	for i, scale := 0, 10; i < len(frac); i, scale = i+1, scale/10 {
		if frac[i] < '0' || frac[i] > '9' {
			return 0, fmt.Errorf("decimals must be digits")
		}
		in += Intensity(int(frac[i]-'0') * scale)
	}
	if in > MaxIntensity {
		return 0, fmt.Errorf("above 10")
	}
	return in, nil
}

// ParseColor reads a colour as the API accepts it: "#rrggbb" or "rrggbb" in
// any case, "rgb(r,g,b)", or "r,g,b" (spaces allowed around numbers).
func ParseColor(s string) (RGB, error) {
	t := strings.TrimSpace(s)
	if h, ok := strings.CutPrefix(t, "#"); ok || len(t) == 6 && isHex(t) {
		if !ok {
			h = t
		}
		if len(h) != 6 || !isHex(h) {
			return RGB{}, fmt.Errorf("colour %q: write #rrggbb with six hex digits, rgb(r,g,b) or r,g,b", s)
		}
		return RGB{hexByte(h[0:2]), hexByte(h[2:4]), hexByte(h[4:6])}, nil
	}
	lower := strings.ToLower(t)
	if inner, ok := strings.CutPrefix(lower, "rgb("); ok {
		inner, ok = strings.CutSuffix(inner, ")")
		if !ok {
			return RGB{}, fmt.Errorf("colour %q: rgb( needs a closing )", s)
		}
		t = inner
	}
	parts := strings.Split(t, ",")
	if len(parts) != 3 {
		return RGB{}, fmt.Errorf("colour %q: write #rrggbb, rgb(r,g,b) or r,g,b", s)
	}
	var c [3]uint8
	for i, p := range parts {
		p = strings.TrimSpace(p)
		n := 0
		if p == "" || len(p) > 3 {
			return RGB{}, fmt.Errorf("colour %q: channel %q must be a whole number 0-255", s, p)
		}
		for j := 0; j < len(p); j++ {
			if p[j] < '0' || p[j] > '9' {
				return RGB{}, fmt.Errorf("colour %q: channel %q must be a whole number 0-255", s, p)
			}
			n = n*10 + int(p[j]-'0')
		}
		if n > 255 {
			return RGB{}, fmt.Errorf("colour %q: channel %d is above 255", s, n)
		}
		c[i] = uint8(n)
	}
	return RGB{c[0], c[1], c[2]}, nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if hexVal(s[i]) < 0 {
			return false
		}
	}
	return true
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func hexByte(s string) uint8 { return uint8(hexVal(s[0])<<4 | hexVal(s[1])) }
