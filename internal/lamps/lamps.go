// Package lamps is the registry of every lamp ever seen (API.md "Lamps"):
// its id, the label people gave it, when it was last seen, the firmware it
// said it runs, and its own display state, until a person forgets it.
//
// Each lamp is one record in the storage bucket ("lamps/<id>"), so a change
// of one lamp writes one small file however many lamps there are. A lamp
// follows the shared state (state.Store) until a person gives it a state of
// its own; the next change of the shared state (PUT /api/state) replaces
// every lamp's own state. That reset does not rewrite every lamp's record:
// the registry keeps an epoch ("lamps-epoch"), raised by such a change, and
// an own state saved in an older epoch is read as "follows the shared
// state".
package lamps

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/invalid"
	"github.com/cloudcloud/cloudcloud/internal/state"
	"github.com/cloudcloud/cloudcloud/internal/storage"
	"github.com/cloudcloud/cloudcloud/protocol"
)

// Lamp is a lamp as the API shows it.
type Lamp struct {
	ID              string        `json:"id"`
	Label           string        `json:"label"`
	Online          bool          `json:"online"`
	FollowsShared   bool          `json:"follows_shared"`
	State           state.State   `json:"state"`
	LastSeen        time.Time     `json:"last_seen"`
	FirmwareVersion string        `json:"firmware_version"`
	Devices         []device.Info `json:"devices"`
}

// Changed is what the registry publishes on the bus (events.TypeLamp): the
// id of a lamp that changed. The lamp object is made by whoever shows it,
// when it does (the SSE stream, coalesced): thousands of lamps connecting
// behind one address are one lamp with thousands of connections, and
// listing them for each connection would cost the square of their number.
type Changed struct {
	ID        string
	Forgotten bool // a person forgot it
}

// record is a lamp on disk.
type record struct {
	ID              string    `json:"id"`
	Label           string    `json:"label,omitempty"`
	LastSeen        time.Time `json:"last_seen"`
	FirmwareVersion string    `json:"firmware_version,omitempty"`
	FollowsShared   bool      `json:"follows_shared"`
	// State is its own state while it does not follow the shared one; the
	// live weather in it is not used (every lamp shows the same weather).
	State *state.State `json:"state,omitempty"`
	// Epoch is the registry's epoch when State was set.
	Epoch uint64 `json:"epoch,omitempty"`
}

type entry struct {
	rec    record
	own    *state.State // nil: follows the shared state
	online int          // connections open now
	addr   string       // the IP address it last connected from
	dirty  bool         // rec changed and is not on disk yet
}

// Gateway is what the registry drives (device.Gateway).
type Gateway interface {
	SetLampDisplay(id string, p protocol.Packet) error
	FollowShared(ids ...string)
	LampDevices(id string) []device.Info
}

// Shared is the shared display state (state.Store).
type Shared interface {
	Get() state.State
	Apply(state.Change) (state.State, error)
	Watch(func(state.State))
}

// UnknownError names a lamp id that is not known.
type UnknownError struct{ ID string }

func (e *UnknownError) Error() string {
	return fmt.Sprintf("no lamp with id %q is known; GET /api/lamps lists them", e.ID)
}

// OnlineError refuses to forget a lamp that is connected.
type OnlineError struct{ ID string }

func (e *OnlineError) Error() string {
	return fmt.Sprintf("lamp %q is connected; only an offline lamp can be forgotten (switch it off first)", e.ID)
}

// Keys of the registry's records.
const (
	EpochKey   = "lamps-epoch"
	namePrefix = "lamps/"    // ids that are storage key segments: lamps/<id>
	hexPrefix  = "lamp-ids/" // any other id (an IPv6 address, a name in capitals): lamp-ids/<hex of the id>
	maxLabel   = 64
)

// DefaultFlushInterval is how often new lamps, firmware versions and
// last-seen times are written; changes a person makes are written at once.
const DefaultFlushInterval = 5 * time.Second

// Options configures a Registry.
type Options struct {
	Records       storage.Bucket
	Shared        Shared
	Bus           events.Publisher // may be nil
	Logger        *slog.Logger
	FlushInterval time.Duration // 0: DefaultFlushInterval
	Now           func() time.Time
}

