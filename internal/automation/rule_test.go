package automation

import (
	"testing"
	"time"
)

func TestParseAt(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want At
		back string
	}{
		{"06:30", At{Clock: 390}, "06:30"},
		{"00:00", At{}, "00:00"},
		{"23:59", At{Clock: 23*60 + 59}, "23:59"},
		{"sunrise", At{Sun: "sunrise"}, "sunrise"},
		{"sunrise-30m", At{Sun: "sunrise", Offset: -30 * time.Minute}, "sunrise-30m"},
		{"sunset+1h15m", At{Sun: "sunset", Offset: 75 * time.Minute}, "sunset+1h15m"},
		{"sunset+2h", At{Sun: "sunset", Offset: 2 * time.Hour}, "sunset+2h"},
	} {
		got, err := ParseAt(tt.in)
		if err != nil || got != tt.want || got.String() != tt.back {
			t.Errorf("ParseAt(%q) = %+v %q, %v; want %+v %q", tt.in, got, got.String(), err, tt.want, tt.back)
		}
	}
	for _, bad := range []string{"", "25:00", "24:00", "06:60", "6:30", "06:3", "0630", "-1:30", "sunrise30m", "sunrise-", "sunrise-13h", "sunset+30s", "noon", "06:30:00", "+1:30"} {
		if _, err := ParseAt(bad); err == nil {
			t.Errorf("ParseAt(%q) accepted it", bad)
		}
	}
}

func TestParseDays(t *testing.T) {
	set, err := ParseDays([]string{"Mon", "fri"})
	if err != nil || !set[time.Monday] || !set[time.Friday] || set[time.Sunday] {
		t.Errorf("ParseDays(Mon, fri) = %v, %v", set, err)
	}
	if set, _ := ParseDays(nil); set != [7]bool{true, true, true, true, true, true, true} {
		t.Errorf("no days = %v, want every day", set)
	}
	for _, bad := range [][]string{{"monday"}, {"mon", "mon"}, {""}} {
		if _, err := ParseDays(bad); err == nil {
			t.Errorf("ParseDays(%q) accepted it", bad)
		}
	}
}

// FuzzParseAt: whatever it accepts prints back as itself and parses again
// to the same rule.
func FuzzParseAt(f *testing.F) {
	for _, s := range []string{"06:30", "sunrise-30m", "sunset+1h15m", "25:00", "sunrise"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAt(s)
		if err != nil {
			return
		}
		b, err := ParseAt(a.String())
		if err != nil || a != b {
			t.Fatalf("%q → %+v → %q → %+v, %v", s, a, a.String(), b, err)
		}
		if a.Sun == "" && (a.Clock < 0 || a.Clock >= 24*60) {
			t.Fatalf("%q → clock %d out of the day", s, a.Clock)
		}
	})
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"30m", "1h30m", "0s", "-5m", "9h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration("in", s, MaxIn)
		if err == nil && (d <= 0 || d > MaxIn) {
			t.Fatalf("%q accepted as %s", s, d)
		}
	})
}
