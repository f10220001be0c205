package firmware

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/firmware/firmwaretest"
	"github.com/cloudcloud/cloudcloud/internal/storage"
)

// openTestStore opens a store whose records and images are the files of
// dir, as the firmware/ directory of a data directory is.
func openTestStore(t *testing.T, dir string) *Store {
	t.Helper()
	d, err := storage.OpenDir(filepath.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	records, err := d.Bucket(filepath.Base(dir))
	if err != nil {
		t.Fatal(err)
	}
	images, err := d.Objects(filepath.Base(dir))
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenStore(records, images, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("OpenStore: %v", err)
	}
	return s
}

func mustSave(t *testing.T, s *Store, img []byte) Info {
	t.Helper()
	info, err := s.Save(bytes.NewReader(img), SaveOptions{})
	if err != nil {
		t.Fatalf("Save: %v", err)
	}
	return info
}

// currentBytes reads the current image through Open.
func currentBytes(t *testing.T, s *Store) []byte {
	t.Helper()
	f, info, _, err := s.open()
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != info.Size {
		t.Fatalf("Open gave %d bytes, info says %d", len(b), info.Size)
	}
	return b
}

// dirNames lists the store directory, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func imageFiles(infos ...Info) []string {
	names := []string{stateKey + ".json"}
	for _, i := range infos {
		names = append(names, i.SHA256+".bin", i.SHA256+".json")
	}
	slices.Sort(names)
	return names
}

func TestStoreEmpty(t *testing.T) {
	s := openTestStore(t, filepath.Join(t.TempDir(), "firmware"))
	if _, ok := s.Current(); ok {
		t.Error("Current reports an image in a new store")
	}
	if _, ok := s.Previous(); ok {
		t.Error("Previous reports an image in a new store")
	}
	if _, _, _, err := s.open(); !errors.Is(err, ErrNoImage) {
		t.Errorf("Open = %v, want ErrNoImage", err)
	}
	if _, err := s.Rollback(); !errors.Is(err, ErrNoPrevious) {
		t.Errorf("Rollback = %v, want ErrNoPrevious", err)
	}
}

func TestStoreSaveAndReplace(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	clock := time.Date(2026, 11, 21, 22, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return clock }

	a := firmwaretest.Build(firmwaretest.Image{Version: "1.0", Seed: 1, Payload: 5000})
	infoA := mustSave(t, s, a)
	if infoA.Version != "1.0" || !infoA.UploadedAt.Equal(clock) {
		t.Errorf("saved info %+v", infoA)
	}
	if cur, ok := s.Current(); !ok || cur != infoA {
		t.Errorf("Current = %+v, %v; want %+v", cur, ok, infoA)
	}
	if !bytes.Equal(currentBytes(t, s), a) {
		t.Error("Open does not give the saved bytes")
	}

	b := firmwaretest.Build(firmwaretest.Image{Version: "2.0", Seed: 2})
	infoB := mustSave(t, s, b)
	if prev, ok := s.Previous(); !ok || prev != infoA {
		t.Errorf("Previous = %+v, %v; want the first image", prev, ok)
	}

	// The same file again changes nothing, not even the previous image.
	if again := mustSave(t, s, b); again != infoB {
		t.Errorf("re-saving the current image gave %+v, want %+v", again, infoB)
	}
	if prev, _ := s.Previous(); prev != infoA {
		t.Errorf("re-saving the current image changed Previous to %+v", prev)
	}

	// A third image pushes the first one out, from disk too.
	c := firmwaretest.Build(firmwaretest.Image{Version: "3.0", Seed: 3})
	infoC := mustSave(t, s, c)
	if got, want := dirNames(t, dir), imageFiles(infoB, infoC); !slices.Equal(got, want) {
		t.Errorf("directory holds %v, want %v", got, want)
	}
	if !bytes.Equal(currentBytes(t, s), c) {
		t.Error("Open does not give the newest image")
	}
}

