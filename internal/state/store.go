package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/invalid"
	"github.com/cloudcloud/cloudcloud/internal/storage"
)

// Key is the display state's record in the storage bucket (state.json in
// the data directory).
const Key = "state"

// decode reads a saved state and checks it as a change from the defaults
// would be checked, so a record written by an older version, by hand or by
// another node is held to the same rules as a request.
func decode(data []byte) (State, error) {
	// A state saved before brightness existed has none: full brightness.
	disk := State{Brightness: DefaultBrightness}
	if err := json.Unmarshal(data, &disk); err != nil {
		return State{}, err
	}
	loaded, err := Default().apply(Change{Mode: &disk.Mode, Color: &disk.Color, Brightness: &disk.Brightness, Pulse: &disk.Pulse,
		WeatherOverride: OverrideChange{Set: true, Value: disk.WeatherOverride}})
	if err != nil {
		return State{}, err
	}
	if disk.Weather.Code >= 1 && disk.Weather.Code <= 9 {
		loaded.Weather = disk.Weather
	}
	loaded.UpdatedAt = disk.UpdatedAt
	loaded.Packet = loaded.packet().String()
	return loaded, nil
}

// PreviewFor is how long a weather preview shows after its last change:
// long enough to look at the lamps, short enough that a preview somebody
// forgot does not stand in for the weather for days.
const PreviewFor = time.Minute

// Store is the one owner of the display state.
type Store struct {
	records storage.Bucket
	bus     events.Publisher
	logger  *slog.Logger
	now     func() time.Time

	mu       sync.Mutex // serialises changes so disk, watchers and events see one order
	cur      State
	watchers []func(State)

	previewFor   time.Duration // PreviewFor; a field so tests can shorten it
	previewTimer *time.Timer   // ends the preview at cur.PreviewEndsAt

	rev uint64 // the record's revision cur came from
}

// Open loads the state from records (creating nothing until the first
// change). An unusable record is set aside, logged, and the store starts
// from defaults.
func Open(records storage.Bucket, bus events.Publisher, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Store{records: records, bus: bus, logger: logger, now: time.Now, cur: Default(), previewFor: PreviewFor}
	var disk json.RawMessage
	var loaded State
	check := func() (err error) {
		loaded, err = decode(disk)
		return err
	}
	rev, found, err := storage.LoadJSON(records, Key, &disk, check, logger, "display state")
	if err != nil {
		return nil, err
	}
	s.rev = rev
	// Changes by another writer of the record (another node) follow as long
	// as the process lives.
	records.Watch(Key, s.follow)
	if !found {
		logger.Info("no saved display state; starting with the lamps off")
		return s, nil
	}
	s.cur = loaded
	// A preview found on disk (the server stopped during one) gets its
	// full time from now, then ends like any other.
	s.mu.Lock()
	s.schedulePreviewEnd(true)
	s.mu.Unlock()
	logger.Info("display state loaded", "mode", loaded.Mode, "packet", loaded.Packet)
	return s, nil
}

// Get returns the current state.
func (s *Store) Get() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// Watch registers fn to be called with every new state, in order, and calls
// it once right away with the current one. fn runs under the store's lock:
// it must be quick and must not call back into the Store. This is how the
// lamp gateway gets every display change with no gap and no reordering.
func (s *Store) Watch(fn func(State)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watchers = append(s.watchers, fn)
	fn(s.cur)
}

// Apply validates c, applies it, writes the result to disk, then announces
// it. On any error the state is left exactly as it was.
func (s *Store) Apply(c Change) (State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.commit(func(cur State) (State, error) {
		next, err := cur.apply(c)
		if err != nil {
			return cur, err
		}
		if c.WeatherOverride.Set {
			// A new or changed preview lasts PreviewFor from now.
			next.PreviewEndsAt = nil
			if next.WeatherOverride != nil {
				ends := s.now().Add(s.previewFor).UTC().Truncate(time.Millisecond)
				next.PreviewEndsAt = &ends
			}
		}
		return next, nil
	})
	if err == nil && c.WeatherOverride.Set {
		s.schedulePreviewEnd(false)
	}
	return st, err
}

