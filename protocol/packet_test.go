package protocol

import (
	"strings"
	"testing"
)

func mustWeather(t *testing.T, code WeatherCode, in float64) Packet {
	t.Helper()
	i, err := IntensityFromFloat(in)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Weather(code, i)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustManual(t *testing.T, c RGB, pulse int) Packet {
	t.Helper()
	p, err := Manual(c, pulse)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The literal examples of PROTOCOL.md, byte for byte.
func TestEncodeProtocolExamples(t *testing.T) {
	tests := []struct {
		p    Packet
		want string
	}{
		{Off(), "[cc:0:?:?]"},
		{mustWeather(t, 5, 7), "[cc:1:5:7]"},
		{mustWeather(t, 4, 7), "[cc:1:4:7]"},
		{mustWeather(t, 1, 4.37), "[cc:1:1:4.37]"},
		{mustWeather(t, 2, 4.5), "[cc:1:2:4.5]"},
		{mustWeather(t, 4, 10), "[cc:1:4:10]"},
		{mustWeather(t, 4, 0), "[cc:1:4:0]"},
		{mustWeather(t, 3, 9), "[cc:1:3:9]"},
		{mustWeather(t, 9, 1), "[cc:1:9:1]"},
		{mustWeather(t, 1, 0.05), "[cc:1:1:0.05]"},
		{mustManual(t, RGB{255, 162, 174}, 0), "[cc:2:255,162,174:0]"},
		{mustManual(t, RGB{255, 65, 174}, 0), "[cc:2:255,65,174:0]"},
		{mustManual(t, RGB{0, 0, 0}, 9), "[cc:2:0,0,0:9]"},
		{Reset(), "[cc:r:?:?]"},
		{Update(), "[cc:u:?:?]"},
		{Debug(true), "[cc:d:1:?]"},
		{Debug(false), "[cc:d:0:?]"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("%+v encodes as %q, want %q", tt.p, got, tt.want)
		}
		back, err := Parse(tt.want)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.want, err)
		} else if back != tt.p {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.want, back, tt.p)
		}
	}
}

func TestConstructorsReject(t *testing.T) {
	if _, err := Weather(0, 5); err == nil || !strings.Contains(err.Error(), "1-9") {
		t.Errorf("Weather(0): %v", err)
	}
	if _, err := Weather(10, 5); err == nil {
		t.Error("Weather(10) accepted")
	}
	if _, err := Weather(4, 1001); err == nil {
		t.Error("intensity 10.01 accepted")
	}
	// Codes 3 and 5-9 carry 1-9, as the original server sent.
	for _, code := range []WeatherCode{3, 5, 6, 7, 8, 9} {
		for _, in := range []Intensity{0, 99, 901, MaxIntensity} {
			if _, err := Weather(code, in); err == nil || !strings.Contains(err.Error(), "out of range 1-9 for weather code") {
				t.Errorf("Weather(%d, %s): %v", code, in, err)
			}
		}
	}
	for _, code := range []WeatherCode{1, 2, 4} {
		if _, err := Weather(code, MaxIntensity); err != nil {
			t.Errorf("Weather(%d, 10): %v", code, err)
		}
		if _, err := Weather(code, 0); err != nil {
			t.Errorf("Weather(%d, 0): %v", code, err)
		}
	}
	if _, err := Manual(RGB{}, 12); err == nil || !strings.Contains(err.Error(), "pulse 12") {
		t.Errorf("Manual pulse 12: %v", err)
	}
	if _, err := Manual(RGB{}, -1); err == nil {
		t.Error("pulse -1 accepted")
	}
}

