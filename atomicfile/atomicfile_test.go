package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteReplacesAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	for _, v := range []map[string]int{{"a": 1}, {"a": 2}} {
		if err := WriteJSON(p, v, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var got map[string]int
	if err := ReadJSON(p, &got); err != nil || got["a"] != 2 {
		t.Fatalf("ReadJSON = %v, %v", got, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory has %d entries, want only the file", len(entries))
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestReadJSONMissingAndCorrupt(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	var v map[string]int
	if err := ReadJSON(p, &v); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	os.WriteFile(p, []byte(`{"a": `), 0o600)
	err := ReadJSON(p, &v)
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("corrupt file: %v", err)
	}
	if !strings.Contains(err.Error(), "kept it as") {
		t.Errorf("message %q does not say where the file went", err)
	}
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("corrupt file still in place")
	}
	if b, err := os.ReadFile(ce.MovedTo); err != nil || string(b) != `{"a": ` {
		t.Errorf("moved file: %q, %v", b, err)
	}
}

func TestWriteIntoMissingDirFails(t *testing.T) {
	err := Write(filepath.Join(t.TempDir(), "no", "such", "f"), []byte("x"), 0o600)
	if err == nil || !strings.Contains(err.Error(), "no/such/f") {
		t.Errorf("err = %v, want one naming the path", err)
	}
}