func TestStoreSaveRefusals(t *testing.T) {
	current := firmwaretest.Build(firmwaretest.Image{Project: "cloud-lamp", Seed: 1})
	tests := []struct {
		name   string
		upload io.Reader
		opt    SaveOptions
		check  func(t *testing.T, err error)
	}{
		{"too large", bytes.NewReader(firmwaretest.Build(firmwaretest.Image{Payload: 2000, Seed: 2})), SaveOptions{MaxSize: 1000}, func(t *testing.T, err error) {
			var tooLarge *TooLargeError
			if !errors.As(err, &tooLarge) || tooLarge.Limit != 1000 || !strings.Contains(err.Error(), "larger than firmware.max_size, 1000 B (1000 bytes)") {
				t.Errorf("err = %v, want *TooLargeError{1000}", err)
			}
		}},
		{"not an image", strings.NewReader("<html>502 Bad Gateway</html>"), SaveOptions{}, func(t *testing.T, err error) {
			var invalid *InvalidImageError
			if !errors.As(err, &invalid) {
				t.Errorf("err = %v, want *InvalidImageError", err)
			}
		}},
		{"wrong chip", bytes.NewReader(firmwaretest.Build(firmwaretest.Image{ChipID: 9, Seed: 2})), SaveOptions{Chip: "ESP32"}, func(t *testing.T, err error) {
			var mismatch *ChipMismatchError
			if !errors.As(err, &mismatch) || mismatch.Want != "esp32" || mismatch.Got != "esp32s3" ||
				!strings.Contains(err.Error(), "built for esp32s3, but this server only accepts esp32 images") {
				t.Errorf("err = %v, want *ChipMismatchError{esp32, esp32s3}", err)
			}
		}},
		{"unknown chip setting", bytes.NewReader(firmwaretest.Build(firmwaretest.Image{Seed: 2})), SaveOptions{Chip: "esp8266"}, func(t *testing.T, err error) {
			if err == nil || !strings.Contains(err.Error(), `unknown chip "esp8266"`) {
				t.Errorf("err = %v", err)
			}
		}},
		{"other project", bytes.NewReader(firmwaretest.Build(firmwaretest.Image{Project: "thermostat", Seed: 2})), SaveOptions{}, func(t *testing.T, err error) {
			var change *ProjectChangeError
			if !errors.As(err, &change) || change.Current != "cloud-lamp" || change.Uploaded != "thermostat" {
				t.Errorf("err = %v, want *ProjectChangeError", err)
			}
			if err != nil && !strings.Contains(err.Error(), "allow project change") {
				t.Errorf("message %q does not say how to override", err)
			}
		}},
		{"upload breaks off", io.MultiReader(bytes.NewReader(current[:100]), iotest.ErrReader(io.ErrUnexpectedEOF)), SaveOptions{}, func(t *testing.T, err error) {
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("err = %v, want the read error", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTestStore(t, dir)
			before := mustSave(t, s, current)

			info, err := s.Save(tt.upload, tt.opt)
			tt.check(t, err)
			if info != (Info{}) {
				t.Errorf("refused Save returned info %+v", info)
			}
			if cur, _ := s.Current(); cur != before {
				t.Errorf("Current changed to %+v", cur)
			}
			if _, ok := s.Previous(); ok {
				t.Error("a refused upload became the previous image")
			}
			if !bytes.Equal(currentBytes(t, s), current) {
				t.Error("the current image file changed")
			}
			if got, want := dirNames(t, dir), imageFiles(before); !slices.Equal(got, want) {
				t.Errorf("directory holds %v, want %v (temporary file left behind?)", got, want)
			}
		})
	}
}

func TestStoreSaveLimits(t *testing.T) {
	img := firmwaretest.Build(firmwaretest.Image{})
	s := openTestStore(t, t.TempDir())
	if _, err := s.Save(bytes.NewReader(img), SaveOptions{MaxSize: int64(len(img))}); err != nil {
		t.Errorf("an image of exactly MaxSize was refused: %v", err)
	}
	big := firmwaretest.Build(firmwaretest.Image{Payload: DefaultMaxSize, Seed: 2})
	var tooLarge *TooLargeError
	if _, err := s.Save(bytes.NewReader(big), SaveOptions{}); !errors.As(err, &tooLarge) || tooLarge.Limit != DefaultMaxSize {
		t.Errorf("no MaxSize: err = %v, want the default limit", err)
	}
}

func TestStoreProjectChangeAllowed(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	mustSave(t, s, firmwaretest.Build(firmwaretest.Image{Project: "cloud-lamp"}))
	info, err := s.Save(bytes.NewReader(firmwaretest.Build(firmwaretest.Image{Project: "cloud-lamp-v2"})), SaveOptions{AllowProjectChange: true, Chip: "esp32"})
	if err != nil || info.Project != "cloud-lamp-v2" {
		t.Fatalf("Save = %+v, %v", info, err)
	}
}

func TestStoreRollback(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	a := firmwaretest.Build(firmwaretest.Image{Version: "1.0", Seed: 1})
	b := firmwaretest.Build(firmwaretest.Image{Version: "2.0", Seed: 2})
	infoA, infoB := mustSave(t, s, a), mustSave(t, s, b)

	for i, want := range []struct {
		current, previous Info
		bytes             []byte
	}{{infoA, infoB, a}, {infoB, infoA, b}} {
		got, err := s.Rollback()
		if err != nil || got != want.current {
			t.Fatalf("rollback %d = %+v, %v; want %+v", i+1, got, err, want.current)
		}
		cur, _ := s.Current()
		prev, _ := s.Previous()
		if cur != want.current || prev != want.previous {
			t.Errorf("rollback %d: current %s, previous %s", i+1, cur.Version, prev.Version)
		}
		if !bytes.Equal(currentBytes(t, s), want.bytes) {
			t.Errorf("rollback %d: Open gives the wrong image", i+1)
		}
		// The swap is on disk.
		reopened := openTestStore(t, dir)
		if cur, _ := reopened.Current(); cur != want.current {
			t.Errorf("rollback %d not kept across a restart: current %s", i+1, cur.Version)
		}
	}
}

func TestInfoJSONIsSnakeCase(t *testing.T) {
	dir := t.TempDir()
	info := mustSave(t, openTestStore(t, dir), firmwaretest.Build(firmwaretest.Image{}))
	raw, err := os.ReadFile(filepath.Join(dir, info.SHA256+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"project", "version", "idf_version", "build_date", "build_time", "chip", "chip_id",
		"segments", "entry", "hash_appended", "elf_sha256", "size", "sha256", "md5", "uploaded_at"} {
		if _, ok := fields[key]; !ok {
			t.Errorf("saved info has no %q field: %s", key, raw)
		}
	}
	if len(fields) != 15 {
		t.Errorf("saved info has %d fields, want 15: %s", len(fields), raw)
	}
}

func TestStoreRestartKeepsInfo(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	infoA := mustSave(t, s, firmwaretest.Build(firmwaretest.Image{Version: "1.0", Seed: 1}))
	infoB := mustSave(t, s, firmwaretest.Build(firmwaretest.Image{Version: "2.0", Seed: 2}))

	reopened := openTestStore(t, dir)
	cur, okCur := reopened.Current()
	prev, okPrev := reopened.Previous()
	if !okCur || !okPrev || cur != infoB || prev != infoA {
		t.Errorf("after restart current %+v, previous %+v; want %+v, %+v", cur, prev, infoB, infoA)
	}
	if cur.UploadedAt.IsZero() {
		t.Error("upload time lost across the restart")
	}
}

func TestStoreRestartRecovers(t *testing.T) {
	tests := []struct {
		name        string
		damage      func(t *testing.T, dir string, a, b Info)
		wantCurrent string // version, "" for none
		wantFiles   func(a, b Info) []string
	}{
		{
			name: "leftover upload is removed",
			damage: func(t *testing.T, dir string, a, b Info) {
				writeFile(t, filepath.Join(dir, ".upload-123"), "half")
			},
			wantCurrent: "2.0",
			wantFiles:   func(a, b Info) []string { return imageFiles(a, b) },
		},
		{
			name: "unreferenced image is removed",
			damage: func(t *testing.T, dir string, a, b Info) {
				writeFile(t, filepath.Join(dir, strings.Repeat("ab", 32)+".bin"), "old")
				writeFile(t, filepath.Join(dir, "notes.txt"), "mine") // not ours: kept
			},
			wantCurrent: "2.0",
			wantFiles:   func(a, b Info) []string { return slices.Sorted(slices.Values(append(imageFiles(a, b), "notes.txt"))) },
		},
		{
			name: "damaged current falls back to previous",
			damage: func(t *testing.T, dir string, a, b Info) {
				writeFile(t, filepath.Join(dir, b.SHA256+".bin"), "bit rot")
			},
			wantCurrent: "1.0",
			wantFiles:   nil, // the damaged file stays until the next start
		},
		{
			name: "missing current file falls back to previous",
			damage: func(t *testing.T, dir string, a, b Info) {
				if err := os.Remove(filepath.Join(dir, b.SHA256+".bin")); err != nil {
					t.Fatal(err)
				}
			},
			wantCurrent: "1.0",
		},
		{
			name: "lost state starts empty and keeps the images",
			damage: func(t *testing.T, dir string, a, b Info) {
				if err := os.Remove(filepath.Join(dir, stateKey+".json")); err != nil {
					t.Fatal(err)
				}
			},
			wantCurrent: "",
		},
		{
			name:        "unreadable state starts empty and keeps the images",
			damage:      func(t *testing.T, dir string, a, b Info) { writeFile(t, filepath.Join(dir, stateKey+".json"), "{nope") },
			wantCurrent: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTestStore(t, dir)
			a := mustSave(t, s, firmwaretest.Build(firmwaretest.Image{Version: "1.0", Seed: 1}))
			b := mustSave(t, s, firmwaretest.Build(firmwaretest.Image{Version: "2.0", Seed: 2}))
			tt.damage(t, dir, a, b)

			reopened := openTestStore(t, dir)
			cur, ok := reopened.Current()
			if ok != (tt.wantCurrent != "") || cur.Version != tt.wantCurrent {
				t.Errorf("current = %q (%v), want %q", cur.Version, ok, tt.wantCurrent)
			}
			if tt.wantCurrent == "1.0" {
				if _, ok := reopened.Previous(); ok {
					t.Error("the damaged image is still offered as previous")
				}
			}
			if tt.wantFiles != nil {
				if got, want := dirNames(t, dir), tt.wantFiles(a, b); !slices.Equal(got, want) {
					t.Errorf("directory holds %v, want %v", got, want)
				}
			}
			if tt.wantCurrent == "" {
				// Twice: the second start no longer sees the damaged state file.
				openTestStore(t, dir)
				for _, name := range []string{a.SHA256 + ".bin", b.SHA256 + ".bin"} {
					if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
						t.Errorf("image %s removed after a state failure: %v", name, err)
					}
				}
			}
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestFormatSize(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1 KiB"}, {1536, "1.5 KiB"}, {64 << 10, "64 KiB"}, {4 << 20, "4 MiB"}, {1468320, "1.4 MiB"}}
	for _, tt := range tests {
		if got := FormatSize(tt.n); got != tt.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
