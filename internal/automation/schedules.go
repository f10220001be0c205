package automation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/invalid"
	"github.com/cloudcloud/cloudcloud/internal/state"
	"github.com/cloudcloud/cloudcloud/internal/storage"
	"github.com/cloudcloud/cloudcloud/protocol"
)

// Schedule is one schedule or one-off timer as API.md "Schedules" has it.
type Schedule struct {
	ID      string     `json:"id"`
	Name    string     `json:"name"`
	Enabled bool       `json:"enabled"`
	At      string     `json:"at,omitempty"`
	In      string     `json:"in,omitempty"`
	Days    []string   `json:"days"`
	Lamps   []string   `json:"lamps,omitempty"`
	Do      Action     `json:"do"`
	Fade    string     `json:"fade,omitempty"`
	NextRun *time.Time `json:"next_run"` // read-only: computed, in time.zone
}

// Action is what a schedule does: a state subset or a scene.
type Action struct {
	State *Subset `json:"state,omitempty"`
	Scene string  `json:"scene,omitempty"`
}

// UnknownScheduleError is an id with no schedule; the web port answers 404.
type UnknownScheduleError struct{ ID string }

func (e *UnknownScheduleError) Error() string {
	return fmt.Sprintf("there is no schedule %q; GET /api/schedules lists them", e.ID)
}

// record is a schedule as kept: the schedule, when a timer is due, and
// the last occurrence that ran (or, for one that never ran, when it was
// saved), so a restart knows what it missed.
type record struct {
	Schedule
	Due     time.Time `json:"due,omitzero"`
	LastRun time.Time `json:"last_run"`

	at   At
	days [7]bool
	fade time.Duration
	rev  uint64 // the revision of the record this was read from or written as
}

// SchedulePrefix starts the key of every schedule record.
const SchedulePrefix = "schedules/"

// lookBack is how far back a start looks for occurrences it missed: a
// weekly schedule missed during a week away still counts.
const lookBack = 8 * 24 * time.Hour

// catchUpAfter: an occurrence run later than this is a catch-up, logged as
// one.
const catchUpAfter = time.Minute

// maxWait bounds one sleep of Run, so an edit, a changed sun time or a
// wall-clock jump is seen within it.
const maxWait = 30 * time.Second

// Options configure a Scheduler.
type Options struct {
	Records  storage.Bucket
	Lamps    Lamps
	Scenes   *Scenes
	Location *time.Location // time.zone
	// Sun says where the weather location is, for sunrise and sunset; ok
	// false when none is known (then sun schedules do not run).
	Sun    func() (lat, lon float64, ok bool)
	Clock  Clock // nil: the wall clock
	Logger *slog.Logger
}

// Scheduler keeps the schedules and runs them and their fades.
//
// Several nodes of a cluster run a Scheduler each on the same records
// (docs/cluster.md), and a schedule runs once per cluster: a due run is
// claimed by noting it in the schedule's record, compare-and-set at the
// revision the scheduler read, and only the node whose write wins runs it
// (and its fade). While Run runs, the records are watched, so a schedule
// created, changed or removed through another node is followed here.
type Scheduler struct {
	o    Options
	log  *slog.Logger
	wake chan struct{}

	mu    sync.Mutex
	all   map[string]*record
	fades map[string]*fade // by target: "" the shared state, else a lamp id
}

