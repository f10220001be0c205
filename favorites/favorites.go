// Package favorites keeps the favourite colours every phone shows as one-tap
// swatches. They live on the server, not in a browser, so every phone sees
// the same list; the file is written atomically, so a crash keeps either the
// old list or the new one.
package favorites

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"

	"github.com/cloudcloud/cloudcloud/atomicfile"
	"github.com/cloudcloud/cloudcloud/protocol"
)

// FileName is the favourites file inside the data directory.
const FileName = "favorites.json"

// Max is the most favourites kept: a phone shows them in two rows of eight.
const Max = 16

// Defaults are the favourites of a fresh install, so the row is not empty
// the first time someone opens the page.
var Defaults = []protocol.RGB{
	{R: 255, G: 65, B: 174},  // the default warm pink
	{R: 255, G: 147, B: 41},  // candle
	{R: 255, G: 214, B: 170}, // warm white
	{R: 64, G: 156, B: 255},  // sky
	{R: 46, G: 204, B: 113},  // leaf
	{R: 155, G: 89, B: 255},  // violet
}

// ValidationError says which entry of a list is wrong and why.
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Message }

// file is the on-disk form; an object leaves room for more fields later.
type file struct {
	Colors []protocol.RGB `json:"colors"`
}

// Store holds the list. It is safe for concurrent use.
type Store struct {
	path string

	mu     sync.Mutex // serialises writes so the file and memory agree
	colors []protocol.RGB
}

// Open loads dir/favorites.json. A missing file gives the defaults; a corrupt
// one is moved aside (atomicfile keeps it for a person to inspect) and the
// defaults are used, so a bad file never keeps the server from starting.
func Open(dir string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Store{path: filepath.Join(dir, FileName), colors: slices.Clone(Defaults)}
	var f file
	err := atomicfile.ReadJSON(s.path, &f)
	var corrupt *atomicfile.CorruptError
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case errors.As(err, &corrupt):
		logger.Error("the favourite colours file is corrupt; starting from the defaults", "file", s.path, "kept_as", corrupt.MovedTo, "err", corrupt.Err)
	case err != nil:
		return nil, fmt.Errorf("load favourite colours: %w", err)
	default:
		if verr := Validate(f.Colors); verr != nil {
			logger.Error("the favourite colours file has an invalid list; starting from the defaults", "file", s.path, "err", verr)
			break
		}
		s.colors = f.Colors
	}
	return s, nil
}

// List returns a copy of the favourites, in the order people arranged them.
func (s *Store) List() []protocol.RGB {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.colors)
}

// Validate checks a list: at most Max colours, no colour twice.
func Validate(colors []protocol.RGB) error {
	if len(colors) > Max {
		return &ValidationError{"colors", fmt.Sprintf("%d colours is too many; keep at most %d", len(colors), Max)}
	}
	for i, c := range colors {
		if j := slices.Index(colors[:i], c); j >= 0 {
			return &ValidationError{fmt.Sprintf("colors[%d]", i), fmt.Sprintf("%s is already colors[%d]; each colour once", c.Hex(), j)}
		}
	}
	return nil
}

// Set replaces the list after validating it and writing it to disk; on any
// error the old list stays.
func (s *Store) Set(colors []protocol.RGB) ([]protocol.RGB, error) {
	if colors == nil {
		colors = []protocol.RGB{}
	}
	if err := Validate(colors); err != nil {
		return s.List(), err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commit(slices.Clone(colors))
}

// Add appends c unless it is already there (then the list is unchanged and
// no error is returned: tapping "add" twice is not a mistake).
func (s *Store) Add(c protocol.RGB) ([]protocol.RGB, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Contains(s.colors, c) {
		return slices.Clone(s.colors), nil
	}
	if len(s.colors) >= Max {
		return slices.Clone(s.colors), &ValidationError{"color", fmt.Sprintf("there are already %d favourites, the most kept; remove one first", Max)}
	}
	return s.commit(append(slices.Clone(s.colors), c))
}

// Remove deletes c; removing a colour that is not there changes nothing.
func (s *Store) Remove(c protocol.RGB) ([]protocol.RGB, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.Index(s.colors, c)
	if i < 0 {
		return slices.Clone(s.colors), nil
	}
	return s.commit(slices.Delete(slices.Clone(s.colors), i, i+1))
}

// commit writes next and makes it current; s.mu is held.
func (s *Store) commit(next []protocol.RGB) ([]protocol.RGB, error) {
	if err := atomicfile.WriteJSON(s.path, file{Colors: next}, 0o600); err != nil {
		return slices.Clone(s.colors), fmt.Errorf("save favourite colours (nothing was changed): %w", err)
	}
	s.colors = next
	return slices.Clone(next), nil
}
