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
//
// Several nodes of a cluster share the records (docs/cluster.md): each
// registry watches them, so a lamp changed, added or forgotten through
// another node, or an epoch raised there, is followed here, and writes
// compare-and-set at the revision the registry knows, merging another
// node's change when it lost the race instead of overwriting it.
package lamps

import (
	"encoding/hex"
	"encoding/json"
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
	rev    uint64       // the revision of the record rec was read from or written as (0: none)
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

// maxTries bounds the compare-and-set attempts of one write: each failed
// one means another node changed the record in between, which is read and
// merged before the next.
const maxTries = 5

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

	epochRev uint64 // the revision of the epoch record epoch came from
	watches  []func()
	closed   bool // Close has begun: the watches' calls change nothing; guarded by writes

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
	// The watches start before the records are read, so no change made
	// elsewhere meanwhile is missed; they wait for r.writes until the
	// registry is loaded, then skip what it read already.
	r.writes.Lock()
	r.watches = []func(){
		opt.Records.Watch(namePrefix, r.follow),
		opt.Records.Watch(hexPrefix, r.follow),
		opt.Records.Watch(EpochKey, r.followEpoch),
	}
	err := r.load()
	r.writes.Unlock()
	if err != nil {
		r.stopWatches()
		return nil, err
	}
	opt.Shared.Watch(r.sharedChanged)
	r.log.Info("lamps loaded", "lamps", len(r.lamps))
	go r.flushLoop()
	return r, nil
}

// load reads the epoch and every lamp's record; r.writes is held.
func (r *Registry) load() error {
	opt := r.opt
	var ep epochRecord
	rev, _, err := storage.LoadJSON(opt.Records, EpochKey, &ep, nil, r.log, "lamp epoch")
	if err != nil {
		return err
	}
	r.epoch, r.epochRev = ep.Epoch, rev
	r.shared = opt.Shared.Get()
	var keys []string
	for _, prefix := range []string{namePrefix, hexPrefix} {
		k, err := opt.Records.Keys(prefix)
		if err != nil {
			return fmt.Errorf("list lamps: %w", err)
		}
		keys = append(keys, k...)
	}
	for _, key := range keys {
		var rec record
		var own *state.State
		check := func() (err error) {
			own, err = r.parse(key, &rec)
			return err
		}
		rev, found, err := storage.LoadJSON(opt.Records, key, &rec, check, r.log, "lamp record")
		if err != nil {
			return err
		}
		if !found {
			continue
		}
		e := &entry{rec: rec, rev: rev}
		if own != nil && rec.Epoch >= r.epoch {
			e.own = own
			r.owned[rec.ID] = true
		} else if !rec.FollowsShared {
			// The shared state changed after its own was set.
			e.rec.FollowsShared, e.rec.State, e.dirty = true, nil, true
		}
		r.lamps[rec.ID] = e
	}
	return nil
}

