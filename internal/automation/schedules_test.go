package automation

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/invalid"
	"github.com/cloudcloud/cloudcloud/internal/state"
)

func TestScheduleRunsAtItsTimeOnItsDays(t *testing.T) {
	// 2026-11-30 is a Monday.
	e := newEnv(t, "", time.Date(2026, 11, 29, 20, 0, 0, 0, berlin(t)))
	sc := e.schedule(`{"name": "Wake up", "enabled": true, "at": "06:30", "days": ["mon", "tue"],
		"do": {"state": {"mode": "manual", "color": "#ffb36b"}}}`)
	if sc.ID != "wake-up" || sc.NextRun == nil || !sc.NextRun.Equal(e.local("2026-11-30 06:30")) {
		t.Fatalf("created %+v, want id wake-up next run Monday 06:30", sc)
	}
	e.tickEvery(e.local("2026-11-29 20:00"), e.local("2026-12-02 12:00"), time.Minute)
	if got := e.lamps.Writes(); len(got) != 2 || got[0] != "shared [cc:2:255,179,107:0]" {
		t.Fatalf("writes %q, want the colour on Monday and Tuesday only", got)
	}
	sc, _ = e.sched.Get("wake-up")
	if want := e.local("2026-12-07 06:30"); !sc.NextRun.Equal(want) {
		t.Errorf("next run %s, want next Monday %s", sc.NextRun, want)
	}
}

// TestDaylightSaving: a 02:30 schedule runs once on the nights the clocks
// jump, not twice and not never, in Europe/Berlin.
func TestDaylightSaving(t *testing.T) {
	loc := berlin(t)
	for _, tt := range []struct {
		name     string
		from, to time.Time
		want     string // when it ran, local
	}{
		// 02:00 CET becomes 03:00 CEST: 02:30 does not exist; it runs at 03:30.
		{"spring forward", time.Date(2026, 3, 28, 22, 0, 0, 0, loc), time.Date(2026, 3, 29, 6, 0, 0, 0, loc), "2026-03-29T03:30:00+02:00"},
		// 03:00 CEST becomes 02:00 CET: 02:30 happens twice; it runs once.
		{"fall back", time.Date(2026, 10, 24, 22, 0, 0, 0, loc), time.Date(2026, 10, 25, 6, 0, 0, 0, loc), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "", tt.from)
			e.schedule(`{"name": "Night", "enabled": true, "at": "02:30", "do": {"state": {"mode": "off"}}}`)
			sc, _ := e.sched.Get("night")
			if tt.want != "" && sc.NextRun.Format(time.RFC3339) != tt.want {
				t.Errorf("next run %s, want %s", sc.NextRun.Format(time.RFC3339), tt.want)
			}
			var ranAt []string
			for at := tt.from; !at.After(tt.to); at = at.Add(time.Minute) {
				before := len(e.lamps.Writes())
				e.clock.Set(at)
				e.sched.Tick(at)
				if len(e.lamps.Writes()) > before {
					ranAt = append(ranAt, at.In(loc).Format(time.RFC3339))
				}
			}
			if len(ranAt) != 1 {
				t.Fatalf("ran at %v, want exactly once", ranAt)
			}
			if tt.want != "" && ranAt[0] != tt.want {
				t.Errorf("ran at %s, want %s", ranAt[0], tt.want)
			}
			if !strings.Contains(ranAt[0], "T02:30:00") && tt.want == "" {
				t.Errorf("ran at %s, want at 02:30 (either of them)", ranAt[0])
			}
		})
	}
}