// Registry is the one owner of the lamps.
type Registry struct {
	opt Options
	log *slog.Logger

	// writes serialises every change that goes to disk, so that the files
	// and memory agree on one order. Lock order: writes, then the shared
	// store, then mu, then the gateway.
	writes sync.Mutex
	mu     sync.Mutex
	lamps  map[string]*entry
	owned  map[string]bool // the ids of the lamps with a state of their own
	epoch  uint64
	shared state.State // as last announced by the shared store
	gw     Gateway

	stop     chan struct{}
	stopped  chan struct{}
	stopOnce sync.Once
	failing  bool // the flusher's last write failed; owned by flush
}

type epochRecord struct {
	Epoch uint64 `json:"epoch"`
}

// Open loads every lamp. Unusable records are set aside and logged (the
// lamp is then seen as new when it connects).
func Open(opt Options) (*Registry, error) {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.FlushInterval <= 0 {
		opt.FlushInterval = DefaultFlushInterval
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	r := &Registry{opt: opt, log: opt.Logger, lamps: map[string]*entry{}, owned: map[string]bool{}, stop: make(chan struct{}), stopped: make(chan struct{})}
	var ep epochRecord
	if _, _, err := storage.LoadJSON(opt.Records, EpochKey, &ep, nil, r.log, "lamp epoch"); err != nil {
		return nil, err
	}
	r.epoch = ep.Epoch
	r.shared = opt.Shared.Get()
	var keys []string
	for _, prefix := range []string{namePrefix, hexPrefix} {
		k, err := opt.Records.Keys(prefix)
		if err != nil {
			return nil, fmt.Errorf("list lamps: %w", err)
		}
		keys = append(keys, k...)
	}
	for _, key := range keys {
		var rec record
		var own *state.State
		check := func() error {
			if rec.ID == "" || key != keyFor(rec.ID) {
				return fmt.Errorf("the record of lamp %q is kept under %s", rec.ID, key)
			}
			if rec.State != nil && !rec.FollowsShared {
				st, err := restore(*rec.State, r.shared.Weather)
				if err != nil {
					return err
				}
				own = &st
			}
			return nil
		}
		_, found, err := storage.LoadJSON(opt.Records, key, &rec, check, r.log, "lamp record")
		if err != nil {
			return nil, err
		}
		if !found {
			continue
		}
		e := &entry{rec: rec}
		if own != nil && rec.Epoch == r.epoch {
			e.own = own
			r.owned[rec.ID] = true
		} else if !rec.FollowsShared {
			// The shared state changed after its own was set.
			e.rec.FollowsShared, e.rec.State, e.dirty = true, nil, true
		}
		r.lamps[rec.ID] = e
	}
	opt.Shared.Watch(r.sharedChanged)
	r.log.Info("lamps loaded", "lamps", len(r.lamps))
	go r.flushLoop()
	return r, nil
}

// restore checks a saved state as a change would be checked and derives its
// packet with the live weather.
func restore(s state.State, w state.Weather) (state.State, error) {
	st, err := state.Default().With(state.Change{Mode: &s.Mode, Color: &s.Color, Brightness: &s.Brightness, Pulse: &s.Pulse,
		WeatherOverride: state.OverrideChange{Set: true, Value: s.WeatherOverride}})
	if err != nil {
		return st, err
	}
	return withWeather(st, w, s.UpdatedAt), nil
}

func withWeather(s state.State, w state.Weather, updated time.Time) state.State {
	s.Weather, s.UpdatedAt = w, updated
	s.Packet = s.DisplayPacket().String()
	return s
}

// keyFor is the record key of lamp id.
func keyFor(id string) string {
	if device.CheckLampID(id) == nil {
		return namePrefix + id
	}
	return hexPrefix + hex.EncodeToString([]byte(id))
}

// Attach makes gw show each lamp's own state: now, and on every change.
func (r *Registry) Attach(gw Gateway) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gw = gw
	for id, e := range r.lamps {
		if e.own != nil {
			_ = gw.SetLampDisplay(id, e.own.DisplayPacket())
		}
	}
}

