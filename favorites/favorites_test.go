package favorites

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cloudcloud/cloudcloud/protocol"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func rgb(r, g, b uint8) protocol.RGB { return protocol.RGB{R: r, G: g, B: b} }

func TestOpenStartsFromDefaults(t *testing.T) {
	s, err := Open(t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.List(), Defaults) {
		t.Errorf("List = %v, want the defaults", s.List())
	}
}

func TestSetPersistsAndReloads(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	want := []protocol.RGB{rgb(1, 2, 3), rgb(255, 0, 0)}
	if _, err := s.Set(want); err != nil {
		t.Fatal(err)
	}
	again, err := Open(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again.List(), want) {
		t.Errorf("reloaded %v, want %v", again.List(), want)
	}
	data, _ := os.ReadFile(filepath.Join(dir, FileName))
	if !strings.Contains(string(data), `"#010203"`) {
		t.Errorf("file does not hold hex colours: %s", data)
	}
}

func TestValidation(t *testing.T) {
	many := make([]protocol.RGB, Max+1)
	for i := range many {
		many[i] = rgb(uint8(i), 0, 0)
	}
	tests := []struct {
		name   string
		colors []protocol.RGB
		field  string
		msg    string
	}{
		{"too many", many, "colors", "keep at most 16"},
		{"duplicate", []protocol.RGB{rgb(1, 1, 1), rgb(2, 2, 2), rgb(1, 1, 1)}, "colors[2]", "#010101 is already colors[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := Open(t.TempDir(), quiet)
			_, err := s.Set(tt.colors)
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.field || !strings.Contains(ve.Message, tt.msg) {
				t.Fatalf("err = %v, want %s: …%s…", err, tt.field, tt.msg)
			}
			if !slices.Equal(s.List(), Defaults) {
				t.Error("a refused list changed the favourites")
			}
		})
	}
	t.Run("exactly Max is fine", func(t *testing.T) {
		s, _ := Open(t.TempDir(), quiet)
		if _, err := s.Set(many[:Max]); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAddRemove(t *testing.T) {
	s, _ := Open(t.TempDir(), quiet)
	if _, err := s.Set(nil); err != nil {
		t.Fatal(err)
	}
	if got := s.List(); got == nil || len(got) != 0 {
		t.Fatalf("after Set(nil) List = %#v, want empty", got)
	}
	c := rgb(9, 8, 7)
	for range 2 { // adding twice is not an error and keeps one
		if _, err := s.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.List(); len(got) != 1 || got[0] != c {
		t.Fatalf("List = %v", got)
	}
	if _, err := s.Remove(rgb(0, 0, 0)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Remove(c); len(got) != 0 {
		t.Fatalf("after Remove List = %v", got)
	}
	for i := range Max {
		if _, err := s.Add(rgb(uint8(i), 1, 1)); err != nil {
			t.Fatal(err)
		}
	}
	var ve *ValidationError
	if _, err := s.Add(rgb(200, 1, 1)); !errors.As(err, &ve) || !strings.Contains(ve.Message, "remove one first") {
		t.Errorf("17th Add: %v", err)
	}
}

func TestCorruptOrInvalidFileFallsBackToDefaults(t *testing.T) {
	for name, content := range map[string]string{
		"not json":  "{nope",
		"bad color": `{"colors": ["#zzzzzz"]}`,
		"duplicate": `{"colors": ["#ffffff", "#FFFFFF"]}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, FileName), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(dir, quiet)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.List(), Defaults) {
				t.Errorf("List = %v, want defaults", s.List())
			}
		})
	}
}

func TestWriteFailureKeepsOldList(t *testing.T) {
	// A data directory that does not exist makes every write fail, even as root.
	s, err := Open(filepath.Join(t.TempDir(), "missing"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Set([]protocol.RGB{rgb(1, 1, 1)}); err == nil || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("Set into a missing directory: %v", err)
	}
	if _, err := s.Add(rgb(1, 1, 1)); err == nil {
		t.Fatal("Add into a missing directory succeeded")
	}
	if !slices.Equal(s.List(), Defaults) {
		t.Error("a failed write changed the list")
	}
}
