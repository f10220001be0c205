package state

import (
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

// Store is the one owner of the display state.
type Store struct {
	records storage.Bucket
	bus     events.Publisher
	logger  *slog.Logger
	now     func() time.Time

	mu       sync.Mutex // serialises changes so disk, watchers and events see one order
	cur      State
	watchers []func(State)
}

// Open loads the state from records (creating nothing until the first
// change). An unusable record is set aside, logged, and the store starts
// from defaults.
func Open(records storage.Bucket, bus events.Publisher, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Store{records: records, bus: bus, logger: logger, now: time.Now, cur: Default()}
	// A state saved before brightness existed has none: full brightness.
	disk := State{Brightness: DefaultBrightness}
	var loaded State
	check := func() (err error) {
		loaded, err = Default().apply(Change{Mode: &disk.Mode, Color: &disk.Color, Brightness: &disk.Brightness, Pulse: &disk.Pulse,
			WeatherOverride: OverrideChange{Set: true, Value: disk.WeatherOverride}})
		return err
	}
	_, found, err := storage.LoadJSON(records, Key, &disk, check, logger, "display state")
	if err != nil {
		return nil, err
	}
	if !found {
		logger.Info("no saved display state; starting with the lamps off")
		return s, nil
	}
	if disk.Weather.Code >= 1 && disk.Weather.Code <= 9 {
		loaded.Weather = disk.Weather
	}
	loaded.UpdatedAt = disk.UpdatedAt
	loaded.Packet = loaded.packet().String()
	s.cur = loaded
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
	next, err := s.cur.apply(c)
	if err != nil {
		return s.cur, err
	}
	return s.commit(next)
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
	next := s.cur
	next.Weather = w
	return s.commit(next)
}

// commit persists next and makes it current; s.mu is held.
func (s *Store) commit(next State) (State, error) {
	next.Packet = next.packet().String()
	next.UpdatedAt = s.now().UTC().Truncate(time.Millisecond)
	if _, err := storage.PutJSON(s.records, Key, next); err != nil {
		return s.cur, fmt.Errorf("save display state (nothing was changed): %w", err)
	}
	s.cur = next
	for _, fn := range s.watchers {
		fn(next)
	}
	if s.bus != nil {
		s.bus.Publish(events.Event{Type: events.TypeState, Time: next.UpdatedAt, Data: next})
	}
	return next, nil
}
