package firmware

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cloudcloud/cloudcloud/atomicfile"
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
	return fmt.Sprintf("the file is larger than the %d-byte limit (firmware.max_size); an ESP32 application is usually 1-2 MiB, so check that this is the application .bin and not a merged flash image", e.Limit)
}

// ChipMismatchError refuses an image built for another chip than the one the
// server is set up for.
type ChipMismatchError struct {
	Want, Got string
}

func (e *ChipMismatchError) Error() string {
	return fmt.Sprintf("this image is built for %s, but this server only accepts %s images; build the firmware for %s", e.Got, e.Want, e.Want)
}

// ProjectChangeError refuses an image of another project than the current
// one: flashing an unrelated program would turn the lamps into something that
// may never connect again.
type ProjectChangeError struct {
	Current, Uploaded string
}

func (e *ProjectChangeError) Error() string {
	return fmt.Sprintf("this image is project %q but the current image is project %q; if you really mean to replace it, upload again with \"allow project change\" set", e.Uploaded, e.Current)
}

// SaveOptions are the checks Save applies beyond the image being valid.
type SaveOptions struct {
	MaxSize            int64  // largest accepted file in bytes; 0 means DefaultMaxSize
	Chip               string // accepted chip name ("esp32", "esp32-s3", ...); "" accepts any
	AllowProjectChange bool   // accept an image whose project name differs from the current one
}

// state is what state.json records: which images are current and previous,
// by SHA-256, and since when the current one has been current (the download's
// Last-Modified).
type state struct {
	Current      string    `json:"current,omitempty"`
	Previous     string    `json:"previous,omitempty"`
	CurrentSince time.Time `json:"current_since,omitzero"`
}

// Store keeps the current firmware image and the one before it in a
// directory, one "<sha256>.bin" with its Info in "<sha256>.json" beside it,
// and state.json naming which is which. Replacing state.json atomically is
// the single step that switches images, so a crash at any moment leaves
// either the old or the new choice.
//
// Store is safe for concurrent use. A reader that opened the current image
// keeps reading that file even if it is replaced meanwhile.
type Store struct {
	dir    string
	logger *slog.Logger
	now    func() time.Time

	mu       sync.RWMutex
	st       state
	current  Info
	previous Info
}

const (
	stateFile    = "state.json"
	uploadPrefix = ".upload-"
	filePerm     = 0o640
)

// OpenStore opens (creating it if needed) the image directory and loads the
// current and previous image info. Images that are missing or no longer match
// their recorded digest are logged and forgotten rather than served.
func OpenStore(dir string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("open firmware store: %w", err)
	}
	s := &Store{dir: dir, logger: logger, now: time.Now}

	var st state
	err := atomicfile.ReadJSON(filepath.Join(dir, stateFile), &st)
	var corrupt *atomicfile.CorruptError
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		// A new store, or one whose state file was lost: images found here
		// are not known to be unused, so they stay for a person to pick.
		s.removeUnused(state{}, false)
		return s, nil
	case errors.As(err, &corrupt):
		logger.Error("firmware state unreadable, starting without firmware; the image files are kept", "err", err)
		s.removeUnused(state{}, false)
		return s, nil
	default:
		return nil, fmt.Errorf("open firmware store: %w", err)
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
	s.removeUnused(st, true)
	return s, nil
}

// loadImage reads the info of image id and re-checks the file against it.
func (s *Store) loadImage(id string) (Info, bool) {
	if id == "" {
		return Info{}, false
	}
	if !validID(id) {
		s.logger.Error("firmware state names an invalid image, ignoring it", "id", id)
		return Info{}, false
	}
	var saved Info
	if err := atomicfile.ReadJSON(s.infoPath(id), &saved); err != nil {
		s.logger.Error("firmware image info unreadable, ignoring the image", "sha256", id, "err", err)
		return Info{}, false
	}
	f, err := os.Open(s.binPath(id))
	if err != nil {
		s.logger.Error("firmware image file unreadable, ignoring it", "sha256", id, "err", err)
		return Info{}, false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		s.logger.Error("firmware image file unreadable, ignoring it", "sha256", id, "err", err)
		return Info{}, false
	}
	info, err := Parse(f, fi.Size())
	if err != nil || info.SHA256 != id || saved.SHA256 != id {
		s.logger.Error("firmware image on disk is damaged, ignoring it", "sha256", id, "err", err)
		return Info{}, false
	}
	// The file is authoritative for what it contains; the saved info adds
	// only what the file cannot say.
	info.UploadedAt = saved.UploadedAt
	return info, true
}

