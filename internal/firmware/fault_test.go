package firmware

import (
	"bytes"
	"errors"
	"io/fs"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/cloudcloud/cloudcloud/internal/atomicfile"
	"github.com/cloudcloud/cloudcloud/internal/firmware/firmwaretest"
)

// An upload that fails on a full disk after its image was moved in place
// leaves no orphan, so it cannot starve the uploads after it, and the
// store keeps what it had.
func TestFailedUploadLeavesNoOrphan(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	a := mustSave(t, s, firmwaretest.Build(firmwaretest.Image{Version: "1.0", Seed: 1}))
	b := firmwaretest.Build(firmwaretest.Image{Version: "2.0", Seed: 2, Payload: 4000})
	for _, failing := range []string{".json", stateKey + ".json"} {
		restore := atomicfile.SetFault(func(p string) error {
			if strings.HasSuffix(p, failing) && !strings.HasSuffix(p, a.SHA256+".json") {
				return &fs.PathError{Op: "write", Path: p, Err: syscall.ENOSPC}
			}
			return nil
		})
		_, err := s.Save(bytes.NewReader(b), SaveOptions{})
		restore()
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("failing %s: Save = %v, want ENOSPC", failing, err)
		}
		if got, want := dirNames(t, dir), imageFiles(a); !slices.Equal(got, want) {
			t.Errorf("failing %s: files %v, want %v", failing, got, want)
		}
		if cur, _ := s.Current(); cur.SHA256 != a.SHA256 {
			t.Errorf("failing %s: current image changed to %s", failing, cur.Version)
		}
	}
	mustSave(t, s, b)
}