// Seen takes a lamp's connection coming or going (device.Options.OnLamp).
// A lamp never seen before joins the registry, following the shared state.
// It is written by the flusher, not here: a thousand lamps connecting must
// not wait for a thousand disk writes.
func (r *Registry) Seen(s device.LampSeen) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.lamps[s.Lamp]
	if e == nil {
		e = &entry{rec: record{ID: s.Lamp, FollowsShared: true}}
		r.lamps[s.Lamp] = e
		r.log.Info("a new lamp", "lamp", s.Lamp)
	}
	if s.Online {
		e.online++
	} else if e.online > 0 {
		e.online--
	}
	e.addr = s.Addr
	e.rec.LastSeen = s.Time.UTC().Truncate(time.Second)
	if s.FirmwareVersion != "" {
		e.rec.FirmwareVersion = s.FirmwareVersion
	}
	e.dirty = true
	r.publish(e)
}

// FirmwareFromAddress records the version a lamp's updater sent when it
// downloaded firmware (its headers), for the lamps last seen at addr.
func (r *Registry) FirmwareFromAddress(addr, version string) {
	if version == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.lamps {
		if e.addr == addr && e.rec.FirmwareVersion != version {
			e.rec.FirmwareVersion, e.dirty = version, true
			r.publish(e)
		}
	}
}

// sharedChanged follows the shared state (state.Store.Watch, under the
// store's lock): lamps with their own state in weather mode get the new
// weather too.
func (r *Registry) sharedChanged(st state.State) {
	r.mu.Lock()
	defer r.mu.Unlock()
	weatherChanged := st.Weather != r.shared.Weather
	r.shared = st
	if !weatherChanged {
		return
	}
	for id := range r.owned {
		e := r.lamps[id]
		next := withWeather(*e.own, st.Weather, e.own.UpdatedAt)
		changed := next.Packet != e.own.Packet
		e.own = &next
		if changed && r.gw != nil {
			_ = r.gw.SetLampDisplay(id, next.DisplayPacket())
			r.publish(e)
		}
	}
}

