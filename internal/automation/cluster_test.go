package automation

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/natstest"
	"github.com/cloudcloud/cloudcloud/internal/storage"
)

// dirBuckets is one data directory shared by n nodes.
func dirBuckets(t *testing.T, n int) []storage.Bucket {
	t.Helper()
	d, err := storage.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out := make([]storage.Bucket, n)
	for i := range out {
		out[i] = d
	}
	return out
}

// tickAll ticks every node at at, all at once.
func tickAll(at time.Time, nodes ...*env) {
	var wg sync.WaitGroup
	for _, e := range nodes {
		for range 3 {
			wg.Go(func() { e.sched.Tick(at) })
		}
	}
	wg.Wait()
}

func writesOf(nodes ...*env) []string {
	var all []string
	for _, e := range nodes {
		all = append(all, e.lamps.Writes()...)
	}
	return all
}

// TestScheduleRunsOncePerCluster: two nodes tick the same schedules at once;
// each due run, the catch-up after both were down, and a timer happen once
// in total, and a fade is moved by the node that ran its schedule only.
func TestScheduleRunsOncePerCluster(t *testing.T) {
	for name, buckets := range map[string]func(*testing.T, int) []storage.Bucket{"jetstream": func(t *testing.T, n int) []storage.Bucket { return natstest.SharedBuckets(t, n) }, "dir": dirBuckets} {
		t.Run(name, func(t *testing.T) {
			b := buckets(t, 2)
			clock := &fakeClock{now: time.Date(2026, 11, 30, 6, 0, 0, 0, berlin(t))}
			a := newEnvOn(t, b[0], clock)
			a.schedule(`{"name": "Morning", "enabled": true, "at": "06:30", "do": {"state": {"mode": "manual", "color": "#ff0000"}}}`)
			a.schedule(`{"name": "Dim", "enabled": true, "at": "07:00", "fade": "10m", "lamps": ["bedroom"], "do": {"state": {"mode": "off"}}}`)
			a.schedule(`{"name": "Tea", "enabled": true, "in": "45m", "lamps": ["kitchen"], "do": {"state": {"mode": "manual", "color": "#00ff00"}}}`)
			other := newEnvOn(t, b[1], clock)
			if n := len(other.sched.List()); n != 3 {
				t.Fatalf("B loaded %d schedules, want 3", n)
			}

			for _, at := range []string{"2026-11-30 06:30", "2026-11-30 06:31"} {
				clock.Set(a.local(at))
				tickAll(a.local(at), a, other)
			}
			if w := writesOf(a, other); len(w) != 1 || !strings.HasSuffix(w[0], "[cc:2:255,0,0:0]") {
				t.Fatalf("06:30 on two nodes wrote %q, want the red once", w)
			}

			clock.Set(a.local("2026-11-30 07:00"))
			tickAll(a.local("2026-11-30 07:00"), a, other)
			fading := 0
			for _, e := range []*env{a, other} {
				if len(e.sched.Fading()) > 0 {
					fading++
				}
			}
			if fading != 1 {
				t.Errorf("%d nodes fade the 07:00 schedule, want 1", fading)
			}
			for at := a.local("2026-11-30 07:00"); !at.After(a.local("2026-11-30 07:15")); at = at.Add(30 * time.Second) {
				clock.Set(at)
				tickAll(at, a, other)
			}
			timer := 0
			for _, w := range writesOf(a, other) {
				if strings.HasPrefix(w, "kitchen ") {
					timer++
				}
			}
			if timer != 1 {
				t.Errorf("the 45 min timer ran %d times, want once", timer)
			}
			// Without Run's watch B learns of the removal only if its claim
			// met it; else it has the record that says the timer ran.
			if got, err := other.sched.Get("tea"); err == nil && got.NextRun != nil {
				t.Errorf("B still has the timer that ran to come, at %v", got.NextRun)
			}

			// Both nodes are down for three days; both catch up at once.
			reds := func() (n int) {
				for _, w := range writesOf(a, other) {
					if strings.HasSuffix(w, "[cc:2:255,0,0:0]") {
						n++
					}
				}
				return n
			}
			before := reds()
			late := a.local("2026-12-03 06:45")
			clock.Set(late)
			tickAll(late, a, other)
			red := reds() - before
			if red != 1 || !strings.Contains(a.log.String()+other.log.String(), "caught up a schedule") {
				t.Errorf("the catch-up ran the morning schedule %d times, want once; logs:\n%s\n%s", red, a.log, other.log)
			}
		})
	}
}

