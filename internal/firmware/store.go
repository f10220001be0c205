package firmware

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/storage"
)

// DefaultMaxSize is the upload limit when SaveOptions.MaxSize is not set
// (the firmware.max_size default).
const DefaultMaxSize = 4 << 20

// ErrNoImage means no firmware image has been uploaded yet.
var ErrNoImage = errors.New("no firmware image has been uploaded yet")

// ErrNoPrevious means there is no earlier image to roll back to.
var ErrNoPrevious = errors.New("there is no previous firmware image to roll back to")

// TooLargeError refuses an upload bigger than the configured limit; the HTTP
// layer answers 413.
type TooLargeError struct {
	Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("the file is larger than firmware.max_size, %s (%d bytes); an ESP32 application is usually 1-2 MiB, so check that this is the application .bin and not a merged flash image, or raise firmware.max_size",
		FormatSize(e.Limit), e.Limit)
}

// ChipMismatchError refuses an image built for another chip than the one the
// server is set up for.
type ChipMismatchError struct {
	Want, Got string
}

func (e *ChipMismatchError) Error() string {
	return fmt.Sprintf("this image is built for %s, but this server only accepts %s images (firmware.chip); build the firmware for %s, or change firmware.chip if your lamps really are %s",
		e.Got, e.Want, e.Want, e.Got)
}

// ProjectChangeError refuses an image of another project than the current
// one: flashing an unrelated program would turn the lamps into something that
// may never connect again.
type ProjectChangeError struct {
	Current, Uploaded string
}

func (e *ProjectChangeError) Error() string {
	return fmt.Sprintf("this image is project %q, but the current image is project %q; flashing another project can leave lamps that never connect again. If you really mean to switch, tick \"allow project change\" (API: allow_project_change=1) and upload again",
		e.Uploaded, e.Current)
}

// FormatSize writes a byte count for people: "812 B", "64 KiB", "1.4 MiB".
func FormatSize(n int64) string {
	const kib, mib = 1 << 10, 1 << 20
	trim := func(f float64) string { return strings.TrimSuffix(strconv.FormatFloat(f, 'f', 1, 64), ".0") }
	switch {
	case n < kib:
		return strconv.FormatInt(n, 10) + " B"
	case n < mib:
		return trim(float64(n)/kib) + " KiB"
	}
	return trim(float64(n)/mib) + " MiB"
}

// SaveOptions are the checks Save applies beyond the image being valid.
type SaveOptions struct {
	MaxSize            int64  // largest accepted file in bytes; 0 means DefaultMaxSize
	Chip               string // accepted chip name ("esp32", "esp32-s3", ...); "" accepts any
	AllowProjectChange bool   // accept an image whose project name differs from the current one
}

// state is what the "state" record holds: which images are current and
// previous, by SHA-256, and since when the current one has been current (the
// download's Last-Modified).
type state struct {
	Current      string    `json:"current,omitempty"`
	Previous     string    `json:"previous,omitempty"`
	CurrentSince time.Time `json:"current_since,omitzero"`
}

// Store keeps the current firmware image and the one before it: each image
// an object named by its SHA-256 with its Info in the record of that name,
// and the "state" record naming which is which (in a data directory:
// firmware/<sha256>.bin, firmware/<sha256>.json and firmware/state.json).
// Replacing the state record is the single step that switches images, so a
// crash at any moment leaves either the old or the new choice.
//
// Store is safe for concurrent use. A reader that opened the current image
// keeps reading it even if it is replaced meanwhile.
type Store struct {
	records storage.Bucket
	images  storage.Objects
	bus     events.Publisher
	logger  *slog.Logger
	now     func() time.Time

	mu       sync.RWMutex
	st       state
	current  Info
	previous Info
	rev      uint64 // the state record's revision st came from
}

// stateKey is the record naming the current and previous images.
const stateKey = "state"

