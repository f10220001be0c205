package device

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseLampParams(t *testing.T) {
	tests := []struct {
		query, lamp, fw string
		ignored         int
	}{
		{"", "", "", 0},
		{"lamp=kitchen&fw=1.4.2", "kitchen", "1.4.2", 0},
		{"lamp=Living-Room_2", "living-room_2", "", 0},
		{"lamp=" + strings.Repeat("a", 32), strings.Repeat("a", 32), "", 0},
		{"lamp=" + strings.Repeat("a", 33), "", "", 1},
		{"lamp=", "", "", 1},
		{"lamp=bed%20room", "", "", 1},
		{"lamp=k%C3%BCche", "", "", 1},
		{"lamp=a&lamp=b", "a", "", 0},
		{"fw=v2.0.0-rc1%2Babc", "", "v2.0.0-rc1+abc", 0},
		{"fw=1 2", "", "", 1},
		{"fw=" + strings.Repeat("1", 33), "", "", 1},
		{"secret=x&other=1", "", "", 0},
		{"lamp=ok&fw=%zz", "ok", "", 1}, // a broken escape: the rest is still read
	}
	for _, tt := range tests {
		p := ParseLampParams(tt.query)
		if p.Lamp != tt.lamp || p.Firmware != tt.fw || len(p.Ignored) != tt.ignored {
			t.Errorf("ParseLampParams(%q) = %+v, want lamp %q fw %q and %d ignored", tt.query, p, tt.lamp, tt.fw, tt.ignored)
		}
	}
}

func FuzzParseLampParams(f *testing.F) {
	for _, s := range []string{"", "lamp=kitchen&fw=1.4.2", "lamp=%zz", "fw=a;b", "lamp=A&lamp=b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		p := ParseLampParams(q)
		if p.Lamp != "" {
			if err := CheckLampID(p.Lamp); err != nil {
				t.Fatalf("accepted lamp id %q: %v", p.Lamp, err)
			}
		}
		if p.Firmware != "" {
			if err := checkFirmware(p.Firmware); err != nil {
				t.Fatalf("accepted firmware %q: %v", p.Firmware, err)
			}
		}
		_ = fmt.Sprint(p.Ignored)
	})
}