// TestCatchUpAfterDowntime: a server down while two schedules were due
// shows, once started, what the later one set, and logs both catch-ups.
func TestCatchUpAfterDowntime(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, dir, time.Date(2026, 11, 30, 5, 0, 0, 0, berlin(t)))
	e.schedule(`{"name": "Morning", "enabled": true, "at": "06:30", "do": {"state": {"mode": "manual", "color": "#ff0000"}}}`)
	e.schedule(`{"name": "Later", "enabled": true, "at": "08:00", "do": {"state": {"mode": "manual", "color": "#0000ff"}}}`)
	e.schedule(`{"name": "Evening", "enabled": true, "at": "18:00", "do": {"state": {"mode": "off"}}}`)
	e.sched.Tick(e.local("2026-11-30 05:00"))
	if w := e.lamps.Writes(); len(w) != 0 {
		t.Fatalf("ran %q before anything was due", w)
	}

	// The server is down from 05:00 to 09:00.
	e2 := newEnv(t, dir, e.local("2026-11-30 09:00"))
	e2.sched.Tick(e.local("2026-11-30 09:00"))
	if got := e2.lamps.Shared().Packet; got != "[cc:2:0,0,255:0]" {
		t.Errorf("after the restart the lamps show %s, want the 08:00 blue", got)
	}
	logged := e2.log.String()
	for _, id := range []string{"morning", "later"} {
		if !strings.Contains(logged, "caught up a schedule") || !strings.Contains(logged, "schedule="+id) {
			t.Errorf("the log does not say it caught up %s:\n%s", id, logged)
		}
	}
	if strings.Contains(logged, "schedule=evening") {
		t.Errorf("the evening schedule, not due yet, ran:\n%s", logged)
	}
	// Caught up once: the next start runs nothing again.
	e3 := newEnv(t, dir, e.local("2026-11-30 09:05"))
	e3.sched.Tick(e.local("2026-11-30 09:05"))
	if w := e3.lamps.Writes(); len(w) != 0 {
		t.Errorf("a second restart ran %q again", w)
	}
}

func TestSunSchedule(t *testing.T) {
	e := newEnv(t, "", time.Date(2026, 6, 20, 12, 0, 0, 0, berlin(t)))
	sc := e.schedule(`{"name": "Dusk", "enabled": true, "at": "sunset-30m", "do": {"state": {"mode": "weather"}}}`)
	rise, set, _ := SunTimes(e.local("2026-06-20 12:00"), 52.52, 13.405)
	_ = rise
	if want := set.Add(-30 * time.Minute); !sc.NextRun.Equal(want) {
		t.Errorf("next run %s, want %s (sunset %s - 30m)", sc.NextRun, want, set)
	}
}

func TestPerLampSchedule(t *testing.T) {
	e := newEnv(t, "", time.Date(2026, 11, 30, 21, 0, 0, 0, berlin(t)))
	e.schedule(`{"name": "Bedroom off", "enabled": true, "at": "22:00", "lamps": ["bedroom"], "do": {"state": {"mode": "off"}}}`)
	e.tickEvery(e.local("2026-11-30 21:59"), e.local("2026-11-30 22:01"), time.Minute)
	if w := e.lamps.Writes(); len(w) != 1 || w[0] != "bedroom [cc:0:?:?]" {
		t.Errorf("writes %q, want the bedroom off alone", w)
	}
}

func TestDisabledScheduleDoesNotRun(t *testing.T) {
	e := newEnv(t, "", time.Date(2026, 11, 30, 21, 0, 0, 0, berlin(t)))
	sc := e.schedule(`{"name": "Off", "enabled": false, "at": "22:00", "do": {"state": {"mode": "off"}}}`)
	if sc.NextRun != nil {
		t.Errorf("a disabled schedule has next run %s", sc.NextRun)
	}
	e.tickEvery(e.local("2026-11-30 21:59"), e.local("2026-11-30 22:01"), time.Minute)
	if w := e.lamps.Writes(); len(w) != 0 {
		t.Errorf("writes %q, want none", w)
	}
}