// Lamps lists every known lamp, by id.
func (r *Registry) Lamps() []Lamp {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Lamp, 0, len(r.lamps))
	for _, e := range r.lamps {
		out = append(out, r.view(e))
	}
	slices.SortFunc(out, func(a, b Lamp) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Lamp returns one lamp, or *UnknownError.
func (r *Registry) Lamp(id string) (Lamp, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.lamps[id]
	if e == nil {
		return Lamp{}, &UnknownError{ID: id}
	}
	return r.view(e), nil
}

// Unknown returns those of ids that are not known lamps.
func (r *Registry) Unknown(ids []string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, id := range ids {
		if r.lamps[id] == nil {
			out = append(out, id)
		}
	}
	return out
}

// view is e as the API shows it; r.mu is held.
func (r *Registry) view(e *entry) Lamp {
	l := Lamp{
		ID: e.rec.ID, Label: e.rec.Label, Online: e.online > 0, FollowsShared: e.own == nil,
		State: r.shared, LastSeen: e.rec.LastSeen, FirmwareVersion: e.rec.FirmwareVersion, Devices: []device.Info{},
	}
	if e.own != nil {
		l.State = *e.own
	}
	// The gateway knows the connections of every node in a cluster
	// (cluster.Cluster), not only the ones counted here.
	if r.gw != nil {
		l.Devices = r.gw.LampDevices(e.rec.ID)
		l.Online = l.Online || len(l.Devices) > 0
		for _, d := range l.Devices {
			if d.LastSeen.After(l.LastSeen) {
				l.LastSeen = d.LastSeen
			}
		}
	}
	return l
}

// publish announces that e changed; r.mu is held.
func (r *Registry) publish(e *entry) {
	if r.opt.Bus != nil {
		r.opt.Bus.Publish(events.Event{Type: events.TypeLamp, Data: Changed{ID: e.rec.ID}})
	}
}

// StateOf is lamp id's state: its own, or the shared one.
func (r *Registry) StateOf(id string) (state.State, error) {
	l, err := r.Lamp(id)
	return l.State, err
}

// SetState applies c to lamp id's state (its own, or a copy of the shared
// one), writes it, and sends it to that lamp only. On any error nothing
// changed.
func (r *Registry) SetState(id string, c state.Change) (state.State, error) {
	r.writes.Lock()
	defer r.writes.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.lamps[id]
	if e == nil {
		return state.State{}, &UnknownError{ID: id}
	}
	base := r.shared
	if e.own != nil {
		base = *e.own
	}
	next, err := base.With(c)
	if err != nil {
		return base, err
	}
	next = withWeather(next, r.shared.Weather, r.opt.Now().UTC().Truncate(time.Millisecond))
	rec := e.rec
	rec.FollowsShared, rec.State, rec.Epoch = false, &next, r.epoch
	if _, err := storage.PutJSON(r.opt.Records, keyFor(id), rec); err != nil {
		return base, fmt.Errorf("save lamp %q (nothing was changed): %w", id, err)
	}
	e.rec, e.own, e.dirty = rec, &next, false
	r.owned[id] = true
	if r.gw != nil {
		_ = r.gw.SetLampDisplay(id, next.DisplayPacket())
	}
	r.publish(e)
	return next, nil
}

// Follow gives lamp id the shared state again (the UI's "Follow all
// lamps"): its own state is dropped, on disk and on the lamp. On any error
// nothing changed.
func (r *Registry) Follow(id string) (Lamp, error) {
	r.writes.Lock()
	defer r.writes.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.lamps[id]
	if e == nil {
		return Lamp{}, &UnknownError{ID: id}
	}
	if e.own == nil {
		return r.view(e), nil
	}
	rec := e.rec
	rec.FollowsShared, rec.State, rec.Epoch = true, nil, 0
	if _, err := storage.PutJSON(r.opt.Records, keyFor(id), rec); err != nil {
		return r.view(e), fmt.Errorf("save lamp %q (nothing was changed): %w", id, err)
	}
	e.rec, e.own, e.dirty = rec, nil, false
	delete(r.owned, id)
	if r.gw != nil {
		r.gw.FollowShared(id)
	}
	r.publish(e)
	return r.view(e), nil
}

// Get returns the shared state.
func (r *Registry) Get() state.State { return r.opt.Shared.Get() }

// Apply applies c to the shared state (PUT /api/state) and gives it to
// every lamp: each lamp's own state is replaced. On any error nothing
// changed.
func (r *Registry) Apply(c state.Change) (state.State, error) {
	r.writes.Lock()
	defer r.writes.Unlock()
	// Checked first, so a bad change raises no epoch. Changes by people all
	// hold r.writes, so the check still holds when the store applies it
	// (the weather moving meanwhile changes no rule).
	if _, err := r.opt.Shared.Get().With(c); err != nil {
		return r.opt.Shared.Get(), err
	}
	r.mu.Lock()
	own := make([]string, 0, len(r.owned))
	for id := range r.owned {
		own = append(own, id)
	}
	epoch := r.epoch
	r.mu.Unlock()
	if len(own) > 0 {
		if _, err := storage.PutJSON(r.opt.Records, EpochKey, epochRecord{Epoch: epoch + 1}); err != nil {
			return r.opt.Shared.Get(), fmt.Errorf("save the lamp epoch (nothing was changed): %w", err)
		}
	}
	st, err := r.opt.Shared.Apply(c)
	if err != nil {
		if len(own) > 0 {
			// Best effort: the lamps keep their own states after a restart.
			if _, rerr := storage.PutJSON(r.opt.Records, EpochKey, epochRecord{Epoch: epoch}); rerr != nil {
				r.log.Error("could not restore the lamp epoch; after a restart every lamp will follow the shared state", "err", rerr)
			}
		}
		return st, err
	}
	if len(own) == 0 {
		return st, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.epoch = epoch + 1
	for _, id := range own {
		e := r.lamps[id]
		// The record on disk is of an older epoch now, so it already reads
		// as "follows"; the flusher tidies it up.
		e.own, e.rec.FollowsShared, e.rec.State, e.rec.Epoch, e.dirty = nil, true, nil, 0, true
		delete(r.owned, id)
		r.publish(e)
	}
	if r.gw != nil {
		r.gw.FollowShared()
	}
	return st, nil
}

// SetLabel names lamp id for people: 1-64 characters, no control characters.
func (r *Registry) SetLabel(id, label string) (Lamp, error) {
	label = strings.TrimSpace(label)
	switch n := utf8.RuneCountInString(label); {
	case !utf8.ValidString(label):
		return Lamp{}, invalid.Field("label", "is not valid UTF-8")
	case n < 1 || n > maxLabel:
		return Lamp{}, invalid.Field("label", "must be 1-%d characters (it has %d)", maxLabel, n)
	case strings.IndexFunc(label, unicode.IsControl) >= 0:
		return Lamp{}, invalid.Field("label", "may not contain control characters such as line breaks")
	}
	r.writes.Lock()
	defer r.writes.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.lamps[id]
	if e == nil {
		return Lamp{}, &UnknownError{ID: id}
	}
	rec := e.rec
	rec.Label = label
	if _, err := storage.PutJSON(r.opt.Records, keyFor(id), rec); err != nil {
		return r.view(e), fmt.Errorf("save lamp %q (nothing was changed): %w", id, err)
	}
	e.rec, e.dirty = rec, false
	r.publish(e)
	return r.view(e), nil
}

// Forget removes an offline lamp; a connected one is an *OnlineError.
func (r *Registry) Forget(id string) error {
	r.writes.Lock()
	defer r.writes.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.lamps[id]
	switch {
	case e == nil:
		return &UnknownError{ID: id}
	case e.online > 0:
		return &OnlineError{ID: id}
	}
	if err := r.opt.Records.Delete(keyFor(id)); err != nil {
		return fmt.Errorf("forget lamp %q (nothing was changed): %w", id, err)
	}
	delete(r.lamps, id)
	delete(r.owned, id)
	if r.gw != nil && e.own != nil {
		r.gw.FollowShared(id)
	}
	if r.opt.Bus != nil {
		r.opt.Bus.Publish(events.Event{Type: events.TypeLamp, Data: Changed{ID: id, Forgotten: true}})
	}
	r.log.Info("lamp forgotten", "lamp", id)
	return nil
}

// flushLoop writes what Seen changed, every FlushInterval, until Close.
func (r *Registry) flushLoop() {
	defer close(r.stopped)
	t := time.NewTicker(r.opt.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			r.flush(time.Time{})
		case <-r.stop:
			return
		}
	}
}

// flush writes the dirty records, one at a time, each under r.writes so a
// change by a person and the flusher never write one lamp out of order.
// With a deadline it stops there and says how many it left.
func (r *Registry) flush(deadline time.Time) {
	r.mu.Lock()
	var ids []string
	for id, e := range r.lamps {
		if e.dirty {
			ids = append(ids, id)
		}
	}
	r.mu.Unlock()
	var errs []error
	for i, id := range ids {
		if !deadline.IsZero() && time.Now().After(deadline) {
			r.log.Warn("stopped saving lamps at the deadline; their last-seen times (and lamps seen for the first time) are not on disk", "left", len(ids)-i)
			break
		}
		r.writes.Lock()
		r.mu.Lock()
		e := r.lamps[id]
		if e == nil || !e.dirty {
			r.mu.Unlock()
			r.writes.Unlock()
			continue
		}
		rec := e.rec
		e.dirty = false
		r.mu.Unlock()
		_, err := storage.PutJSON(r.opt.Records, keyFor(id), rec)
		if err != nil {
			r.mu.Lock()
			if e := r.lamps[id]; e != nil {
				e.dirty = true
			}
			r.mu.Unlock()
			errs = append(errs, err)
		}
		r.writes.Unlock()
	}
	switch err := errors.Join(errs...); {
	case err != nil && !r.failing:
		r.log.Error("cannot save lamps; retrying", "lamps", len(errs), "err", errs[0])
	case err == nil && r.failing:
		r.log.Info("lamps saved again")
	}
	r.failing = len(errs) > 0
}

// closeBudget bounds the last flush: after thousands of lamps left at
// once, writing each one's last-seen time must not hold up a shutdown.
const closeBudget = 2 * time.Second

// Close stops the flusher and writes what is still unwritten, for at most
// closeBudget; call it after the gateway has shut down, so the lamps'
// last-seen times are final.
func (r *Registry) Close() {
	r.stopOnce.Do(func() {
		close(r.stop)
		<-r.stopped
		r.flush(time.Now().Add(closeBudget))
	})
}