// OpenStore loads the current and previous image info. Images that are
// missing or no longer match their recorded digest are logged and forgotten
// rather than served. Changes of the current image are announced on bus as
// firmware_status events.
func OpenStore(records storage.Bucket, images storage.Objects, bus events.Publisher, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{records: records, images: images, bus: bus, logger: logger, now: time.Now}

	var st state
	rev, found, err := storage.LoadJSON(records, stateKey, &st, nil, logger, "firmware state")
	if err != nil {
		return nil, fmt.Errorf("open firmware store: %w", err)
	}
	s.rev = rev
	// An upload or a rollback through another node of a cluster sharing
	// the records follows as long as the process lives.
	defer records.Watch(stateKey, s.follow)
	if !found {
		// A new store, or one whose state was lost: images found here are
		// not known to be unused, so they stay for a person to pick.
		return s, nil
	}
	if info, ok := s.loadImage(st.Current); ok {
		s.st.Current, s.st.CurrentSince, s.current = st.Current, st.CurrentSince, info
	}
	if info, ok := s.loadImage(st.Previous); ok {
		s.st.Previous, s.previous = st.Previous, info
	}
	if s.st.Current == "" && s.st.Previous != "" {
		logger.Warn("current firmware image unusable, falling back to the previous one", "sha256", s.st.Previous)
		s.st.Current, s.current = s.st.Previous, s.previous
		s.st.Previous, s.previous = "", Info{}
		s.st.CurrentSince = advanceSince(st.CurrentSince, s.now())
	}
	if s.st != st {
		if err := s.writeState(s.st); err != nil {
			return nil, fmt.Errorf("open firmware store: %w", err)
		}
	}
	s.removeUnused(st)
	return s, nil
}

