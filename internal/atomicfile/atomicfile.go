// Package atomicfile writes files so that a crash or SIGKILL at any moment
// leaves either the old or the new content, never a mix: write a temporary
// file in the same directory, fsync it, rename it over the target, fsync the
// directory so the rename itself is durable.
//
// It is hand-written rather than a library (natefinch/atomic is in the
// module graph, through templ) because that one does not fsync the
// directory after the rename, so a power cut can lose a change already
// acknowledged, and names its temporary files after the target with nothing
// to mark them, so the leftovers of a crash cannot be told apart and
// removed at start (RemoveTemps).
package atomicfile

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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

// IsTemp reports whether a file name is one of Write's temporary files,
// which only a crash in the middle of a write leaves behind.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, tempInfix)
}

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
		if d.Type().IsRegular() && IsTemp(name) {
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
