package credentials

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cloudcloud/cloudcloud/internal/natstest"
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

// TestNodesStartingTogetherShareTheCredentials: nodes of a cluster started
// at once (a real NATS server) make up their secrets at the same moment;
// each ends with the same ones, so a cookie one signs is good on the other.
func TestNodesStartingTogetherShareTheCredentials(t *testing.T) {
	buckets := natstest.SharedBuckets(t, 2)
	for round := range 10 {
		if err := buckets[0].Delete(Key); err != nil {
			t.Fatal(err)
		}
		var got [2]Credentials
		var errs [2]error
		var wg sync.WaitGroup
		for i, b := range buckets {
			wg.Go(func() { got[i], _, errs[i] = Ensure(b, "the credentials record") })
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("round %d: %v, %v", round, errs[0], errs[1])
		}
		if got[0] != got[1] {
			t.Fatalf("round %d: the two nodes made up different credentials (session keys %.8s… and %.8s…)", round, got[0].SessionKey, got[1].SessionKey)
		}
	}
}