// parse checks the lamp record read from key and restores its own state
// (nil: it follows the shared state); r.mu is held, or Open runs.
func (r *Registry) parse(key string, rec *record) (*state.State, error) {
	if rec.ID == "" || key != keyFor(rec.ID) {
		return nil, fmt.Errorf("the record of lamp %q is kept under %s", rec.ID, key)
	}
	if rec.State == nil || rec.FollowsShared {
		return nil, nil
	}
	st, err := restore(*rec.State, r.shared.Weather)
	if err != nil {
		return nil, err
	}
	return &st, nil
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

// idOf is the lamp id whose record key is key; false for any other key (a
// record set aside, say).
func idOf(key string) (string, bool) {
	id, ok := strings.CutPrefix(key, namePrefix)
	if !ok {
		h, isHex := strings.CutPrefix(key, hexPrefix)
		b, err := hex.DecodeString(h)
		if !isHex || err != nil {
			return "", false
		}
		id = string(b)
	}
	return id, id != "" && keyFor(id) == key
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

// update writes lamp id's record as next makes it from e, compare-and-set
// at the revision e has. When another node changed the record meanwhile,
// its change is read into e and next is asked again, so this change lands
// on top of that one instead of undoing it. A lamp forgotten elsewhere
// meanwhile (and not connected here) is an *UnknownError. r.writes and
// r.mu are held.
func (r *Registry) update(id string, e *entry, next func() (record, error)) error {
	for try := 1; ; try++ {
		rec, err := next()
		if err != nil {
			return err
		}
		rev, err := storage.UpdateJSON(r.opt.Records, keyFor(id), rec, e.rev)
		var conflict *storage.ConflictError
		if err == nil {
			e.rec, e.rev, e.dirty = rec, rev, false
			return nil
		}
		if !errors.As(err, &conflict) || try == maxTries {
			return fmt.Errorf("save lamp %q (nothing was changed): %w", id, err)
		}
		gone, err := r.reread(id, e)
		if err != nil {
			return fmt.Errorf("save lamp %q (nothing was changed): %w", id, err)
		}
		if gone {
			return &UnknownError{ID: id}
		}
	}
}

// reread takes in lamp id's record as it is now, after a compare-and-set
// lost to another node's write; gone when that was a forget (and the lamp
// is not connected here, else it is written back). r.writes and r.mu are
// held.
func (r *Registry) reread(id string, e *entry) (gone bool, err error) {
	key := keyFor(id)
	se, err := r.opt.Records.Get(key)
	if errors.Is(err, storage.ErrNotFound) {
		if e.online > 0 {
			e.rev, e.dirty = 0, true
			return false, nil
		}
		r.drop(id, e)
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if se.Revision <= e.rev {
		return false, nil
	}
	var rec record
	own, err := r.decode(key, se.Value, &rec)
	if err != nil {
		return false, fmt.Errorf("the record of lamp %q written elsewhere is unusable: %w", id, err)
	}
	r.absorb(e, rec, own, se.Revision)
	return false, nil
}

func (r *Registry) decode(key string, data []byte, rec *record) (*state.State, error) {
	if err := json.Unmarshal(data, rec); err != nil {
		return nil, err
	}
	return r.parse(key, rec)
}

// follow takes a change of a lamp record (the watch of Open). Most are
// this registry's own writes coming back, or older than what it has
// (another node's write overtaken by a later one): their revision says
// so, and they are skipped.
func (r *Registry) follow(se storage.Entry) {
	id, ok := idOf(se.Key)
	if !ok {
		return
	}
	r.writes.Lock()
	defer r.writes.Unlock()
	if r.closed {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.lamps[id]
	switch {
	case e != nil && se.Revision <= e.rev:
		return
	case se.Deleted && e == nil:
		return
	case se.Deleted && e.online > 0:
		// Forgotten elsewhere, but it is connected here: it stays, and the
		// flusher writes it back.
		e.rev, e.dirty = 0, true
		return
	case se.Deleted:
		r.drop(id, e)
		return
	}
	var rec record
	own, err := r.decode(se.Key, se.Value, &rec)
	if err != nil {
		r.log.Error("ignored a lamp record written elsewhere that is not valid", "key", se.Key, "revision", se.Revision, "err", err)
		return
	}
	if e == nil {
		e = &entry{}
		r.lamps[id] = e
		r.log.Info("a new lamp, added through another node", "lamp", id)
	}
	r.absorb(e, rec, own, se.Revision)
}

// absorb makes e the record another node wrote at rev: its label and own
// state; the later last-seen time, and this node's firmware version while
// the flusher still has it to write. The gateway shows an own state that
// changed. r.mu is held.
func (r *Registry) absorb(e *entry, rec record, own *state.State, rev uint64) {
	if own != nil && rec.Epoch < r.epoch {
		own = nil // set before the shared state last changed
	}
	mine := e.rec
	e.rec, e.rev = rec, rev
	if own == nil {
		e.rec.FollowsShared, e.rec.State, e.rec.Epoch = true, nil, 0
	}
	if mine.LastSeen.After(rec.LastSeen) {
		e.rec.LastSeen = mine.LastSeen
	}
	if mine.FirmwareVersion != "" && (e.dirty || rec.FirmwareVersion == "") {
		e.rec.FirmwareVersion = mine.FirmwareVersion
	}
	e.dirty = e.rec.LastSeen != rec.LastSeen || e.rec.FirmwareVersion != rec.FirmwareVersion
	was := ""
	if e.own != nil {
		was = e.own.Packet
	}
	e.own = own
	switch {
	case own != nil:
		r.owned[rec.ID] = true
		if own.Packet != was && r.gw != nil {
			_ = r.gw.SetLampDisplay(rec.ID, own.DisplayPacket())
		}
	case was != "":
		delete(r.owned, rec.ID)
		if r.gw != nil {
			r.gw.FollowShared(rec.ID)
		}
	}
	r.publish(e)
}

// drop forgets lamp id here (it was forgotten, here or elsewhere); r.mu is
// held.
func (r *Registry) drop(id string, e *entry) {
	delete(r.lamps, id)
	delete(r.owned, id)
	if r.gw != nil && e.own != nil {
		r.gw.FollowShared(id)
	}
	if r.opt.Bus != nil {
		r.opt.Bus.Publish(events.Event{Type: events.TypeLamp, Data: Changed{ID: id, Forgotten: true}})
	}
}

// followEpoch takes a change of the epoch record: raised elsewhere (PUT
// /api/state through another node), it makes every lamp with an older own
// state follow the shared state here too.
func (r *Registry) followEpoch(se storage.Entry) {
	if se.Key != EpochKey || se.Deleted {
		return
	}
	r.writes.Lock()
	defer r.writes.Unlock()
	if r.closed {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if se.Revision <= r.epochRev {
		return
	}
	var ep epochRecord
	if err := json.Unmarshal(se.Value, &ep); err != nil {
		r.log.Error("ignored a lamp epoch written elsewhere that is not valid", "revision", se.Revision, "err", err)
		return
	}
	r.setEpoch(ep, se.Revision)
}

// setEpoch makes ep the epoch, read at rev; r.mu is held.
func (r *Registry) setEpoch(ep epochRecord, rev uint64) {
	r.epoch, r.epochRev = ep.Epoch, rev
	if ids := r.dropOwnBefore(ep.Epoch, false); len(ids) > 0 && r.gw != nil {
		r.gw.FollowShared(ids...)
	}
}

// dropOwnBefore makes every lamp whose own state is older than epoch follow
// the shared state, and says which; tidy has the flusher rewrite their
// records (which already read as following). r.mu is held.
func (r *Registry) dropOwnBefore(epoch uint64, tidy bool) []string {
	var ids []string
	for id := range r.owned {
		e := r.lamps[id]
		if e.rec.Epoch >= epoch {
			continue
		}
		e.own, e.rec.FollowsShared, e.rec.State, e.rec.Epoch = nil, true, nil, 0
		e.dirty = e.dirty || tidy
		delete(r.owned, id)
		ids = append(ids, id)
		r.publish(e)
	}
	return ids
}

// SetState applies c to lamp id's state (its own, or a copy of the shared
// one), writes it, and sends it to that lamp only. On any error nothing
// changed.
func (r *Registry) SetState(id string, c state.Change) (state.State, error) {
	r.writes.Lock()
	defer r.writes.Unlock()
	// A change of every lamp through another node raises the epoch, and
	// this node's watch may not have brought it yet: an own state saved
	// under the old epoch would read as following everywhere, and this
	// change, answered as done, would be lost.
	if err := r.rereadEpoch(); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return state.State{}, fmt.Errorf("read the lamp epoch (nothing was changed): %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.lamps[id]
	if e == nil {
		return state.State{}, &UnknownError{ID: id}
	}
	var base, next state.State
	err := r.update(id, e, func() (record, error) {
		base = r.shared
		if e.own != nil {
			base = *e.own
		}
		st, err := base.With(c)
		if err != nil {
			return record{}, err
		}
		next = withWeather(st, r.shared.Weather, r.opt.Now().UTC().Truncate(time.Millisecond))
		rec := e.rec
		rec.FollowsShared, rec.State, rec.Epoch = false, &next, r.epoch
		return rec, nil
	})
	if err != nil {
		return base, err
	}
	e.own = &next
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
	err := r.update(id, e, func() (record, error) {
		rec := e.rec
		rec.FollowsShared, rec.State, rec.Epoch = true, nil, 0
		return rec, nil
	})
	if err != nil {
		return r.view(e), err
	}
	if e.own != nil {
		e.own = nil
		delete(r.owned, id)
		if r.gw != nil {
			r.gw.FollowShared(id)
		}
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
	owned := len(r.owned) > 0
	epoch, epochRev := r.epoch, r.epochRev
	r.mu.Unlock()
	var raisedRev uint64
	for try := 1; owned; try++ {
		rev, err := storage.UpdateJSON(r.opt.Records, EpochKey, epochRecord{Epoch: epoch + 1}, epochRev)
		if err == nil {
			raisedRev = rev
			break
		}
		var conflict *storage.ConflictError
		if errors.As(err, &conflict) && try < maxTries {
			// Raised elsewhere meanwhile: raise it past that.
			if err = r.rereadEpoch(); err == nil {
				r.mu.Lock()
				epoch, epochRev = r.epoch, r.epochRev
				r.mu.Unlock()
				continue
			}
		}
		return r.opt.Shared.Get(), fmt.Errorf("save the lamp epoch (nothing was changed): %w", err)
	}
	st, err := r.opt.Shared.Apply(c)
	if err != nil {
		if owned {
			// Best effort: the lamps keep their own states after a restart.
			rev, rerr := storage.UpdateJSON(r.opt.Records, EpochKey, epochRecord{Epoch: epoch}, raisedRev)
			if rerr != nil {
				r.log.Error("could not restore the lamp epoch; after a restart every lamp will follow the shared state", "err", rerr)
				rev = raisedRev
			}
			r.mu.Lock()
			r.epochRev = rev // the watch is not to take the raise for one made elsewhere
			r.mu.Unlock()
		}
		return st, err
	}
	if !owned {
		return st, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.epoch, r.epochRev = epoch+1, raisedRev
	// The records of the lamps' own states are of an older epoch now, so
	// they already read as "follows"; the flusher tidies them up.
	r.dropOwnBefore(epoch+1, true)
	if r.gw != nil {
		r.gw.FollowShared()
	}
	return st, nil
}

// rereadEpoch takes in the epoch record as it is now; r.writes is held.
func (r *Registry) rereadEpoch() error {
	se, err := r.opt.Records.Get(EpochKey)
	if err != nil {
		return err
	}
	var ep epochRecord
	if err := json.Unmarshal(se.Value, &ep); err != nil {
		return fmt.Errorf("the lamp epoch written elsewhere is unusable: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if se.Revision > r.epochRev {
		r.setEpoch(ep, se.Revision)
	}
	return nil
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
	err := r.update(id, e, func() (record, error) {
		rec := e.rec
		rec.Label = label
		return rec, nil
	})
	if err != nil {
		return r.view(e), err
	}
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
	case e.online > 0, r.gw != nil && len(r.gw.LampDevices(id)) > 0: // here, or on another node
		return &OnlineError{ID: id}
	}
	if err := r.opt.Records.Delete(keyFor(id)); err != nil {
		return fmt.Errorf("forget lamp %q (nothing was changed): %w", id, err)
	}
	r.drop(id, e)
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
		if err := r.flushOne(id); err != nil {
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

// flushOne writes lamp id's record if it is dirty, compare-and-set like
// update, but without holding r.mu during the write, so thousands of lamps
// connecting do not wait for the disk. Only the last-seen time and firmware
// version are the flusher's: when another node changed the record
// meanwhile, its label and own state are kept. r.writes is held, so the
// entry stays the one in r.lamps.
func (r *Registry) flushOne(id string) error {
	for try := 1; ; try++ {
		r.mu.Lock()
		e := r.lamps[id]
		if e == nil || !e.dirty {
			r.mu.Unlock()
			return nil
		}
		rec, rev := e.rec, e.rev
		e.dirty = false
		r.mu.Unlock()
		next, err := storage.UpdateJSON(r.opt.Records, keyFor(id), rec, rev)
		r.mu.Lock()
		if err == nil {
			e.rev = next
			r.mu.Unlock()
			return nil
		}
		e.dirty = true
		var conflict *storage.ConflictError
		if errors.As(err, &conflict) && try < maxTries {
			_, err = r.reread(id, e)
		}
		r.mu.Unlock()
		if err != nil {
			return fmt.Errorf("save lamp %q: %w", id, err)
		}
	}
}

// closeBudget bounds the last flush: after thousands of lamps left at
// once, writing each one's last-seen time must not hold up a shutdown.
const closeBudget = 2 * time.Second

// Close stops following the records and the flusher and writes what is
// still unwritten, for at most closeBudget; call it after the gateway has
// shut down, so the lamps' last-seen times are final.
func (r *Registry) Close() {
	r.stopOnce.Do(func() {
		r.writes.Lock()
		r.closed = true
		r.writes.Unlock()
		// Stopping a JetStream watch can wait for NATS (after a NATS restart
		// up to its request timeout); the shutdown does not wait for it.
		go r.stopWatches()
		close(r.stop)
		<-r.stopped
		r.flush(time.Now().Add(closeBudget))
	})
}

func (r *Registry) stopWatches() {
	for _, stop := range r.watches {
		stop()
	}
}
