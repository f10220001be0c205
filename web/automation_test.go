package web

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/automation"
	"github.com/cloudcloud/cloudcloud/internal/state"
)

// testClock is the scheduler's clock in these tests: it says what the test
// set, and the test calls Tick itself, so nothing waits for real time.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func (c *testClock) After(time.Duration) (<-chan time.Time, func() bool) {
	return nil, func() bool { return true }
}

type automationEnv struct {
	*env
	scenes *automation.Scenes
	sched  *automation.Scheduler
	clock  *testClock
	loc    *time.Location
}

// withAutomation adds scenes and schedules over the real display state to
// an env, in Europe/Berlin on a clock the test sets; a is filled in.
func withAutomation(t *testing.T, a *automationEnv) envOption {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	a.loc = loc
	return func(o *Options, d *Deps) {
		lamps := sharedOnly{Store: d.State}
		var err error
		if a.scenes, err = automation.OpenScenes(o.Sessions, lamps, quiet); err != nil {
			t.Fatal(err)
		}
		a.sched, err = automation.NewScheduler(automation.Options{Records: o.Sessions, Lamps: lamps, Scenes: a.scenes,
			Location: loc, Clock: a.clock, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		d.Scenes, d.Schedules = a.scenes, a.sched
	}
}

// newAutomationEnv is newEnv with scenes and schedules.
func newAutomationEnv(t *testing.T, now time.Time) *automationEnv {
	t.Helper()
	a := &automationEnv{clock: &testClock{now: now}}
	a.env = newEnv(t, withAutomation(t, a))
	return a
}

func TestScenesAPI(t *testing.T) {
	e := newAutomationEnv(t, time.Now())
	lamp := e.lamp(t)

	res := e.call(t, http.MethodPut, "/api/scenes/movie-night", `{"name": "Movie night", "shared": {"mode": "manual", "color": "#8000ff", "pulse": 2}}`)
	if res.status != http.StatusOK {
		t.Fatalf("PUT: %d %s", res.status, res.body)
	}
	res = e.call(t, http.MethodPost, "/api/scenes/movie-night/apply", "")
	if res.status != http.StatusOK || res.body != "{\"lamps\":[]}\n" {
		t.Fatalf("apply: %d %s", res.status, res.body)
	}
	lamp.waitFor(t, "[cc:2:128,0,255:2]")

	res = e.call(t, http.MethodPost, "/api/scenes", `{"name": "Right now", "from_current": true}`)
	sc := decode[automation.Scene](t, res)
	if res.status != http.StatusCreated || sc.ID != "right-now" || sc.Shared == nil || sc.Shared.Color.Hex() != "#8000ff" {
		t.Fatalf("POST from_current: %d %s", res.status, res.body)
	}
	list := decode[[]automation.Scene](t, e.call(t, http.MethodGet, "/api/scenes", ""))
	if len(list) != 2 || list[0].ID != "movie-night" || list[1].ID != "right-now" {
		t.Errorf("GET /api/scenes: %+v", list)
	}
	if res := e.call(t, http.MethodDelete, "/api/scenes/movie-night", ""); res.status != http.StatusNoContent {
		t.Errorf("DELETE: %d %s", res.status, res.body)
	}

	for _, tt := range []struct {
		method, path, body string
		status             int
		says               string
	}{
		{http.MethodPost, "/api/scenes/movie-night/apply", "", http.StatusNotFound, `there is no scene "movie-night"`},
		{http.MethodDelete, "/api/scenes/nope", "", http.StatusNotFound, `there is no scene "nope"`},
		{http.MethodPut, "/api/scenes/Bad%20Id", `{"name": "x", "shared": {"mode": "off"}}`, http.StatusBadRequest, "id: \"Bad Id\" is not an id"},
		{http.MethodPut, "/api/scenes/x", `{"name": "x", "shared": {"mode": "disco"}}`, http.StatusBadRequest, "shared.mode: \"disco\" is not a mode"},
		{http.MethodPut, "/api/scenes/x", `{"name": "x", "shared": {"colour": "#fff"}}`, http.StatusBadRequest, `shared: unknown field "colour"`},
		{http.MethodPut, "/api/scenes/x", `{"name": "x", "lamps": {"garage": {"mode": "off"}}}`, http.StatusBadRequest, `no lamp "garage"`},
		{http.MethodPut, "/api/scenes/x", `{"name": "x"}`, http.StatusBadRequest, "at least one"},
		{http.MethodPost, "/api/scenes", `{"name": "x", "from_current": true, "shared": {"mode": "off"}}`, http.StatusBadRequest, "from_current"},
	} {
		res := e.call(t, tt.method, tt.path, tt.body)
		if res.status != tt.status || !strings.Contains(errorBody(t, res), tt.says) {
			t.Errorf("%s %s %s: %d %s; want %d …%s…", tt.method, tt.path, tt.body, res.status, res.body, tt.status, tt.says)
		}
	}
}

// TestWakeUpLightEndToEnd: a schedule made through the API fades a real
// lamp from off to a warm colour, one packet per visible change, as the
// test moves the clock a second at a time.
func TestWakeUpLightEndToEnd(t *testing.T) {
	loc, _ := time.LoadLocation("Europe/Berlin")
	start := time.Date(2026, 11, 30, 6, 0, 0, 0, loc) // a Monday
	e := newAutomationEnv(t, start)
	lamp := e.lamp(t)

	res := e.call(t, http.MethodPost, "/api/schedules", `{"name": "Wake up", "at": "06:30", "days": ["mon", "tue", "wed", "thu", "fri"],
		"do": {"state": {"mode": "manual", "color": "#ffb36b"}}, "fade": "2m"}`)
	if res.status != http.StatusCreated {
		t.Fatalf("POST: %d %s", res.status, res.body)
	}
	if !strings.Contains(res.body, `"id":"wake-up"`) || !strings.Contains(res.body, `"next_run":"2026-11-30T06:30:00+01:00"`) || !strings.Contains(res.body, `"enabled":true`) {
		t.Errorf("created: %s", res.body)
	}
	var frames []string
	for at := start.Add(29 * time.Minute); !at.After(start.Add(33 * time.Minute)); at = at.Add(time.Second) {
		e.clock.set(at)
		e.sched.Tick(at)
		for {
			select {
			case f := <-lamp.frames:
				frames = append(frames, f)
				continue
			default:
			}
			break
		}
	}
	if len(frames) == 0 || frames[len(frames)-1] != "[cc:2:255,179,107:0]" {
		lamp.waitFor(t, "[cc:2:255,179,107:0]")
	}
	if len(frames) < 60 {
		t.Errorf("the lamp got %d packets during a 2 minute fade, want about one a second: %q", len(frames), frames)
	}
	got := decode[automation.Schedule](t, e.call(t, http.MethodGet, "/api/schedules/wake-up", ""))
	if got.NextRun == nil || got.NextRun.Format(time.RFC3339) != "2026-12-01T06:30:00+01:00" {
		t.Errorf("next run after running: %v", got.NextRun)
	}
}

// TestSleepTimerEndToEnd: "in": "30m" turns a real lamp off and goes.
func TestSleepTimerEndToEnd(t *testing.T) {
	start := time.Date(2026, 11, 30, 22, 0, 0, 0, time.UTC)
	e := newAutomationEnv(t, start)
	lamp := e.lamp(t)
	e.call(t, http.MethodPut, "/api/state", `{"mode": "manual", "color": "#ff0000"}`)
	lamp.waitFor(t, "[cc:2:255,0,0:0]")
	res := e.call(t, http.MethodPost, "/api/schedules", `{"name": "Sleep timer", "in": "30m", "do": {"state": {"mode": "off"}}}`)
	if res.status != http.StatusCreated || !strings.Contains(res.body, `"next_run":"2026-11-30T23:30:00+01:00"`) {
		t.Fatalf("POST: %d %s", res.status, res.body)
	}
	e.sched.Tick(start.Add(29 * time.Minute))
	if e.store.Get().Mode != "manual" {
		t.Fatal("the timer ran early")
	}
	e.sched.Tick(start.Add(30 * time.Minute))
	lamp.waitFor(t, "[cc:0:?:?]")
	if res := e.call(t, http.MethodGet, "/api/schedules/sleep-timer", ""); res.status != http.StatusNotFound {
		t.Errorf("the timer is still listed after it ran: %d %s", res.status, res.body)
	}
}

func TestSchedulesAPIRefusesBadInput(t *testing.T) {
	e := newAutomationEnv(t, time.Now())
	for _, tt := range []struct {
		body string
		says string
	}{
		{`{"name": "x", "at": "25:00", "do": {"state": {"mode": "off"}}}`, `at: "25:00" is not a time of day`},
		{`{"name": "x", "at": "06:30", "days": ["mon", "someday"], "do": {"state": {"mode": "off"}}}`, `days[1]: "someday" is not a day`},
		{`{"name": "x", "at": "06:30", "do": {"scene": "party"}}`, `do.scene: there is no scene "party"`},
		{`{"name": "x", "at": "06:30", "do": {"state": {"mode": "off"}, "colour": 1}}`, `do: unknown field "colour"`},
		{`{"name": "x", "at": "06:30", "do": {"state": {"pulse": 11}}}`, "do.state.pulse"},
		{`{"name": "x", "at": "06:30"}`, "do is required"},
		{`{"name": "x", "at": "06:30", "do": {"state": {"mode": "off"}}, "repeat": true}`, `unknown field "repeat"`},
		{`{"name": "x", "at": "sunrise", "do": {"state": {"mode": "off"}}, "at": "06:30"}`, "appears twice"},
	} {
		res := e.call(t, http.MethodPost, "/api/schedules", tt.body)
		if res.status != http.StatusBadRequest || !strings.Contains(errorBody(t, res), tt.says) {
			t.Errorf("%s: %d %s; want 400 …%s…", tt.body, res.status, res.body, tt.says)
		}
	}
	if res := e.call(t, http.MethodGet, "/api/schedules", ""); res.body != "[]\n" {
		t.Errorf("refused schedules were kept: %s", res.body)
	}
	if res := e.call(t, http.MethodDelete, "/api/schedules/nope", ""); res.status != http.StatusNotFound {
		t.Errorf("DELETE unknown: %d %s", res.status, res.body)
	}
	// PUT replaces, and keeps the id of the path.
	e.call(t, http.MethodPut, "/api/schedules/night", `{"name": "Night", "at": "23:00", "do": {"state": {"mode": "off"}}}`)
	res := e.call(t, http.MethodPut, "/api/schedules/night", `{"name": "Night", "enabled": false, "at": "23:30", "do": {"state": {"mode": "off"}}}`)
	if res.status != http.StatusOK || !strings.Contains(res.body, `"at":"23:30"`) || !strings.Contains(res.body, `"next_run":null`) {
		t.Errorf("PUT: %d %s", res.status, res.body)
	}
}

// sharedOnly adapts the display state store (state.Store) to Lamps: it
// knows no lamp by id, so scenes and schedules can only set the shared
// state through it.
type sharedOnly struct {
	Store interface {
		Get() state.State
		Apply(state.Change) (state.State, error)
	}
}

func (s sharedOnly) Shared() state.State                             { return s.Store.Get() }
func (s sharedOnly) ApplyShared(c state.Change) (state.State, error) { return s.Store.Apply(c) }
func (sharedOnly) Lamps() []automation.LampState                     { return nil }
func (sharedOnly) Lamp(string) (state.State, bool)                   { return state.State{}, false }
func (sharedOnly) ApplyLamp(id string, _ state.Change) (state.State, error) {
	return state.State{}, fmt.Errorf("lamp %q: this server has no per-lamp states yet", id)
}
