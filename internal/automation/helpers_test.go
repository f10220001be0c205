package automation

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/logtest"
	"github.com/cloudcloud/cloudcloud/internal/state"
	"github.com/cloudcloud/cloudcloud/internal/storage"
	"github.com/cloudcloud/cloudcloud/protocol"
)

// fakeLamps is the per-lamp half of Lamps as lamps as individuals will
// provide it, over a real state.Store for the shared half: every write is
// recorded so tests can count what the lamps were sent.
type fakeLamps struct {
	shared *state.Store
	mu     sync.Mutex
	lamps  map[string]state.State // a lamp with its own state
	known  []string
	writes []string // "<target> <packet>" of every change, in order
}

func newFakeLamps(t *testing.T, records storage.Bucket, known ...string) *fakeLamps {
	t.Helper()
	st, err := state.Open(records, events.NewBus(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return &fakeLamps{shared: st, lamps: map[string]state.State{}, known: known}
}

func (f *fakeLamps) Shared() state.State { return f.shared.Get() }

func (f *fakeLamps) ApplyShared(c state.Change) (state.State, error) {
	st, err := f.shared.Apply(c)
	if err == nil {
		f.mu.Lock()
		clear(f.lamps) // the shared state replaces each lamp's own
		f.writes = append(f.writes, "shared "+st.Packet)
		f.mu.Unlock()
	}
	return st, err
}

func (f *fakeLamps) Lamps() []LampState {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []LampState
	for _, id := range f.known {
		st, own := f.lamps[id]
		if !own {
			st = f.shared.Get()
		}
		out = append(out, LampState{ID: id, State: st, FollowsShared: !own})
	}
	return out
}

func (f *fakeLamps) Lamp(id string) (state.State, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Contains(f.known, id) {
		return state.State{}, false
	}
	if st, ok := f.lamps[id]; ok {
		return st, true
	}
	return f.shared.Get(), true
}

func (f *fakeLamps) ApplyLamp(id string, c state.Change) (state.State, error) {
	cur, _ := f.Lamp(id)
	next, err := cur.With(c)
	if err != nil {
		return cur, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lamps[id] = next
	f.writes = append(f.writes, id+" "+next.Packet)
	return next, nil
}

func (f *fakeLamps) Writes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.writes)
}

// fakeClock is a Clock the test moves; After fires when the test moves past
// its deadline.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	c  chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) (<-chan time.Time, func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, waiter{c.now.Add(d), ch})
	return ch, func() bool { return true }
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	keep := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(t) {
			w.c <- t
		} else {
			keep = append(keep, w)
		}
	}
	c.waiters = keep
}

type env struct {
	t      *testing.T
	dir    string
	lamps  *fakeLamps
	scenes *Scenes
	sched  *Scheduler
	clock  *fakeClock
	log    *logtest.Buffer
	loc    *time.Location
}

func berlin(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// newEnv opens the scenes and a scheduler on dir (a fresh one if empty),
// in Europe/Berlin at now, with lamps bedroom and kitchen known.
func newEnv(t *testing.T, dir string, now time.Time) *env {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	records, err := storage.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvOn(t, records, &fakeClock{now: now})
	e.dir = dir
	return e
}

// newEnvOn opens the scenes and a scheduler on records, as a node of a
// cluster does on the shared bucket, on clock.
func newEnvOn(t *testing.T, records storage.Bucket, clock *fakeClock) *env {
	t.Helper()
	e := &env{t: t, clock: clock, log: &logtest.Buffer{}, loc: berlin(t)}
	log := slog.New(slog.NewTextHandler(e.log, nil))
	var err error
	e.lamps = newFakeLamps(t, records, "bedroom", "kitchen")
	if e.scenes, err = OpenScenes(records, e.lamps, log); err != nil {
		t.Fatal(err)
	}
	e.sched, err = NewScheduler(Options{Records: records, Lamps: e.lamps, Scenes: e.scenes, Location: e.loc,
		Sun:   func() (float64, float64, bool) { return 52.52, 13.405, true },
		Clock: e.clock, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// local is a wall-clock time in Berlin.
func (e *env) local(s string) time.Time {
	e.t.Helper()
	t, err := time.ParseInLocation("2006-01-02 15:04", s, e.loc)
	if err != nil {
		e.t.Fatal(err)
	}
	return t
}

// schedule creates a schedule from its JSON.
func (e *env) schedule(js string) Schedule {
	e.t.Helper()
	var sc Schedule
	if err := json.Unmarshal([]byte(js), &sc); err != nil {
		e.t.Fatal(err)
	}
	out, err := e.sched.Create(sc)
	if err != nil {
		e.t.Fatalf("create %s: %v", js, err)
	}
	return out
}

// tickEvery ticks from from to to (inclusive) every step, moving the clock.
func (e *env) tickEvery(from, to time.Time, step time.Duration) {
	for t := from; !t.After(to); t = t.Add(step) {
		e.clock.Set(t)
		e.sched.Tick(t)
	}
}

func must(t *testing.T, hex string) protocol.RGB {
	t.Helper()
	c, err := protocol.ParseColor(hex)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func fmtSscanf(s, format string, args ...any) (int, error) { return fmt.Sscanf(s, format, args...) }

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

func (c *fakeClock) waiting() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters) > 0
}

// waitFor polls cond for up to 10 s (a bound, not a timing assertion).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 10000; i++ {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("condition not reached in 10 s")
}
