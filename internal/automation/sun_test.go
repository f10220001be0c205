package automation

import (
	"testing"
	"time"
)

// TestSunTimes compares with almanac times (timeanddate.com, rounded to
// the minute); two minutes either way is within what a lamp needs.
func TestSunTimes(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	sydney, err := time.LoadLocation("Australia/Sydney")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		day       time.Time
		lat, lon  float64
		rise, set string // local HH:MM
	}{
		{"Berlin midsummer", time.Date(2026, 6, 21, 0, 0, 0, 0, berlin), 52.52, 13.405, "04:43", "21:33"},
		{"Berlin midwinter", time.Date(2026, 12, 21, 0, 0, 0, 0, berlin), 52.52, 13.405, "08:15", "15:54"},
		{"Berlin spring-forward day", time.Date(2026, 3, 29, 0, 0, 0, 0, berlin), 52.52, 13.405, "06:48", "19:34"},
		{"Sydney", time.Date(2026, 1, 15, 0, 0, 0, 0, sydney), -33.87, 151.21, "05:58", "20:08"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rise, set, ok := SunTimes(tt.day, tt.lat, tt.lon)
			if !ok {
				t.Fatal("no sunrise")
			}
			near := func(what string, got time.Time, want string) {
				w, _ := time.ParseInLocation("2006-01-02 15:04", tt.day.Format("2006-01-02")+" "+want, tt.day.Location())
				if d := got.Sub(w); d < -2*time.Minute || d > 2*time.Minute {
					t.Errorf("%s = %s, want %s ± 2 min", what, got.Format("2006-01-02 15:04:05 MST"), want)
				}
			}
			near("sunrise", rise, tt.rise)
			near("sunset", set, tt.set)
		})
	}
	if _, _, ok := SunTimes(time.Date(2026, 12, 21, 0, 0, 0, 0, time.UTC), 78.22, 15.65); ok {
		t.Error("Longyearbyen has a sunrise at midwinter; want none (polar night)")
	}
}
