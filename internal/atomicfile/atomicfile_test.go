package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestWriteReplacesAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	for _, v := range []string{`{"a": 1}`, `{"a": 2}`} {
		if err := Write(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := os.ReadFile(p); err != nil || string(got) != `{"a": 2}` {
		t.Fatalf("read %q, %v", got, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory has %d entries, want only the file", len(entries))
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestIsTempKnowsWritesTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	// A write that fails after creating its temporary file (the directory
	// is gone by the rename) shows the name it uses.
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(p)+tempInfix+"*")
	if err != nil {
		t.Fatal(err)
	}
	tmp.Close()
	for name, want := range map[string]bool{filepath.Base(tmp.Name()): true, "state.json": false, ".hidden": false, "x.tmp-1": false} {
		if IsTemp(name) != want {
			t.Errorf("IsTemp(%q) = %v, want %v", name, !want, want)
		}
	}
}

func TestWriteIntoMissingDirFails(t *testing.T) {
	err := Write(filepath.Join(t.TempDir(), "no", "such", "f"), []byte("x"), 0o600)
	if err == nil || !strings.Contains(err.Error(), "no/such/f") {
		t.Errorf("err = %v, want one naming the path", err)
	}
}

// Temporary files a killed process left behind are removed at start, in
// subdirectories too; everything else stays.
func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "firmware")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	keep := []string{filepath.Join(dir, "state.json"), filepath.Join(dir, ".hidden"), filepath.Join(sub, "state.json")}
	stale := []string{filepath.Join(dir, ".state.json.tmp-123"), filepath.Join(sub, ".state.json.tmp-9")}
	for _, p := range append(keep, stale...) {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := RemoveTemps(dir)
	if err != nil || len(removed) != len(stale) {
		t.Fatalf("RemoveTemps = %v, %v", removed, err)
	}
	for _, p := range stale {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still there", p)
		}
	}
	for _, p := range keep {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
}

func TestFaultAndKind(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.json")
	before := Failures(NoSpace)
	restore := SetFault(func(string) error { return &fs.PathError{Op: "write", Path: path, Err: syscall.ENOSPC} })
	err := Write(path, []byte("x"), 0o600)
	restore()
	if Kind(err) != NoSpace || Failures(NoSpace) != before+1 {
		t.Errorf("err %v kind %q failures %d", err, Kind(err), Failures(NoSpace)-before)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a failed write left a file")
	}
	if err := Write(path, []byte("x"), 0o600); err != nil || Kind(err) != "" {
		t.Errorf("after restore: %v", err)
	}
	for err, want := range map[error]StorageKind{
		&fs.PathError{Op: "open", Path: "p", Err: syscall.EROFS}:             ReadOnly,
		&os.LinkError{Op: "rename", Old: "a", New: "b", Err: syscall.EACCES}: Permission,
		&fs.PathError{Op: "write", Path: "p", Err: syscall.EIO}:              OtherIO,
		os.NewSyscallError("read", syscall.ECONNRESET):                       "",
		errors.New("x"): "",
	} {
		if got := Kind(fmt.Errorf("wrapped: %w", err)); got != want {
			t.Errorf("Kind(%v) = %q, want %q", err, got, want)
		}
	}
}
