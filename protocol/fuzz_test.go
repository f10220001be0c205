package protocol

import (
	"testing"
	"unicode/utf8"
)

// FuzzParse: the parser never panics, and whatever it accepts encodes back to
// exactly the same bytes (the parser accepts only canonical packets).
func FuzzParse(f *testing.F) {
	for _, s := range []string{"[cc:0:?:?]", "[cc:1:5:7]", "[cc:1:1:4.37]", "[cc:2:255,162,174:0]",
		"[cc:r:?:?]", "[cc:u:?:?]", "[cc:d:1:?]", "[cc:1:3:4.50]", "[cc:2:1,2,3:10]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			return
		}
		if got := p.String(); got != s {
			t.Fatalf("Parse(%q) = %+v which encodes as %q", s, p, got)
		}
		again, err := Parse(p.String())
		if err != nil || again != p {
			t.Fatalf("round trip of %q: %+v, %v", s, again, err)
		}
	})
}

// FuzzLampInput covers everything a lamp can send after the handshake and the
// handshake secret itself: classification never panics, log lines are valid
// UTF-8 without line breaks, and colour input never panics.
func FuzzLampInput(f *testing.F) {
	for _, s := range []string{"ping", "d:hello", "d:\xff\r\n", " secret \r\n", "rgb(1,2,3)", "#ABCDEF"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, msg := ClassifyLamp(b)
		if kind == LampDebug {
			if !utf8.ValidString(msg) {
				t.Fatalf("log line %q is not valid UTF-8", msg)
			}
			for _, r := range msg {
				if r == '\n' || r == '\r' {
					t.Fatalf("log line %q has a line break", msg)
				}
			}
		}
		_ = TrimSecret(b)
		if c, err := ParseColor(string(b)); err == nil {
			if back, err := ParseColor(c.Hex()); err != nil || back != c {
				t.Fatalf("colour %q -> %v does not round trip", b, c)
			}
		}
	})
}
