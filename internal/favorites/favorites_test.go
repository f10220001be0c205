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
	"time"

	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/invalid"
	"github.com/cloudcloud/cloudcloud/internal/natstest"
	"github.com/cloudcloud/cloudcloud/internal/storage"
	"github.com/cloudcloud/cloudcloud/protocol"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func bucket(t *testing.T, dir string) storage.Bucket {
	t.Helper()
	d, err := storage.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func open(t *testing.T, dir string, bus events.Publisher) *Store {
	t.Helper()
	s, err := Open(bucket(t, dir), bus, quiet)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// brokenDisk is a bucket whose writes fail, as on a full or read-only disk.
type brokenDisk struct{ storage.Bucket }

func (brokenDisk) Update(string, []byte, uint64) (uint64, error) {
	return 0, errors.New("write favorites.json: no space left on device")
}

func rgb(r, g, b uint8) protocol.RGB { return protocol.RGB{R: r, G: g, B: b} }

func TestOpenStartsFromDefaults(t *testing.T) {
	s := open(t, t.TempDir(), nil)
	if got := s.Get(); !slices.Equal(got.Colors, Defaults) || got.Revision != 0 {
		t.Errorf("Get = %v, want the defaults at revision 0", got)
	}
}

func TestSetPersistsAndReloads(t *testing.T) {
	dir := t.TempDir()
	bus := events.NewBus()
	sub := bus.Subscribe(4, events.TypeFavorites)
	s := open(t, dir, bus)
	want := []protocol.RGB{rgb(1, 2, 3), rgb(255, 0, 0)}
	saved, err := s.Set(want, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e := <-sub.C; !slices.Equal(e.Data.(List).Colors, want) {
		t.Errorf("announced %v, want %v", e.Data, want)
	}
	again := open(t, dir, nil)
	if got := again.Get(); !slices.Equal(got.Colors, want) || got.Revision != saved.Revision {
		t.Errorf("reloaded %v, want %v at revision %d", got, want, saved.Revision)
	}
	data, _ := os.ReadFile(filepath.Join(dir, Key+".json"))
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
			s := open(t, t.TempDir(), nil)
			_, err := s.Set(tt.colors, nil)
			var ve *invalid.Error
			if !errors.As(err, &ve) || ve.Field != tt.field || !strings.Contains(ve.Message, tt.msg) {
				t.Fatalf("err = %v, want %s: …%s…", err, tt.field, tt.msg)
			}
			if !slices.Equal(s.Get().Colors, Defaults) {
				t.Error("a refused list changed the favourites")
			}
		})
	}
	t.Run("exactly Max is fine", func(t *testing.T) {
		s := open(t, t.TempDir(), nil)
		if _, err := s.Set(many[:Max], nil); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAddRemove(t *testing.T) {
	s := open(t, t.TempDir(), nil)
	if _, err := s.Set(nil, nil); err != nil {
		t.Fatal(err)
	}
	if got := s.Get().Colors; got == nil || len(got) != 0 {
		t.Fatalf("after Set(nil) List = %#v, want empty", got)
	}
	c := rgb(9, 8, 7)
	for range 2 { // adding twice is not an error and keeps one
		if _, err := s.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Get().Colors; len(got) != 1 || got[0] != c {
		t.Fatalf("List = %v", got)
	}
	if _, err := s.Remove(rgb(0, 0, 0)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Remove(c); len(got.Colors) != 0 {
		t.Fatalf("after Remove List = %v", got)
	}
	for i := range Max {
		if _, err := s.Add(rgb(uint8(i), 1, 1)); err != nil {
			t.Fatal(err)
		}
	}
	var ve *invalid.Error
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
			if err := os.WriteFile(filepath.Join(dir, Key+".json"), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			s := open(t, dir, nil)
			if !slices.Equal(s.Get().Colors, Defaults) {
				t.Errorf("Get = %v, want defaults", s.Get())
			}
			if aside, _ := filepath.Glob(filepath.Join(dir, Key+".json.corrupt-*")); len(aside) != 1 {
				t.Errorf("the unusable file was not kept aside: %q", aside)
			}
		})
	}
}

func TestWriteFailureKeepsOldList(t *testing.T) {
	s := open(t, t.TempDir(), nil)
	s.records = brokenDisk{s.records}
	if _, err := s.Set([]protocol.RGB{rgb(1, 1, 1)}, nil); err == nil || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("Set on a broken disk: %v", err)
	}
	if _, err := s.Add(rgb(1, 1, 1)); err == nil {
		t.Fatal("Add on a broken disk succeeded")
	}
	if !slices.Equal(s.Get().Colors, Defaults) {
		t.Error("a failed write changed the list")
	}
}

// TestAStaleListLosesNothing: two phones read the list; one adds a colour,
// then the other saves its whole (older) list. The second save is refused
// and says what to do, and the first phone's colour stays.
func TestAStaleListLosesNothing(t *testing.T) {
	s := open(t, t.TempDir(), nil)
	read := s.Get()
	if _, err := s.Add(rgb(7, 7, 7)); err != nil {
		t.Fatal(err)
	}
	_, err := s.Set(append(read.Colors, rgb(8, 8, 8)), &read.Revision)
	var stale *StaleError
	if !errors.As(err, &stale) || !strings.Contains(err.Error(), "reload") {
		t.Fatalf("saving a stale list: %v", err)
	}
	if !slices.Contains(s.Get().Colors, rgb(7, 7, 7)) {
		t.Fatal("the other phone's colour was lost")
	}
	cur := s.Get()
	if _, err := s.Set(cur.Colors[:1], &cur.Revision); err != nil {
		t.Fatalf("saving the current list: %v", err)
	}
}

// TestAnotherWriterIsNotOverwritten: a second writer of the same record
// (another node on the same storage) changed it, and this store has not
// seen it. Its next colour is added to the other's list, nothing lost; a
// whole list made from the older one is refused as stale.
func TestAnotherWriterIsNotOverwritten(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, nil)
	if _, err := s.Add(rgb(1, 1, 1)); err != nil {
		t.Fatal(err)
	}
	other := open(t, dir, nil)
	if _, err := other.Add(rgb(2, 2, 2)); err != nil {
		t.Fatal(err)
	}
	got, err := s.Add(rgb(3, 3, 3))
	if err != nil {
		t.Fatalf("a colour added over another writer's change: %v", err)
	}
	for _, c := range []protocol.RGB{rgb(1, 1, 1), rgb(2, 2, 2), rgb(3, 3, 3)} {
		if !slices.Contains(got.Colors, c) {
			t.Errorf("after both changes the list lacks %s: %v", c.Hex(), got.Colors)
		}
	}
	if _, err := other.Add(rgb(4, 4, 4)); err != nil {
		t.Fatal(err)
	}
	read := s.Get()
	var stale *StaleError
	if _, err := s.Set(read.Colors[:1], &read.Revision); !errors.As(err, &stale) {
		t.Fatalf("a whole list made from an older one: %v", err)
	}
	if !slices.Contains(s.Get().Colors, rgb(4, 4, 4)) {
		t.Error("after the refusal the store still has the older list")
	}
}

// TestAnotherNodesChangeFollows: two nodes on a real NATS server. A colour
// saved through one is in the other's list, and its pages hear of it.
func TestAnotherNodesChangeFollows(t *testing.T) {
	buckets := natstest.SharedBuckets(t, 2)
	a, err := Open(buckets[0], nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	bus := events.NewBus()
	sub := bus.Subscribe(4, events.TypeFavorites)
	defer sub.Close()
	b, err := Open(buckets[1], bus, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Add(rgb(9, 9, 9)); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-sub.C:
		if l := e.Data.(List); !slices.Contains(l.Colors, rgb(9, 9, 9)) {
			t.Errorf("b announced %v", l.Colors)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("b did not hear of a's colour")
	}
	if !slices.Contains(b.Get().Colors, rgb(9, 9, 9)) {
		t.Errorf("b's list %v lacks a's colour", b.Get().Colors)
	}
	if _, err := b.Remove(rgb(9, 9, 9)); err != nil {
		t.Fatalf("b removes the colour a added: %v", err)
	}
}
