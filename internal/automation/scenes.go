package automation

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/cloudcloud/cloudcloud/internal/invalid"
	"github.com/cloudcloud/cloudcloud/internal/state"
	"github.com/cloudcloud/cloudcloud/internal/storage"
)

// Scene is a named set-up of the lamps: a shared state subset, applied
// first as by PUT /api/state, then each lamp's own.
type Scene struct {
	ID     string            `json:"id"`
	Name   string            `json:"name"`
	Shared *Subset           `json:"shared"`
	Lamps  map[string]Subset `json:"lamps"`
}

// UnknownSceneError is an id with no scene; the web port answers 404.
type UnknownSceneError struct{ ID string }

func (e *UnknownSceneError) Error() string {
	return fmt.Sprintf("there is no scene %q; GET /api/scenes lists them", e.ID)
}

// idPattern is what scene and schedule ids are made of (API.md).
var idPattern = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)

// CheckID refuses an id API.md does not allow.
func CheckID(id string) error {
	if !idPattern.MatchString(id) {
		return invalid.Field("id", "%q is not an id; use 1-32 of a-z, 0-9, _ and -", id)
	}
	return nil
}

func checkName(name string) error {
	if n := utf8.RuneCountInString(strings.TrimSpace(name)); n < 1 || n > 64 {
		return invalid.Field("name", "a name of 1-64 characters is required (got %d)", n)
	}
	return nil
}

// slug makes an id from a name: "Movie night" → "movie-night".
func slug(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case b.Len() > 0 && !dash:
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= 28 {
			break
		}
	}
	s := strings.Trim(b.String(), "-")
	if s == "" {
		s = "scene"
	}
	return s
}

// uniqueID is slug(name), with -2, -3, ... when taken.
func uniqueID(name string, taken func(string) bool) string {
	base := slug(name)
	id := base
	for i := 2; taken(id); i++ {
		id = fmt.Sprintf("%s-%d", base, i)
	}
	return id
}

// ScenePrefix starts the key of every scene record.
const ScenePrefix = "scenes/"

// Scenes keeps the scenes in the storage bucket, one record each
// ("scenes/<id>").
type Scenes struct {
	records storage.Bucket
	lamps   Lamps
	log     *slog.Logger

	mu  sync.Mutex
	all map[string]Scene
}

// OpenScenes loads every scene; an unusable record is set aside and logged.
func OpenScenes(records storage.Bucket, lamps Lamps, log *slog.Logger) (*Scenes, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Scenes{records: records, lamps: lamps, log: log, all: map[string]Scene{}}
	keys, err := records.Keys(ScenePrefix)
	if err != nil {
		return nil, fmt.Errorf("list scenes: %w", err)
	}
	for _, key := range keys {
		var sc Scene
		_, found, err := storage.LoadJSON(records, key, &sc, func() error { return s.check(sc, false) }, log, "scene")
		if err != nil {
			return nil, err
		}
		if found && ScenePrefix+sc.ID == key {
			s.all[sc.ID] = sc
		}
	}
	// Scenes made, changed or deleted through another node of a cluster
	// sharing the records follow as long as the process lives.
	records.Watch(ScenePrefix, s.follow)
	return s, nil
}

// follow takes a change of a scene's record. The record is read again
// rather than taken from the change, so whatever order changes of this
// node and the others arrive in, the scene ends as stored (this node's own
// writes come back through the watch as well).
func (s *Scenes) follow(e storage.Entry) {
	id, ok := strings.CutPrefix(e.Key, ScenePrefix)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.records.Get(e.Key)
	if errors.Is(err, storage.ErrNotFound) {
		delete(s.all, id)
		return
	}
	var sc Scene
	if err == nil {
		err = json.Unmarshal(cur.Value, &sc)
	}
	if err == nil && sc.ID == id {
		err = s.check(sc, false)
	}
	if err != nil || sc.ID != id {
		s.log.Warn("ignored a scene record changed elsewhere that cannot be used", "key", e.Key, "err", err)
		return
	}
	s.all[id] = sc
}

// check validates a scene; lamp ids must be known unless loading (a lamp
// forgotten since keeps its entry, which then does nothing).
func (s *Scenes) check(sc Scene, known bool) error {
	if err := CheckID(sc.ID); err != nil {
		return err
	}
	if err := checkName(sc.Name); err != nil {
		return err
	}
	if sc.Shared == nil && len(sc.Lamps) == 0 {
		return invalid.Field("shared", "a scene needs a shared state or at least one lamp's state")
	}
	if sc.Shared != nil {
		if err := checkSubset("shared", *sc.Shared); err != nil {
			return err
		}
	}
	for _, id := range slices.Sorted(maps.Keys(sc.Lamps)) {
		if known {
			if _, ok := s.lamps.Lamp(id); !ok {
				return invalid.Field("lamps."+id, "there is no lamp %q; GET /api/lamps lists them", id)
			}
		}
		if err := checkSubset("lamps."+id, sc.Lamps[id]); err != nil {
			return err
		}
	}
	return nil
}