// removeUnused deletes leftover uploads and, when images is set, images that
// the state no longer names (an interrupted Save, or a dropped image whose
// removal failed).
func (s *Store) removeUnused(keep state, images bool) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		s.logger.Warn("cannot list firmware directory", "err", err)
		return
	}
	for _, e := range entries {
		name := e.Name()
		id, _, _ := strings.Cut(name, ".")
		stale := strings.HasPrefix(name, uploadPrefix) ||
			(images && (name == id+".bin" || name == id+".json") && validID(id) &&
				id != keep.Current && id != keep.Previous && id != s.st.Current && id != s.st.Previous)
		if !stale {
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, name)); err != nil {
			s.logger.Warn("cannot remove unused firmware file", "file", name, "err", err)
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
	tmp, err := os.CreateTemp(s.dir, uploadPrefix+"*")
	if err != nil {
		atomicfile.Note(err)
		return Info{}, fmt.Errorf("save firmware: %w", err)
	}
	tmpName := tmp.Name()
	defer func() {
		tmp.Close()
		// After a successful rename this fails with ErrNotExist, which is fine.
		if err := os.Remove(tmpName); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.logger.Warn("cannot remove temporary firmware upload", "file", tmpName, "err", err)
		}
	}()

	// One byte past the limit tells "exactly the limit" from "too large"
	// without reading the rest of an oversized upload.
	size, err := io.Copy(tmp, io.LimitReader(r, maxSize+1))
	if err != nil {
		atomicfile.Note(err)
		return Info{}, fmt.Errorf("save firmware: receive upload: %w", err)
	}
	if size > maxSize {
		return Info{}, &TooLargeError{Limit: maxSize}
	}
	info, err := Parse(tmp, size)
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
	if err := tmp.Sync(); err != nil {
		atomicfile.Note(err)
		return Info{}, fmt.Errorf("save firmware: %w", err)
	}
	if err := tmp.Close(); err != nil {
		atomicfile.Note(err)
		return Info{}, fmt.Errorf("save firmware: %w", err)
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
	if err := os.Rename(tmpName, s.binPath(id)); err != nil {
		atomicfile.Note(err)
		return Info{}, fmt.Errorf("save firmware: %w", err)
	}
	if err := atomicfile.WriteJSON(s.infoPath(id), info, filePerm); err != nil {
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
	return s.current, nil
}

// Open opens the current image for reading; the caller closes the file. It
// returns ErrNoImage when there is none.
func (s *Store) Open() (*os.File, Info, error) {
	f, info, _, err := s.open()
	return f, info, err
}

// open also returns since when the image has been current.
func (s *Store) open() (*os.File, Info, time.Time, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.st.Current == "" {
		return nil, Info{}, time.Time{}, ErrNoImage
	}
	// Opened under the lock so the file and its info always belong together;
	// the open handle survives a later rename or removal.
	f, err := os.Open(s.binPath(s.st.Current))
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

func (s *Store) writeState(st state) error {
	return atomicfile.WriteJSON(filepath.Join(s.dir, stateFile), st, filePerm)
}

func (s *Store) removeImage(id string) {
	for _, p := range []string{s.binPath(id), s.infoPath(id)} {
		// On Linux an open download keeps reading the unlinked file; where
		// removal fails, OpenStore retries at the next start.
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.logger.Warn("cannot remove old firmware image", "file", p, "err", err)
		}
	}
}

func (s *Store) binPath(id string) string  { return filepath.Join(s.dir, id+".bin") }
func (s *Store) infoPath(id string) string { return filepath.Join(s.dir, id+".json") }

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
