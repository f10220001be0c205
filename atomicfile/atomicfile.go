// Package atomicfile writes files so that a crash or SIGKILL at any moment
// leaves either the old or the new content, never a mix: write a temporary
// file in the same directory, fsync it, rename it over the target, fsync the
// directory so the rename itself is durable.
package atomicfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Write replaces path with data atomically and durably.
func Write(path string, data []byte, perm os.FileMode) error {
	err := write(path, data, perm)
	Note(err)
	return err
}

func write(path string, data []byte, perm os.FileMode) error {
	if f := fault.Load(); f != nil {
		if err := (*f)(path); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+tempInfix+"*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(name, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	ok = true
	return SyncDir(dir)
}

// tempInfix marks Write's temporary files: "." + base name + tempInfix + random.
const tempInfix = ".tmp-"

// RemoveTemps deletes the temporary files Write leaves behind when the
// process dies between creating one and renaming it, anywhere under root,
// and returns their paths. Call it at start, before anything writes.
func RemoveTemps(root string) ([]string, error) {
	var removed []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.Type().IsRegular() && strings.HasPrefix(name, ".") && strings.Contains(name, tempInfix) {
			if err := os.Remove(p); err != nil {
				return err
			}
			removed = append(removed, p)
		}
		return nil
	})
	if err != nil {
		return removed, fmt.Errorf("remove temporary files under %s: %w", root, err)
	}
	return removed, nil
}

// SyncDir makes a rename in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// WriteJSON writes v as indented JSON with Write.
func WriteJSON(path string, v any, perm os.FileMode) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return Write(path, append(data, '\n'), perm)
}

// CorruptError says a file could not be read and where it was moved so that
// a person can look at it; the caller starts from defaults.
type CorruptError struct {
	Path    string
	MovedTo string
	Err     error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("%s is unreadable (%v); kept it as %s and started from defaults", e.Path, e.Err, e.MovedTo)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// ReadJSON decodes path into v. A missing file returns fs.ErrNotExist
// (v untouched). A file that exists but does not decode is renamed aside to
// path.corrupt-<time> and a *CorruptError is returned, so the caller can say
// so clearly and go on with defaults without losing the evidence.
func ReadJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err == nil {
		if err = json.Unmarshal(data, v); err == nil {
			return nil
		}
	}
	aside := fmt.Sprintf("%s.corrupt-%s", path, time.Now().UTC().Format("20060102T150405Z"))
	if rerr := os.Rename(path, aside); rerr != nil {
		return fmt.Errorf("%s is unreadable (%v) and could not be moved aside: %w", path, err, rerr)
	}
	return &CorruptError{Path: path, MovedTo: aside, Err: err}
}
