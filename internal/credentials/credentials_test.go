package credentials

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudcloud/cloudcloud/internal/storage"
)

func ensure(t *testing.T, dir string) (Credentials, Generated, error) {
	t.Helper()
	d, err := storage.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return Ensure(d, filepath.Join(dir, Key+".json"))
}

func TestEnsureGeneratesOnceAndReuses(t *testing.T) {
	dir := t.TempDir()
	c1, g1, err := ensure(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if !g1.WebPassword || !g1.DeviceSecret || len(c1.WebPassword) < 16 || len(c1.DeviceSecret) < 24 || len(c1.Key()) != 32 {
		t.Fatalf("first start: %+v %+v", c1, g1)
	}
	c2, g2, err := ensure(t, dir)
	if err != nil || g2.WebPassword || g2.DeviceSecret || c2 != c1 {
		t.Fatalf("second start: %+v %+v %v", c2, g2, err)
	}
	fi, _ := os.Stat(filepath.Join(dir, Key+".json"))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("credentials file mode %v", fi.Mode().Perm())
	}
}

func TestEnsureRefusesToReplaceACorruptFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, Key+".json"), []byte("{"), 0o600)
	_, _, err := ensure(t, dir)
	if err == nil || !strings.Contains(err.Error(), "restore it, or delete it") {
		t.Fatalf("corrupt file: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, Key+".json")); string(b) != "{" {
		t.Errorf("the unreadable file was touched: %q", b)
	}
}