// TestSleepTimerFadesToOff: "in": "30m" with a 10 minute fade dims the lamp
// in steps, turns it off, and removes itself.
func TestSleepTimerFadesToOff(t *testing.T) {
	start := time.Date(2026, 11, 30, 22, 0, 0, 0, berlin(t))
	e := newEnv(t, "", start)
	red, manual := must(t, "#c80000"), state.ModeManual
	if _, err := e.lamps.ApplyShared(state.Change{Mode: &manual, Color: &red}); err != nil {
		t.Fatal(err)
	}
	sc := e.schedule(`{"name": "Sleep", "enabled": true, "in": "30m", "fade": "10m", "do": {"state": {"mode": "off"}}}`)
	if !sc.NextRun.Equal(start.Add(30 * time.Minute)) {
		t.Fatalf("next run %s, want %s", sc.NextRun, start.Add(30*time.Minute))
	}
	e.tickEvery(start, start.Add(45*time.Minute), time.Second)
	w := e.lamps.Writes()[1:]
	if len(w) < 100 || len(w) > 201 {
		t.Errorf("%d writes for a fade of 200 visible steps over 600 s; want one per visible change, about 200", len(w))
	}
	if last := w[len(w)-1]; last != "shared [cc:0:?:?]" {
		t.Errorf("the last write is %q, want off", last)
	}
	// Every step darker than the one before.
	prev := 201
	for _, p := range w[:len(w)-1] {
		var r, g, b, pulse int
		if _, err := fmtSscanf(p, "shared [cc:2:%d,%d,%d:%d]", &r, &g, &b, &pulse); err != nil {
			t.Fatalf("step %q: %v", p, err)
		}
		if r >= prev {
			t.Errorf("step %q is not darker than red %d", p, prev)
		}
		prev = r
	}
	if _, err := e.sched.Get("sleep"); err == nil {
		t.Error("the timer is still there after it ran")
	}
	if f := e.sched.Fading(); len(f) != 0 {
		t.Errorf("still fading %v", f)
	}
}

// TestManualChangeStopsFade: a person's change wins over a wake-up fade.
func TestManualChangeStopsFade(t *testing.T) {
	start := time.Date(2026, 11, 30, 6, 0, 0, 0, berlin(t))
	e := newEnv(t, "", start)
	e.schedule(`{"name": "Wake up", "enabled": true, "at": "06:30", "fade": "30m", "do": {"state": {"mode": "manual", "color": "#ffb36b"}}}`)
	e.tickEvery(start, e.local("2026-11-30 06:40"), time.Second)
	if f := e.sched.Fading(); len(f) != 1 {
		t.Fatalf("fading %v at 06:40, want the shared state", f)
	}
	mid := e.lamps.Shared()
	if mid.Mode != state.ModeManual || mid.Color.R == 0 || mid.Color.R == 255 {
		t.Fatalf("at 06:40 the lamps show %s, want part-way to #ffb36b", mid.Packet)
	}
	weather := state.ModeWeather
	if _, err := e.lamps.shared.Apply(state.Change{Mode: &weather}); err != nil { // a person, not through the fader
		t.Fatal(err)
	}
	n := len(e.lamps.Writes())
	e.tickEvery(e.local("2026-11-30 06:40"), e.local("2026-11-30 07:10"), time.Second)
	if w := e.lamps.Writes()[n:]; len(w) != 0 {
		t.Errorf("the fade went on after a person changed the lamps: %q", w[:min(3, len(w))])
	}
	if got := e.lamps.Shared().Mode; got != state.ModeWeather {
		t.Errorf("mode %s, want the person's weather", got)
	}
	if !strings.Contains(e.log.String(), "fade stopped") {
		t.Error("the log does not say the fade stopped")
	}
}