// TestScheduleFollowsOtherNodes: a schedule created, changed and removed
// through node A is followed by B's Run, which runs it while A is stopped.
func TestScheduleFollowsOtherNodes(t *testing.T) {
	b := natstest.SharedBuckets(t, 2)
	start := time.Date(2026, 11, 30, 6, 0, 0, 0, berlin(t))
	clock := &fakeClock{now: start}
	a, other := newEnvOn(t, b[0], clock), newEnvOn(t, b[1], clock)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { other.sched.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	sc := a.schedule(`{"name": "Wake up", "enabled": true, "at": "06:30", "do": {"state": {"mode": "manual", "color": "#ffb36b"}}}`)
	waitFor(t, func() bool { _, err := other.sched.Get(sc.ID); return err == nil })
	blue := must(t, "#0000ff")
	sc.At, sc.Do.State.Color = "07:00", &blue
	if _, err := a.sched.Put(sc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { got, _ := other.sched.Get(sc.ID); return got.At == "07:00" })

	// A is stopped (it never runs here); B runs the schedule at 07:00.
	for at := start; at.Before(start.Add(2*time.Hour)) && len(other.lamps.Writes()) == 0; at = at.Add(30 * time.Second) {
		clock.Set(at)
		waitFor(t, func() bool { return clock.waiting() })
	}
	if w := other.lamps.Writes(); len(w) != 1 || w[0] != "shared [cc:2:0,0,255:0]" {
		t.Errorf("B wrote %q, want the 07:00 blue once", w)
	}
	if w := a.lamps.Writes(); len(w) != 0 {
		t.Errorf("the stopped node wrote %q", w)
	}

	if err := a.sched.Delete(sc.ID); err != nil {
		t.Fatal(err)
	}
	var unknown *UnknownScheduleError
	waitFor(t, func() bool { _, err := other.sched.Get(sc.ID); return errors.As(err, &unknown) })
}

// TestScenesFollowOtherNodes: a scene saved, changed and deleted through
// one node is the other's too, which can then apply it (a schedule that
// applies a scene may run on any node).
func TestScenesFollowOtherNodes(t *testing.T) {
	b := natstest.SharedBuckets(t, 2)
	clock := &fakeClock{now: time.Date(2026, 11, 30, 20, 0, 0, 0, berlin(t))}
	a, other := newEnvOn(t, b[0], clock), newEnvOn(t, b[1], clock)
	sc, err := a.scenes.Put(scene(t, `{"id": "movie-night", "name": "Movie night", "shared": {"mode": "manual", "color": "#8000ff", "pulse": 2}}`))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { _, err := other.scenes.Get(sc.ID); return err == nil })
	sc.Name = "Film night"
	if _, err := a.scenes.Put(sc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { got, _ := other.scenes.Get(sc.ID); return got.Name == "Film night" })
	if err := other.scenes.Apply(sc.ID); err != nil {
		t.Fatalf("the other node applies the scene: %v", err)
	}
	if w := other.lamps.Writes(); len(w) != 1 || w[0] != "shared [cc:2:128,0,255:2]" {
		t.Errorf("the other node wrote %q", w)
	}
	if err := a.scenes.Delete(sc.ID); err != nil {
		t.Fatal(err)
	}
	var unknown *UnknownSceneError
	waitFor(t, func() bool { _, err := other.scenes.Get(sc.ID); return errors.As(err, &unknown) })
}
