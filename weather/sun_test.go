package weather

import (
	"testing"
	"time"
)

func TestSunReading(t *testing.T) {
	sunrise := time.Date(2026, 3, 20, 6, 0, 0, 0, time.UTC)
	sunset := time.Date(2026, 3, 20, 18, 0, 0, 0, time.UTC)
	const transition = 40 * time.Minute
	base := Reading{CodeCloudy, 8}
	at := func(day, h, m, s int) time.Time { return time.Date(2026, 3, day, h, m, s, 0, time.UTC) }

	tests := []struct {
		name string
		now  time.Time
		want Reading
	}{
		{"night, long before sunrise", at(20, 3, 0, 0), base},
		{"a second before the sunrise window", at(20, 5, 19, 59), base},
		{"sunrise window opens at 0", at(20, 5, 20, 0), Reading{CodeSunrise, 0}},
		{"a third into the sunrise window", at(20, 5, 33, 20), Reading{CodeSunrise, 3.33}},
		{"half way to sunrise", at(20, 5, 40, 0), Reading{CodeSunrise, 5}},
		{"ten minutes to sunrise", at(20, 5, 50, 0), Reading{CodeSunrise, 7.5}},
		{"a second before sunrise", at(20, 5, 59, 59), Reading{CodeSunrise, 10}},
		{"at sunrise the weather takes over", at(20, 6, 0, 0), base},
		{"noon", at(20, 12, 0, 0), base},
		{"a second before sunset", at(20, 17, 59, 59), base},
		{"at sunset the glow starts at 0", at(20, 18, 0, 0), Reading{CodeSunset, 0}},
		{"ten minutes after sunset", at(20, 18, 10, 0), Reading{CodeSunset, 2.5}},
		{"a second before the window ends", at(20, 18, 39, 59), Reading{CodeSunset, 10}},
		{"the window ends: weather again", at(20, 18, 40, 0), base},
		{"three days later, half way to sunrise", at(23, 5, 40, 0), Reading{CodeSunrise, 5}},
		{"two days earlier, after sunset", at(18, 18, 10, 0), Reading{CodeSunset, 2.5}},
		{"next day, just after midnight", at(21, 0, 5, 0), base},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sunOnly(base, tt.now, sunrise, sunset, transition); got != tt.want {
				t.Errorf("SunReading at %s = %+v, want %+v", tt.now.Format(time.DateTime), got, tt.want)
			}
		})
	}
}

func TestSunReadingOff(t *testing.T) {
	sunrise := time.Date(2026, 3, 20, 6, 0, 0, 0, time.UTC)
	sunset := time.Date(2026, 3, 20, 18, 0, 0, 0, time.UTC)
	base := Reading{CodeRain, 7}
	tests := []struct {
		name            string
		now             time.Time
		sunrise, sunset time.Time
		transition      time.Duration
		want            Reading
	}{
		{"no transition", sunrise.Add(-time.Minute), sunrise, sunset, 0, base},
		{"negative transition", sunset.Add(time.Minute), sunrise, sunset, -time.Hour, base},
		{"no sunrise (polar night)", sunrise.Add(-time.Minute), time.Time{}, sunset, time.Hour, base},
		{"no sunset (polar day)", sunset.Add(time.Minute), sunrise, time.Time{}, time.Hour, base},
		{"sun times centuries away", sunrise.AddDate(300, 0, 0).Add(-time.Minute), sunrise, sunset, time.Hour, base},
		{"zero now", time.Time{}, sunrise, sunset, time.Hour, base},
		{"base is rounded and clamped", time.Date(2026, 3, 20, 12, 0, 0, 0, time.UTC), sunrise, sunset, time.Hour, base},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sunOnly(base, tt.now, tt.sunrise, tt.sunset, tt.transition); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	if got := sunOnly(Reading{CodeCloudy, 12.345}, sunrise.Add(6*time.Hour), sunrise, sunset, time.Hour); got != (Reading{CodeCloudy, 10}) {
		t.Errorf("an out-of-range base came back as %+v, want it clamped to 10", got)
	}
	if got := sunOnly(Reading{CodeCloudy, 4.3749}, sunrise.Add(6*time.Hour), sunrise, sunset, time.Hour); got != (Reading{CodeCloudy, 4.37}) {
		t.Errorf("base came back as %+v, want 4.37", got)
	}
}

func TestDescribeRamp(t *testing.T) {
	sunrise := time.Date(2026, 3, 20, 6, 0, 0, 0, time.UTC)
	sunset := time.Date(2026, 3, 20, 18, 0, 0, 0, time.UTC)
	tests := []struct {
		now  time.Time
		want string
	}{
		{sunrise.Add(-12 * time.Minute), "sunrise in 12 min → sunrise, intensity 7"},
		{sunrise.Add(-30 * time.Second), "sunrise in under a minute → sunrise, intensity 9.88"},
		{sunset.Add(5 * time.Minute), "sunset 5 min ago → sunset, intensity 1.25"},
	}
	for _, tt := range tests {
		ramp, ok := findSunRamp(tt.now, sunrise, sunset, 40*time.Minute)
		if !ok {
			t.Fatalf("%s: no ramp", tt.now)
		}
		r := Reading{ramp.code, roundIntensity(ramp.code, ramp.intensity)}
		if got := describeRamp(ramp, r); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func FuzzSunReading(f *testing.F) {
	f.Add(int64(1774000000), int64(1773986400), int64(1774029600), int64(40*time.Minute), 4, 8.0)
	f.Add(int64(0), int64(0), int64(0), int64(0), 0, -1.0)
	f.Add(int64(-1<<62), int64(1<<62), int64(1), int64(1<<62), 9, 1e300)
	f.Fuzz(func(t *testing.T, now, sunrise, sunset, transition int64, code int, intensity float64) {
		base := Reading{Code(code%9 + 1), intensity}
		if code < 0 {
			base.Code = CodeClear
		}
		got := sunOnly(base, time.Unix(now, 0), time.Unix(sunrise, 0), time.Unix(sunset, 0), time.Duration(transition))
		if problem := validReading(got); problem != "" {
			t.Fatalf("SunReading = %+v: %s", got, problem)
		}
	})
}
