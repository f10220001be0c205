package config

import (
	"strings"
	"testing"
	"time"
)

func TestDurationText(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		text    string // MarshalText of the result
		wantErr string
	}{
		{in: "2s", want: 2 * time.Second, text: "2s"},
		{in: "10m", want: 10 * time.Minute, text: "10m"},
		{in: "720h", want: 720 * time.Hour, text: "720h"},
		{in: "1h30m", want: 90 * time.Minute, text: "1h30m"},
		{in: "1h0m30s", want: time.Hour + 30*time.Second, text: "1h0m30s"},
		{in: "500ms", want: 500 * time.Millisecond, text: "500ms"},
		{in: " 15s ", want: 15 * time.Second, text: "15s"},
		{in: "0", want: 0, text: "0s"},
		{in: "15", wantErr: `"15" is not a duration; write e.g. "15s" or "1m"`},
		{in: "30", wantErr: `write e.g. "30s"`},
		{in: "abc", wantErr: `"abc" is not a duration; write e.g. "15s" or "1m"`},
		{in: "1d", wantErr: `"1d" is not a duration`},
		{in: "", wantErr: `"" is not a duration`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var d Duration
			err := d.UnmarshalText([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("UnmarshalText(%q) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("UnmarshalText(%q): %v", tt.in, err)
			}
			if d.D() != tt.want {
				t.Errorf("UnmarshalText(%q) = %v, want %v", tt.in, d.D(), tt.want)
			}
			text, err := d.MarshalText()
			if err != nil || string(text) != tt.text {
				t.Errorf("MarshalText() = %q, %v, want %q", text, err, tt.text)
			}
			var back Duration
			if err := back.UnmarshalText(text); err != nil || back != d {
				t.Errorf("round trip of %q gave %v, %v", text, back, err)
			}
		})
	}
}

func TestSizeText(t *testing.T) {
	tests := []struct {
		in      string
		want    Size
		text    string
		wantErr string
	}{
		{in: "4MiB", want: 4 << 20, text: "4MiB"},
		{in: "64KiB", want: 64 << 10, text: "64KiB"},
		{in: "512B", want: 512, text: "512B"},
		{in: "65536", want: 65536, text: "64KiB"},
		{in: "4097", want: 4097, text: "4097B"},
		{in: "1GiB", want: 1 << 30, text: "1GiB"},
		{in: "2048MiB", want: 2 << 30, text: "2GiB"},
		{in: "4 MiB", want: 4 << 20, text: "4MiB"},
		{in: "0", want: 0, text: "0B"},
		{in: "4MB", wantErr: `"4MB" has unit "MB"; sizes take B, KiB, MiB or GiB`},
		{in: "4KB", wantErr: `unit "KB"`},
		{in: "4mib", wantErr: `unit "mib"`},
		{in: "1.5MiB", wantErr: `"1.5MiB" is not a whole number`},
		{in: "-5", wantErr: `"-5" is not a size`},
		{in: "MiB", wantErr: `"MiB" is not a size`},
		{in: "", wantErr: `"" is not a size`},
		{in: "99999999999999999999", wantErr: "too large"},
		{in: "9000000000GiB", wantErr: "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var s Size
			err := s.UnmarshalText([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("UnmarshalText(%q) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("UnmarshalText(%q): %v", tt.in, err)
			}
			if s != tt.want {
				t.Errorf("UnmarshalText(%q) = %d, want %d", tt.in, s, tt.want)
			}
			text, err := s.MarshalText()
			if err != nil || string(text) != tt.text {
				t.Errorf("MarshalText() = %q, %v, want %q", text, err, tt.text)
			}
			var back Size
			if err := back.UnmarshalText(text); err != nil || back != s {
				t.Errorf("round trip of %q gave %d, %v", text, back, err)
			}
		})
	}
}

// FuzzParseSize checks that any text either parses to a size that survives a
// format/parse round trip or fails with an error, and never panics.
func FuzzParseSize(f *testing.F) {
	for _, seed := range []string{"4MiB", "64KiB", "512B", "65536", "4MB", "1.5MiB", "", "-1", "9223372036854775807", "8589934592GiB", " 1 KiB "} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		var s Size
		if err := s.UnmarshalText([]byte(text)); err != nil {
			if err.Error() == "" {
				t.Fatalf("empty error for %q", text)
			}
			return
		}
		if s < 0 {
			t.Fatalf("%q parsed to negative size %d", text, s)
		}
		formatted, _ := s.MarshalText()
		var back Size
		if err := back.UnmarshalText(formatted); err != nil || back != s {
			t.Fatalf("%q -> %d -> %q -> %d, %v", text, s, formatted, back, err)
		}
	})
}

// FuzzParseDuration does the same for durations.
func FuzzParseDuration(f *testing.F) {
	for _, seed := range []string{"15s", "10m", "720h", "1h0m30s", "15", "abc", "", "-5s", "9999999h"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		var d Duration
		if err := d.UnmarshalText([]byte(text)); err != nil {
			return
		}
		formatted, _ := d.MarshalText()
		var back Duration
		if err := back.UnmarshalText(formatted); err != nil || back != d {
			t.Fatalf("%q -> %v -> %q -> %v, %v", text, d.D(), formatted, back.D(), err)
		}
	})
}