// follow takes a change of the state record made by another node of a
// cluster (an upload, a rollback): the images it names become current and
// previous here too, so every node serves and shows the same image. The
// store's own writes come back through the watch too, at a revision it
// already has, and change nothing.
func (s *Store) follow(e storage.Entry) {
	if e.Key != stateKey || e.Deleted {
		return
	}
	var st state
	if json.Unmarshal(e.Value, &st) != nil {
		return
	}
	s.mu.RLock()
	seen := e.Revision <= s.rev // this store's own write, or an older one
	s.mu.RUnlock()
	if seen {
		return
	}
	// Checked (and, from JetStream, fetched) before the lock is taken, so
	// downloads of the image being replaced go on meanwhile.
	current, ok := s.loadImage(st.Current)
	if !ok {
		s.logger.Error("another node made an unusable firmware image current; keeping this node's", "sha256", st.Current)
		return
	}
	previous, ok := s.loadImage(st.Previous)
	if !ok {
		st.Previous = ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Revision <= s.rev {
		return // a write here overtook it while the images were checked
	}
	s.st, s.current, s.previous, s.rev = st, current, previous, e.Revision
	s.logger.Info("firmware image changed on another node", "project", current.Project, "version", current.Version, "sha256", current.SHA256)
	s.announce()
}

// loadImage reads the info of image id and re-checks the image against it.
func (s *Store) loadImage(id string) (Info, bool) {
	if id == "" {
		return Info{}, false
	}
	if !validID(id) {
		s.logger.Error("firmware state names an invalid image, ignoring it", "id", id)
		return Info{}, false
	}
	var saved Info
	if _, found, err := storage.LoadJSON(s.records, id, &saved, nil, s.logger, "firmware image info"); !found || err != nil {
		s.logger.Error("firmware image info missing or unreadable, ignoring the image", "sha256", id, "err", err)
		return Info{}, false
	}
	f, err := s.images.Open(id)
	if err != nil {
		s.logger.Error("firmware image unreadable, ignoring it", "sha256", id, "err", err)
		return Info{}, false
	}
	defer f.Close()
	info, err := Parse(f, f.Size())
	if err != nil || info.SHA256 != id || saved.SHA256 != id {
		s.logger.Error("firmware image on disk is damaged, ignoring it", "sha256", id, "err", err)
		return Info{}, false
	}
	// The image is authoritative for what it contains; the saved info adds
	// only what the image cannot say.
	info.UploadedAt = saved.UploadedAt
	return info, true
}

// removeUnused deletes images (and their info) that neither keep nor the
// store's state names: an interrupted Save, or a dropped image whose
// removal failed. Objects and records whose names are not image ids are
// not the store's and stay.
func (s *Store) removeUnused(keep state) {
	names, err := s.images.Names()
	if err != nil {
		s.logger.Warn("cannot list firmware images", "err", err)
		return
	}
	keys, err := s.records.Keys("")
	if err != nil {
		s.logger.Warn("cannot list firmware image info", "err", err)
		return
	}
	used := func(id string) bool {
		return !validID(id) || id == keep.Current || id == keep.Previous || id == s.st.Current || id == s.st.Previous
	}
	for _, id := range names {
		if !used(id) {
			s.removeImage(id)
		}
	}
	for _, id := range keys {
		if !used(id) {
			if err := s.records.Delete(id); err != nil {
				s.logger.Warn("cannot remove unused firmware image info", "sha256", id, "err", err)
			}
		}
	}
}

// Current returns the info of the image lamps download now.
func (s *Store) Current() (Info, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.current, s.st.Current != ""
}

// Previous returns the info of the image Rollback would bring back.
func (s *Store) Previous() (Info, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.previous, s.st.Previous != ""
}

// Save reads a new image from r, checks it and makes it current; the current
// one becomes previous. The upload is streamed to a temporary file, never
// held in memory. Whatever goes wrong, the current image stays as it was and
// the temporary file is removed.
//
// Refusals are typed so the HTTP layer can pick a status: *TooLargeError,
// *InvalidImageError, *ChipMismatchError, *ProjectChangeError.
func (s *Store) Save(r io.Reader, opt SaveOptions) (Info, error) {
	maxSize := opt.MaxSize
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	upload, err := s.images.Create()
	if err != nil {
		return Info{}, fmt.Errorf("save firmware: %w", err)
	}
	// Does nothing once the upload is committed.
	defer upload.Abort()

	// One byte past the limit tells "exactly the limit" from "too large"
	// without reading the rest of an oversized upload.
	size, err := io.Copy(upload, io.LimitReader(r, maxSize+1))
	if err != nil {
		return Info{}, fmt.Errorf("save firmware: receive upload: %w", err)
	}
	if size > maxSize {
		return Info{}, &TooLargeError{Limit: maxSize}
	}
	info, err := Parse(upload, size)
	if err != nil {
		return Info{}, err
	}
	if opt.Chip != "" {
		want, err := NormalizeChip(opt.Chip)
		if err != nil {
			return Info{}, fmt.Errorf("save firmware: %w", err)
		}
		if want != info.Chip {
			return Info{}, &ChipMismatchError{Want: want, Got: info.Chip}
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	// Checked under the lock: another upload may have landed meanwhile.
	if s.st.Current != "" && info.Project != s.current.Project && !opt.AllowProjectChange {
		return Info{}, &ProjectChangeError{Current: s.current.Project, Uploaded: info.Project}
	}
	if info.SHA256 == s.st.Current {
		// The same file again: keep its history (and the real previous image).
		return s.current, nil
	}

	info.UploadedAt = s.now().UTC().Truncate(time.Second)
	id := info.SHA256
	// A failure from here on removes what this upload put in place (unless
	// it is the previous image's, the same bytes): an orphan on a nearly
	// full disk would make every later upload fail too.
	undo := func() {
		if id != s.st.Previous {
			s.removeImage(id)
		}
	}
	if err := upload.Commit(id); err != nil {
		return Info{}, fmt.Errorf("save firmware: %w", err)
	}
	if _, err := storage.PutJSON(s.records, id, info); err != nil {
		undo()
		return Info{}, fmt.Errorf("save firmware: %w", err)
	}
	// The store never has a previous image without a current one, so the
	// old previous image simply drops out.
	next := state{Current: id, Previous: s.st.Current, CurrentSince: s.nextSince()}
	if err := s.writeState(next); err != nil {
		undo()
		return Info{}, fmt.Errorf("save firmware: %w", err)
	}
	dropped := s.st.Previous
	s.st, s.current, s.previous = next, info, s.current
	if dropped != "" && dropped != next.Current && dropped != next.Previous {
		s.removeImage(dropped)
	}
	s.logger.Info("firmware image saved", "project", info.Project, "version", info.Version,
		"chip", info.Chip, "size", info.Size, "sha256", info.SHA256)
	s.announce()
	return info, nil
}

// Rollback makes the previous image current again and the current one
// previous, in one atomic step.
func (s *Store) Rollback() (Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.Previous == "" {
		return Info{}, ErrNoPrevious
	}
	next := state{Current: s.st.Previous, Previous: s.st.Current, CurrentSince: s.nextSince()}
	if err := s.writeState(next); err != nil {
		return Info{}, fmt.Errorf("roll back firmware: %w", err)
	}
	s.st = next
	s.current, s.previous = s.previous, s.current
	s.logger.Info("firmware rolled back", "project", s.current.Project, "version", s.current.Version, "sha256", s.current.SHA256)
	s.announce()
	return s.current, nil
}

// announce tells the bus that the current image changed; s.mu is held.
func (s *Store) announce() {
	if s.bus != nil {
		s.bus.Publish(events.Event{Type: events.TypeFirmwareStatus, Data: s.current})
	}
}

// open opens the current image for reading, with its info and since when
// it has been current; the caller closes it. It returns ErrNoImage when
// there is none.
func (s *Store) open() (storage.Object, Info, time.Time, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.st.Current == "" {
		return nil, Info{}, time.Time{}, ErrNoImage
	}
	// Opened under the lock so the image and its info always belong
	// together; the open reader survives a later replacement or removal.
	f, err := s.images.Open(s.st.Current)
	if err != nil {
		return nil, Info{}, time.Time{}, fmt.Errorf("open firmware image: %w", err)
	}
	return f, s.current, s.st.CurrentSince, nil
}

// nextSince is the Last-Modified time of a newly current image. It always
// moves forward by at least a second (HTTP dates have whole seconds), so a
// client's If-Modified-Since never hides a change, even when the clock steps
// back or two changes fall in the same second.
func (s *Store) nextSince() time.Time { return advanceSince(s.st.CurrentSince, s.now()) }

func advanceSince(prev, now time.Time) time.Time {
	now = now.UTC().Truncate(time.Second)
	if floor := prev.UTC().Truncate(time.Second).Add(time.Second); now.Before(floor) {
		return floor
	}
	return now
}

// writeState saves st; s.mu is held.
func (s *Store) writeState(st state) error {
	rev, err := storage.PutJSON(s.records, stateKey, st)
	if err == nil {
		s.rev = rev
	}
	return err
}

func (s *Store) removeImage(id string) {
	// An open download keeps reading the removed image; where removal
	// fails, OpenStore retries at the next start.
	if err := s.images.Delete(id); err != nil {
		s.logger.Warn("cannot remove old firmware image", "sha256", id, "err", err)
	}
	if err := s.records.Delete(id); err != nil {
		s.logger.Warn("cannot remove old firmware image info", "sha256", id, "err", err)
	}
}

// validID reports whether id is a lower-case hex SHA-256, the only names the
// store creates (and so the only ones it will ever delete).
func validID(id string) bool {
	if len(id) != 64 || strings.ToLower(id) != id {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// NormalizeChip turns a chip name as people write it ("ESP32-S3", "esp32_s3")
// into the name Info.Chip uses ("esp32s3"), or says which names are known.
func NormalizeChip(name string) (string, error) {
	n := strings.NewReplacer("-", "", "_", "", " ", "").Replace(strings.ToLower(name))
	for _, known := range chipNames {
		if n == known {
			return n, nil
		}
	}
	names := slices.Sorted(maps.Values(chipNames))
	return "", fmt.Errorf("unknown chip %q; known chips are %s", name, strings.Join(names, ", "))
}