// schedulePreviewEnd sets the timer that ends the current preview; s.mu is
// held. fresh gives a preview its full time from now (a preview loaded
// from disk).
func (s *Store) schedulePreviewEnd(fresh bool) {
	if s.previewTimer != nil {
		s.previewTimer.Stop()
		s.previewTimer = nil
	}
	if s.cur.WeatherOverride == nil {
		s.cur.PreviewEndsAt = nil
		return
	}
	if fresh || s.cur.PreviewEndsAt == nil {
		ends := s.now().Add(s.previewFor).UTC().Truncate(time.Millisecond)
		s.cur.PreviewEndsAt = &ends
	}
	s.previewTimer = time.AfterFunc(s.cur.PreviewEndsAt.Sub(s.now()), s.endPreview)
}

// endPreview returns the lamps to the live weather, unless the preview was
// changed (and so given a new end) or ended meanwhile.
func (s *Store) endPreview() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur.WeatherOverride == nil || s.cur.PreviewEndsAt == nil || s.now().Before(*s.cur.PreviewEndsAt) {
		return
	}
	_, err := s.commit(func(cur State) (State, error) {
		next, err := cur.apply(Change{WeatherOverride: OverrideChange{Set: true}})
		next.PreviewEndsAt = nil
		return next, err
	})
	if err != nil {
		s.logger.Error("could not end the weather preview; it stays until changed", "err", err)
		return
	}
	s.logger.Info("the weather preview ended; the lamps show the live weather again")
}

// SetWeather records the live weather. It reaches the lamps at once in
// weather mode and is only remembered otherwise.
func (s *Store) SetWeather(w Weather) (State, error) {
	if w.Code < 1 || w.Code > 9 || w.Intensity < 0 || w.Intensity > 10 {
		return s.Get(), invalid.Field("weather", "code %d intensity %v is out of range", w.Code, w.Intensity)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur.Weather == w {
		return s.cur, nil
	}
	return s.commit(func(cur State) (State, error) {
		cur.Weather = w
		return cur, nil
	})
}

// commit persists what edit makes of the current state and makes it
// current; s.mu is held. The write is a compare-and-set of the record this
// state came from: when another node of a cluster changed it meanwhile (its
// change not yet followed here), that change is taken and edit applies to
// it, so neither is lost. On an error the state is left as it was.
func (s *Store) commit(edit func(cur State) (State, error)) (State, error) {
	for range 5 {
		next, err := edit(s.cur)
		if err != nil {
			return s.cur, err
		}
		next.Packet = next.packet().String()
		next.UpdatedAt = s.now().UTC().Truncate(time.Millisecond)
		rev, err := storage.UpdateJSON(s.records, Key, next, s.rev)
		var conflict *storage.ConflictError
		if errors.As(err, &conflict) {
			if e, err := s.records.Get(Key); err == nil {
				s.followLocked(e)
			}
			continue
		}
		if err != nil {
			return s.cur, fmt.Errorf("save display state (nothing was changed): %w", err)
		}
		s.rev = rev
		s.become(next)
		return next, nil
	}
	return s.cur, errors.New("save display state (nothing was changed): other nodes kept changing it; try again")
}

// become makes next current and announces it; s.mu is held.
func (s *Store) become(next State) {
	s.cur = next
	for _, fn := range s.watchers {
		fn(next)
	}
	if s.bus != nil {
		s.bus.Publish(events.Event{Type: events.TypeState, Time: next.UpdatedAt, Data: next})
	}
}

// follow takes a change of the record that another writer made (another
// node of a cluster sharing the storage): it becomes the state here too,
// reaching this node's lamps. The store's own writes come back through the
// watch as well, at a revision it already has, and are skipped.
func (s *Store) follow(e storage.Entry) {
	if e.Key != Key || e.Deleted {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.followLocked(e)
}

// followLocked is follow with s.mu held.
func (s *Store) followLocked(e storage.Entry) {
	if e.Revision <= s.rev {
		return
	}
	next, err := decode(e.Value)
	if err != nil {
		s.logger.Error("ignored a display state written elsewhere that is not valid", "revision", e.Revision, "err", err)
		return
	}
	s.rev = e.Revision
	s.become(next)
	s.schedulePreviewEnd(true)
}