func checkSubset(where string, c Subset) error {
	if c.Empty() {
		return invalid.Field(where, "the state is empty; set any of mode, color, pulse, weather_override")
	}
	if err := state.Validate(c.Change); err != nil {
		var ie *invalid.Error
		if errors.As(err, &ie) {
			return invalid.Field(where+"."+ie.Field, "%s", ie.Message)
		}
		return err
	}
	return nil
}

// List is every scene, by name.
func (s *Scenes) List() []Scene {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Collect(maps.Values(s.all))
	slices.SortFunc(out, func(a, b Scene) int {
		return strings.Compare(strings.ToLower(a.Name)+a.ID, strings.ToLower(b.Name)+b.ID)
	})
	return out
}

// Get is one scene.
func (s *Scenes) Get(id string) (Scene, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, ok := s.all[id]
	if !ok {
		return Scene{}, &UnknownSceneError{ID: id}
	}
	return sc, nil
}

// Put creates or replaces a scene after checking it and writing it down.
func (s *Scenes) Put(sc Scene) (Scene, error) {
	sc.Name = strings.TrimSpace(sc.Name)
	if sc.Lamps == nil {
		sc.Lamps = map[string]Subset{}
	}
	if err := s.check(sc, true); err != nil {
		return Scene{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := storage.PutJSON(s.records, ScenePrefix+sc.ID, sc); err != nil {
		return Scene{}, fmt.Errorf("save scene %s (nothing was changed): %w", sc.ID, err)
	}
	s.all[sc.ID] = sc
	return sc, nil
}

// Create makes a new scene with an id from its name. fromCurrent fills it
// with what the lamps show now: the shared state, and each lamp that shows
// its own.
func (s *Scenes) Create(sc Scene, fromCurrent bool) (Scene, error) {
	if err := checkName(sc.Name); err != nil {
		return Scene{}, err
	}
	if fromCurrent {
		shared := FromState(s.lamps.Shared())
		sc.Shared, sc.Lamps = &shared, map[string]Subset{}
		for _, l := range s.lamps.Lamps() {
			if !l.FollowsShared {
				sc.Lamps[l.ID] = FromState(l.State)
			}
		}
	}
	s.mu.Lock()
	sc.ID = uniqueID(sc.Name, func(id string) bool { _, ok := s.all[id]; return ok })
	s.mu.Unlock()
	return s.Put(sc)
}

// Delete removes a scene; an unknown id is an error, so a typo is seen.
func (s *Scenes) Delete(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.all[id]; !ok {
		return &UnknownSceneError{ID: id}
	}
	if err := s.records.Delete(ScenePrefix + id); err != nil {
		return fmt.Errorf("delete scene %s (nothing was changed): %w", id, err)
	}
	delete(s.all, id)
	return nil
}

// Apply shows the scene on the lamps.
func (s *Scenes) Apply(id string) error {
	sc, err := s.Get(id)
	if err != nil {
		return err
	}
	for _, st := range sc.steps() {
		if err := apply(s.lamps, st); err != nil {
			return err
		}
	}
	s.log.Info("scene applied", "scene", id)
	return nil
}

// step is one change to one target: the shared state (lamp "") or a lamp.
type step struct {
	lamp   string
	change state.Change
}

// steps are the scene's changes in the order they are applied.
func (sc Scene) steps() []step {
	var out []step
	if sc.Shared != nil {
		out = append(out, step{change: sc.Shared.Change})
	}
	for _, id := range slices.Sorted(maps.Keys(sc.Lamps)) {
		out = append(out, step{lamp: id, change: sc.Lamps[id].Change})
	}
	return out
}

func apply(l Lamps, st step) error {
	if st.lamp == "" {
		_, err := l.ApplyShared(st.change)
		return err
	}
	if _, ok := l.Lamp(st.lamp); !ok {
		return nil // forgotten since the scene was saved
	}
	_, err := l.ApplyLamp(st.lamp, st.change)
	return err
}

func stateOf(l Lamps, lamp string) (state.State, bool) {
	if lamp == "" {
		return l.Shared(), true
	}
	return l.Lamp(lamp)
}