func TestIntensityFromFloat(t *testing.T) {
	tests := []struct {
		in      float64
		want    Intensity
		wantErr string
	}{
		{0, 0, ""}, {10, 1000, ""}, {4.37, 437, ""}, {0.1, 10, ""}, {9.99, 999, ""},
		{-0.01, 0, "out of range"}, {10.01, 0, "out of range"}, {4.375, 0, "two decimals"},
	}
	for _, tt := range tests {
		got, err := IntensityFromFloat(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("IntensityFromFloat(%v) err = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("IntensityFromFloat(%v) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	if RoundIntensity(4.374) != 437 || RoundIntensity(11) != 1000 || RoundIntensity(-3) != 0 {
		t.Error("RoundIntensity does not round and clamp")
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct{ in, reason string }{
		{"", "start with"},
		{"cc:0:?:?]", "start with"},
		{"[cc:0:?:?", "end with"},
		{"[cc:0:?]", "three fields"},
		{"[cc:0:?:?:?]", "three fields"},
		{"[cc:x:?:?]", "unknown kind"},
		{"[cc:00:?:?]", "one character"},
		{"[cc:0:1:?]", "no parameters"},
		{"[cc:1:0:5]", "weather code"},
		{"[cc:1:10:5]", "weather code"},
		{"[cc:1:3:11]", "intensity"},
		{"[cc:1:3:4.50]", "trailing zeros"},
		{"[cc:1:3:4.]", "intensity"},
		{"[cc:1:3:4.123]", "intensity"},
		{"[cc:1:3:07]", "intensity"},
		{"[cc:1:3:10.5]", "intensity"},
		{"[cc:2:256,0,0:0]", "0-255"},
		{"[cc:2:1,2:0]", "r,g,b"},
		{"[cc:2:1, 2,3:0]", "0-255"},
		{"[cc:2:1,2,3:10]", "pulse"},
		{"[cc:d:2:?]", "1 or 0"},
		{"[cc:d:1:1]", "second parameter"},
		{" [cc:0:?:?]", "start with"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in)
		if err == nil {
			t.Errorf("Parse(%q) accepted", tt.in)
			continue
		}
		if !strings.Contains(err.Error(), tt.reason) {
			t.Errorf("Parse(%q) = %v, want reason containing %q", tt.in, err, tt.reason)
		}
	}
}

func TestParseColor(t *testing.T) {
	tests := []struct {
		in   string
		want RGB
		bad  bool
	}{
		{"#ff41ae", RGB{255, 65, 174}, false},
		{"#FF41AE", RGB{255, 65, 174}, false},
		{"ff41ae", RGB{255, 65, 174}, false},
		{"rgb(255, 65, 174)", RGB{255, 65, 174}, false},
		{"RGB(1,2,3)", RGB{1, 2, 3}, false},
		{"255,65,174", RGB{255, 65, 174}, false},
		{" 0 , 0 , 0 ", RGB{}, false},
		{"#ff41a", RGB{}, true},
		{"#gg0000", RGB{}, true},
		{"256,0,0", RGB{}, true},
		{"rgb(1,2,3", RGB{}, true},
		{"1,2", RGB{}, true},
		{"red", RGB{}, true},
		{"-1,0,0", RGB{}, true},
	}
	for _, tt := range tests {
		got, err := ParseColor(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseColor(%q) accepted as %v", tt.in, got)
			} else if !strings.Contains(err.Error(), tt.in) {
				t.Errorf("ParseColor(%q) error %q does not quote the input", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseColor(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	if h := (RGB{255, 65, 174}).Hex(); h != "#ff41ae" {
		t.Errorf("Hex = %q", h)
	}
}

func TestClassifyLamp(t *testing.T) {
	tests := []struct {
		in   string
		kind LampMessage
		msg  string
	}{
		{"ping", LampPing, ""},
		{"d:wifi rssi -67", LampDebug, "wifi rssi -67"},
		{"d:line\r\n", LampDebug, "line"},
		{"d:a\x1bb\tc", LampDebug, "a b c"},
		{"d:\xff", LampDebug, "\uFFFD"},
		{"d:", LampDebug, ""},
		{"PING", LampOther, ""},
		{"ping ", LampOther, ""},
		{"hello", LampOther, ""},
	}
	for _, tt := range tests {
		kind, msg := ClassifyLamp([]byte(tt.in))
		if kind != tt.kind || msg != tt.msg {
			t.Errorf("ClassifyLamp(%q) = %v, %q; want %v, %q", tt.in, kind, msg, tt.kind, tt.msg)
		}
	}
}

func TestDescribe(t *testing.T) {
	if got := mustManual(t, RGB{255, 65, 174}, 3).Describe(); got != "manual colour #ff41ae, pulse 3" {
		t.Errorf("Describe = %q", got)
	}
	if got := mustWeather(t, 4, 7).Describe(); got != "weather 4 (cloudy), intensity 7" {
		t.Errorf("Describe = %q", got)
	}
}

func BenchmarkAppendTo(b *testing.B) {
	p := mustManualB(b)
	buf := make([]byte, 0, 32)
	b.ReportAllocs()
	for b.Loop() {
		buf = p.AppendTo(buf[:0])
	}
}

func mustManualB(b *testing.B) Packet {
	p, err := Manual(RGB{255, 65, 174}, 3)
	if err != nil {
		b.Fatal(err)
	}
	return p
}