// TestCatchUpMidFade: started during a fade's window, the lamps are put
// where the fade would be, and it goes on from there.
func TestCatchUpMidFade(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, dir, time.Date(2026, 11, 30, 6, 0, 0, 0, berlin(t)))
	e.schedule(`{"name": "Wake up", "enabled": true, "at": "06:30", "fade": "30m", "do": {"state": {"mode": "manual", "color": "#ffffff"}}}`)
	e2 := newEnv(t, dir, e.local("2026-11-30 06:45"))
	e2.sched.Tick(e.local("2026-11-30 06:45"))
	if got := e2.lamps.Shared().Color.R; got < 120 || got > 135 {
		t.Errorf("half-way through the fade red is %d, want about 128", got)
	}
}

func TestRunFollowsTheClock(t *testing.T) {
	start := time.Date(2026, 11, 30, 6, 0, 0, 0, berlin(t))
	e := newEnv(t, "", start)
	e.schedule(`{"name": "Wake up", "enabled": true, "at": "06:30", "do": {"state": {"mode": "manual", "color": "#ffb36b"}}}`)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.sched.Run(ctx); close(done) }()
	// Move the clock in 30 s steps (Run's longest sleep) until it has run.
	for at := start; at.Before(start.Add(time.Hour)) && e.lamps.Shared().Mode != state.ModeManual; at = at.Add(30 * time.Second) {
		e.clock.Set(at)
		waitFor(t, func() bool { return e.clock.waiting() })
	}
	cancel()
	<-done
	if got := e.lamps.Shared().Packet; got != "[cc:2:255,179,107:0]" {
		t.Errorf("Run left %s, want the 06:30 colour", got)
	}
}

func TestScheduleRefusesBadInput(t *testing.T) {
	e := newEnv(t, "", time.Date(2026, 11, 30, 6, 0, 0, 0, berlin(t)))
	for _, tt := range []struct{ js, field, says string }{
		{`{"name": "x", "at": "25:00", "do": {"state": {"mode": "off"}}}`, "at", "hours are 00-23"},
		{`{"name": "x", "at": "6:30", "do": {"state": {"mode": "off"}}}`, "at", "HH:MM"},
		{`{"name": "x", "at": "sunrise*2", "do": {"state": {"mode": "off"}}}`, "at", "+ or -"},
		{`{"name": "x", "at": "06:30", "days": ["mon", "fun"], "do": {"state": {"mode": "off"}}}`, "days[1]", `"fun" is not a day`},
		{`{"name": "x", "at": "06:30", "do": {"scene": "nope"}}`, "do.scene", `no scene "nope"`},
		{`{"name": "x", "at": "06:30", "do": {}}`, "do", "exactly one"},
		{`{"name": "x", "at": "06:30", "do": {"state": {"pulse": 12}}}`, "do.state.pulse", "0-9"},
		{`{"name": "x", "at": "06:30", "lamps": ["garage"], "do": {"state": {"mode": "off"}}}`, "lamps[0]", `no lamp "garage"`},
		{`{"name": "x", "in": "soon", "do": {"state": {"mode": "off"}}}`, "in", "not a duration"},
		{`{"name": "x", "in": "30m", "days": ["mon"], "do": {"state": {"mode": "off"}}}`, "days", "runs once"},
		{`{"name": "x", "at": "06:30", "fade": "9h", "do": {"state": {"mode": "off"}}}`, "fade", "longer than 4h"},
		{`{"name": "x", "do": {"state": {"mode": "off"}}}`, "at", "required"},
		{`{"name": "", "at": "06:30", "do": {"state": {"mode": "off"}}}`, "name", "1-64"},
	} {
		var sc Schedule
		if err := jsonUnmarshal(tt.js, &sc); err != nil {
			t.Fatal(err)
		}
		_, err := e.sched.Create(sc)
		var ie *invalid.Error
		if !errors.As(err, &ie) || ie.Field != tt.field || !strings.Contains(ie.Message, tt.says) {
			t.Errorf("%s: got %v, want %s: …%s…", tt.js, err, tt.field, tt.says)
		}
	}
	if l := e.sched.List(); len(l) != 0 {
		t.Errorf("refused schedules were kept: %+v", l)
	}
}