// NewScheduler loads the schedules.
func NewScheduler(o Options) (*Scheduler, error) {
	if o.Clock == nil {
		o.Clock = WallClock{}
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.Sun == nil {
		o.Sun = func() (float64, float64, bool) { return 0, 0, false }
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Scheduler{o: o, log: o.Logger, wake: make(chan struct{}, 1), all: map[string]*record{}, fades: map[string]*fade{}}
	keys, err := o.Records.Keys(SchedulePrefix)
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	for _, key := range keys {
		var r record
		rev, found, err := storage.LoadJSON(o.Records, key, &r, func() error { return s.compile(&r, false) }, s.log, "schedule")
		if err != nil {
			return nil, err
		}
		if found && SchedulePrefix+r.ID == key {
			r.rev = rev
			s.all[r.ID] = &r
		}
	}
	return s, nil
}

// compile checks r and fills its parsed fields. strict also requires the
// lamps and scene it names to exist (not when loading: a lamp forgotten
// since must not lose the schedule).
func (s *Scheduler) compile(r *record, strict bool) error {
	if err := CheckID(r.ID); err != nil {
		return err
	}
	if err := checkName(r.Name); err != nil {
		return err
	}
	switch {
	case r.At != "" && r.In != "":
		return invalid.Field("at", "give at (a time of day or sun event) or in (a one-off timer), not both")
	case r.At == "" && r.In == "":
		return invalid.Field("at", `is required: a time like "06:30", "sunrise-30m", or "in": "30m" for a one-off timer`)
	case r.At != "":
		a, err := ParseAt(r.At)
		if err != nil {
			return err
		}
		r.at, r.At = a, a.String()
	default:
		if _, err := ParseDuration("in", r.In, MaxIn); err != nil {
			return err
		}
		if len(r.Days) > 0 {
			return invalid.Field("days", "a one-off timer (in) runs once; leave days out")
		}
	}
	days, err := ParseDays(r.Days)
	if err != nil {
		return err
	}
	r.days = days
	for i, d := range r.Days {
		r.Days[i] = strings.ToLower(d)
	}
	r.fade = 0
	if r.Fade != "" {
		if r.fade, err = ParseDuration("fade", r.Fade, MaxFade); err != nil {
			return err
		}
	}
	switch {
	case (r.Do.State == nil) == (r.Do.Scene == ""):
		return invalid.Field("do", `give exactly one of {"state": {...}} or {"scene": "<scene id>"}`)
	case r.Do.State != nil:
		if err := checkSubset("do.state", *r.Do.State); err != nil {
			return err
		}
	case len(r.Lamps) > 0:
		return invalid.Field("lamps", "a scene names its own lamps; leave lamps out when do is a scene")
	case strict:
		if _, err := s.o.Scenes.Get(r.Do.Scene); err != nil {
			return invalid.Field("do.scene", "%v", err)
		}
	}
	for i, id := range r.Lamps {
		if j := slices.Index(r.Lamps[:i], id); j >= 0 {
			return invalid.Field(fmt.Sprintf("lamps[%d]", i), "%q is already lamps[%d]; list each lamp once", id, j)
		}
		if _, ok := s.o.Lamps.Lamp(id); strict && !ok {
			return invalid.Field(fmt.Sprintf("lamps[%d]", i), "there is no lamp %q; GET /api/lamps lists them, or leave lamps out for every lamp", id)
		}
	}
	return nil
}

// List is every schedule with its next run, soonest first.
func (s *Scheduler) List() []Schedule {
	now := s.o.Clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Schedule, 0, len(s.all))
	for _, r := range s.all {
		out = append(out, s.view(r, now))
	}
	slices.SortFunc(out, func(a, b Schedule) int {
		switch {
		case a.NextRun == nil && b.NextRun == nil:
			return strings.Compare(a.ID, b.ID)
		case a.NextRun == nil:
			return 1
		case b.NextRun == nil:
			return -1
		}
		if c := a.NextRun.Compare(*b.NextRun); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Get is one schedule with its next run.
func (s *Scheduler) Get(id string) (Schedule, error) {
	now := s.o.Clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.all[id]
	if !ok {
		return Schedule{}, &UnknownScheduleError{ID: id}
	}
	return s.view(r, now), nil
}

func (s *Scheduler) view(r *record, now time.Time) Schedule {
	v := r.Schedule
	v.Days = slices.Clone(r.Days)
	if v.Days == nil {
		v.Days = []string{}
	}
	v.NextRun = nil
	if next, ok := s.next(r, now); ok && r.Enabled {
		next = next.In(s.o.Location)
		v.NextRun = &next
	}
	return v
}

// Create adds a schedule; an empty id is made from the name.
func (s *Scheduler) Create(sc Schedule) (Schedule, error) {
	s.mu.Lock()
	if sc.ID == "" {
		if err := checkName(sc.Name); err != nil {
			s.mu.Unlock()
			return Schedule{}, err
		}
		sc.ID = uniqueID(sc.Name, func(id string) bool { _, ok := s.all[id]; return ok })
	} else if _, ok := s.all[sc.ID]; ok {
		s.mu.Unlock()
		return Schedule{}, invalid.Field("id", "a schedule %q exists already; PUT /api/schedules/%s replaces it", sc.ID, sc.ID)
	}
	s.mu.Unlock()
	return s.Put(sc)
}

// Put creates or replaces a schedule. A timer starts counting now; a
// schedule counts as run up to now, so saving one never runs it at once.
func (s *Scheduler) Put(sc Schedule) (Schedule, error) {
	now := s.o.Clock.Now()
	r := &record{Schedule: sc, LastRun: now}
	r.NextRun = nil
	r.Days = slices.Clone(sc.Days)
	if err := s.compile(r, true); err != nil {
		return Schedule{}, err
	}
	if r.In != "" {
		d, _ := ParseDuration("in", r.In, MaxIn)
		r.Due = now.Add(d)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.save(r); err != nil {
		return Schedule{}, err
	}
	s.all[r.ID] = r
	s.poke()
	return s.view(r, now), nil
}

func (s *Scheduler) save(r *record) error {
	rev, err := storage.PutJSON(s.o.Records, SchedulePrefix+r.ID, r)
	if err != nil {
		return fmt.Errorf("save schedule %s (nothing was changed): %w", r.ID, err)
	}
	r.rev = rev
	return nil
}

// decode reads a schedule record written elsewhere; false (logged) when it
// cannot be used, or is no schedule's record (one set aside).
func (s *Scheduler) decode(e storage.Entry) (*record, bool) {
	id := strings.TrimPrefix(e.Key, SchedulePrefix)
	if CheckID(id) != nil {
		return nil, false
	}
	var r record
	err := json.Unmarshal(e.Value, &r)
	if err == nil {
		err = s.compile(&r, false)
	}
	if err == nil && r.ID != id {
		err = fmt.Errorf("the record of schedule %q is kept under %s", r.ID, e.Key)
	}
	if err != nil {
		s.log.Error("ignored a schedule written elsewhere that is not valid", "key", e.Key, "revision", e.Revision, "err", err)
		return nil, false
	}
	r.rev = e.Revision
	return &r, true
}

// follow takes a change of a schedule record (the watch of Run): made
// through another node, it becomes the schedule here. This scheduler's
// own writes come back too, at a revision it has already, and are skipped.
func (s *Scheduler) follow(e storage.Entry) {
	var r *record
	if !e.Deleted {
		var ok bool
		if r, ok = s.decode(e); !ok {
			return
		}
	}
	id := strings.TrimPrefix(e.Key, SchedulePrefix)
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.all[id]; ok && e.Revision <= cur.rev {
		return
	}
	if e.Deleted {
		delete(s.all, id)
	} else {
		s.all[id] = r
	}
	s.poke()
}

// reread takes in schedule id's record as it is now, after a claim lost
// to another node's write; s.mu is held.
func (s *Scheduler) reread(id string) {
	e, err := s.o.Records.Get(SchedulePrefix + id)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		delete(s.all, id)
	case err != nil:
		s.log.Error("could not read a schedule changed elsewhere", "schedule", id, "err", err)
	default:
		if r, ok := s.decode(e); ok {
			s.all[id] = r
		}
	}
}

// claim notes in r's record that its run due at at has happened, before it
// runs: compare-and-set, so of the nodes that find it due only the first
// writer runs it. False when another node's write came first (it ran it,
// or changed or removed the schedule: the record is read again) or the
// record cannot be written (it is tried again at the next tick). A node
// that dies between its claim and the run loses that run; no run is
// done twice. s.mu is held.
func (s *Scheduler) claim(r *record, at time.Time, log *slog.Logger) bool {
	next := *r
	next.LastRun = at
	rev, err := storage.UpdateJSON(s.o.Records, SchedulePrefix+r.ID, &next, r.rev)
	var conflict *storage.ConflictError
	switch {
	case err == nil:
		r.LastRun, r.rev = at, rev
		return true
	case errors.As(err, &conflict):
		log.Debug("schedule changed elsewhere, or run by another node", "err", err)
		s.reread(r.ID)
	default:
		log.Error("could not note that the schedule runs, so it did not run; trying again", "err", err)
	}
	return false
}

// Delete removes a schedule. A fade it started goes on: the lamps are
// half-way somewhere, and stopping there would be a surprise too.
func (s *Scheduler) Delete(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.all[id]; !ok {
		return &UnknownScheduleError{ID: id}
	}
	if err := s.o.Records.Delete(SchedulePrefix + id); err != nil {
		return fmt.Errorf("delete schedule %s (nothing was changed): %w", id, err)
	}
	delete(s.all, id)
	return nil
}

// poke wakes Run to look again.
func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// occurrence is when r runs on the local date of day, if it does.
func (s *Scheduler) occurrence(r *record, day time.Time) (time.Time, bool) {
	if !r.days[day.Weekday()] {
		return time.Time{}, false
	}
	y, m, d := day.Date()
	if r.at.Sun == "" {
		// A time the clocks skip (02:30 on the night they spring forward)
		// is normalised by time.Date to the hour after it; a time they
		// pass twice gives one instant. Either way it is one run that day.
		return time.Date(y, m, d, r.at.Clock/60, r.at.Clock%60, 0, 0, s.o.Location), true
	}
	lat, lon, ok := s.o.Sun()
	if !ok {
		return time.Time{}, false
	}
	rise, set, ok := SunTimes(time.Date(y, m, d, 12, 0, 0, 0, s.o.Location), lat, lon)
	if !ok {
		return time.Time{}, false
	}
	if r.at.Sun == "sunrise" {
		return rise.Add(r.at.Offset), true
	}
	return set.Add(r.at.Offset), true
}

// days yields the local dates from from's to to's, one a day, at noon
// (noon is on the date whatever the clocks do).
func (s *Scheduler) days(from, to time.Time, yield func(time.Time) bool) {
	from, to = from.In(s.o.Location), to.In(s.o.Location)
	y, m, d := from.Date()
	for day := time.Date(y, m, d, 12, 0, 0, 0, s.o.Location); !day.After(to.Add(12 * time.Hour)); {
		if !yield(day) {
			return
		}
		y, m, d = day.Date()
		day = time.Date(y, m, d+1, 12, 0, 0, 0, s.o.Location)
	}
}

// next is r's first run after now.
func (s *Scheduler) next(r *record, now time.Time) (time.Time, bool) {
	if r.In != "" {
		return r.Due, r.Due.After(r.LastRun)
	}
	var best time.Time
	found := false
	s.days(now.Add(-24*time.Hour), now.Add(8*24*time.Hour), func(day time.Time) bool {
		t, ok := s.occurrence(r, day)
		if ok && t.After(now) && (!found || t.Before(best)) {
			best, found = t, true
		}
		return !found || day.Before(best.Add(-24*time.Hour))
	})
	return best, found
}

// due is r's latest occurrence in (r.LastRun, now].
func (s *Scheduler) due(r *record, now time.Time) (time.Time, bool) {
	if r.In != "" {
		return r.Due, r.Due.After(r.LastRun) && !r.Due.After(now)
	}
	from := r.LastRun
	if from.Before(now.Add(-lookBack)) {
		from = now.Add(-lookBack)
	}
	var best time.Time
	found := false
	s.days(from.Add(-24*time.Hour), now.Add(24*time.Hour), func(day time.Time) bool {
		t, ok := s.occurrence(r, day)
		if ok && t.After(r.LastRun) && !t.After(now) && (!found || t.After(best)) {
			best, found = t, true
		}
		return true
	})
	return best, found
}

// Tick runs every schedule due at now, in the order they were due, and
// moves the fades on. Run calls it; tests call it with the time they want.
func (s *Scheduler) Tick(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	type run struct {
		r  *record
		at time.Time
	}
	var runs []run
	for _, r := range s.all {
		if !r.Enabled {
			continue
		}
		if at, ok := s.due(r, now); ok {
			runs = append(runs, run{r, at})
		}
	}
	slices.SortFunc(runs, func(a, b run) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return strings.Compare(a.r.ID, b.r.ID)
	})
	for _, x := range runs {
		s.run(x.r, x.at, now)
	}
	for target, f := range s.fades {
		if !s.stepFade(f, now) {
			delete(s.fades, target)
		}
	}
}

// run does what r says, due at at; s.mu is held.
func (s *Scheduler) run(r *record, at, now time.Time) {
	log := s.log.With("schedule", r.ID, "due", at.In(s.o.Location).Format(time.RFC3339))
	if !s.claim(r, at, log) {
		return
	}
	if late := now.Sub(at); late > catchUpAfter {
		log.Info("caught up a schedule that was due while the server was not running", "late", late.Round(time.Second).String())
	}
	steps, err := s.steps(r)
	if err != nil {
		log.Error("schedule could not run", "err", err)
	}
	for _, st := range steps {
		if r.fade > 0 && now.Before(at.Add(r.fade)) {
			s.startFade(r.ID, st, at, r.fade, now)
			continue
		}
		delete(s.fades, st.lamp)
		if err := apply(s.o.Lamps, st); err != nil {
			log.Error("schedule could not change the lamps", "lamp", st.lamp, "err", err)
		}
	}
	log.Info("schedule ran", "fade", r.Fade)
	if r.In != "" {
		// Its record says it ran, so it would not run again if this fails.
		if err := s.o.Records.Delete(SchedulePrefix + r.ID); err != nil {
			log.Error("could not remove a timer that ran", "err", err)
		}
		delete(s.all, r.ID)
	}
}

func (s *Scheduler) steps(r *record) ([]step, error) {
	if r.Do.Scene != "" {
		sc, err := s.o.Scenes.Get(r.Do.Scene)
		if err != nil {
			return nil, err
		}
		return sc.steps(), nil
	}
	if len(r.Lamps) == 0 {
		return []step{{change: r.Do.State.Change}}, nil
	}
	out := make([]step, len(r.Lamps))
	for i, id := range r.Lamps {
		out[i] = step{lamp: id, change: r.Do.State.Change}
	}
	return out, nil
}

// fade moves one target's colour from one to another over a while. Only
// manual colours and off (black) can be faded; the lamp shows manual mode
// on the way and the target state, exactly, at the end.
type fade struct {
	schedule   string
	target     step
	from, to   protocol.RGB
	pulse      int
	start, end time.Time
	interval   time.Duration // between steps: 1 s or one visible change, whichever is rarer
	nextAt     time.Time
	shown      string // the packet the target showed after the fade's last write
	lastColor  protocol.RGB
}

// rgb is what st looks like as a colour (dimmed by its brightness), if it
// can be faded.
func rgb(st state.State) (protocol.RGB, bool) {
	switch st.Mode {
	case state.ModeManual:
		return state.Dimmed(st.Color, st.Brightness), true
	case state.ModeOff:
		return protocol.RGB{}, true
	}
	return protocol.RGB{}, false
}

func (s *Scheduler) startFade(schedule string, st step, start time.Time, d time.Duration, now time.Time) {
	cur, ok := stateOf(s.o.Lamps, st.lamp)
	if !ok {
		return
	}
	goal, err := cur.With(st.change)
	from, okFrom := rgb(cur)
	to, okTo := rgb(goal)
	if err != nil || !okFrom || !okTo {
		// Weather animations have no colour to fade through.
		delete(s.fades, st.lamp)
		if err := apply(s.o.Lamps, st); err != nil {
			s.log.Error("schedule could not change the lamps", "schedule", schedule, "lamp", st.lamp, "err", err)
		}
		return
	}
	pulse := goal.Pulse
	if goal.Mode == state.ModeOff {
		pulse = cur.Pulse
	}
	changes := max(absDiff(from.R, to.R), absDiff(from.G, to.G), absDiff(from.B, to.B), 1)
	interval := max(time.Second, d/time.Duration(changes))
	f := &fade{schedule: schedule, target: st, from: from, to: to, pulse: pulse, start: start, end: start.Add(d),
		interval: interval, nextAt: now, shown: cur.Packet, lastColor: from}
	if cur.Mode == state.ModeOff {
		f.shown = "" // the first step writes black in manual mode
	}
	s.fades[st.lamp] = f
	s.log.Info("fade started", "schedule", schedule, "lamp", st.lamp, "from", from.Hex(), "to", to.Hex(), "until", f.end.In(s.o.Location).Format(time.RFC3339))
}

func absDiff(a, b uint8) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}

// stepFade moves f on to now; false when it is over: done, or stopped
// because somebody else changed the lamps it fades (a person wins).
func (s *Scheduler) stepFade(f *fade, now time.Time) bool {
	log := s.log.With("schedule", f.schedule, "lamp", f.target.lamp)
	cur, ok := stateOf(s.o.Lamps, f.target.lamp)
	if !ok {
		return false
	}
	if f.shown != "" && cur.Packet != f.shown {
		log.Info("fade stopped: the lamps were changed by someone else", "showing", cur.Packet)
		return false
	}
	if now.Before(f.nextAt) {
		return true
	}
	if !now.Before(f.end) {
		if err := apply(s.o.Lamps, f.target); err != nil {
			log.Error("fade could not reach its end", "err", err)
		}
		log.Info("fade done")
		return false
	}
	frac := float64(now.Sub(f.start)) / float64(f.end.Sub(f.start))
	c := protocol.RGB{R: lerp(f.from.R, f.to.R, frac), G: lerp(f.from.G, f.to.G, frac), B: lerp(f.from.B, f.to.B, frac)}
	f.nextAt = now.Add(f.interval)
	if c == f.lastColor && f.shown != "" {
		return true
	}
	// The steps are the colours a lamp shows on the way, at full
	// brightness; the last step is the target state itself.
	manual, pulse, full := state.ModeManual, f.pulse, state.DefaultBrightness
	ch := state.Change{Mode: &manual, Color: &c, Brightness: &full, Pulse: &pulse}
	var next state.State
	var err error
	if f.target.lamp == "" {
		next, err = s.o.Lamps.ApplyShared(ch)
	} else {
		next, err = s.o.Lamps.ApplyLamp(f.target.lamp, ch)
	}
	if err != nil {
		log.Error("fade step failed; stopping the fade", "err", err)
		return false
	}
	f.shown, f.lastColor = next.Packet, c
	return true
}

func lerp(a, b uint8, f float64) uint8 {
	return uint8(float64(a) + (float64(b)-float64(a))*f + 0.5)
}

// wakeAt is when Tick has something to do next.
func (s *Scheduler) wakeAt(now time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	wake := now.Add(maxWait)
	for _, r := range s.all {
		if next, ok := s.next(r, now); ok && r.Enabled && next.Before(wake) {
			wake = next
		}
	}
	for _, f := range s.fades {
		for _, t := range []time.Time{f.nextAt, f.end} {
			if t.Before(wake) {
				wake = t
			}
		}
	}
	return wake
}

// reload reads the records changed since NewScheduler read them (by
// another node, before the watch of Run started). One removed meanwhile
// is found out by its claim.
func (s *Scheduler) reload() {
	keys, err := s.o.Records.Keys(SchedulePrefix)
	if err != nil {
		s.log.Error("could not list the schedules; following later changes only", "err", err)
		return
	}
	for _, key := range keys {
		if e, err := s.o.Records.Get(key); err == nil {
			s.follow(e)
		}
	}
}

// Fading says which targets a fade is moving now ("" is the shared state).
func (s *Scheduler) Fading() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.fades))
}

// Run catches up on what was due while the server was down, then runs the
// schedules until ctx ends, following the changes other nodes make to
// them.
func (s *Scheduler) Run(ctx context.Context) {
	stop := s.o.Records.Watch(SchedulePrefix, s.follow)
	// Stopping a JetStream watch can wait for NATS (after a NATS restart up
	// to its request timeout); the shutdown does not wait for it, and a
	// change still coming in only updates the schedules in memory.
	defer func() { go stop() }()
	s.reload()
	for {
		now := s.o.Clock.Now()
		s.Tick(now)
		c, stop := s.o.Clock.After(max(s.wakeAt(now).Sub(now), 0))
		select {
		case <-ctx.Done():
			stop()
			return
		case <-s.wake:
			stop()
		case <-c:
		}
	}
}
