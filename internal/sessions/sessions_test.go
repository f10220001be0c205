package sessions

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/natstest"
	"github.com/cloudcloud/cloudcloud/internal/storage"
)

var t0 = time.Date(2026, 11, 21, 22, 0, 0, 0, time.UTC)

func open(t *testing.T, dir, creds string, now time.Time) *Store {
	t.Helper()
	d, err := storage.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(d, creds, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func create(t *testing.T, s *Store, now time.Time) (string, Session) {
	t.Helper()
	tok := NewToken()
	sess, err := s.Create(tok, Session{Client: "Firefox", Address: "127.0.0.1", Expires: now.Add(time.Hour)}, now)
	if err != nil {
		t.Fatal(err)
	}
	return tok, sess
}

func TestLifecycleSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, "fp1", t0)
	tokA, a := create(t, s, t0)
	tokB, b := create(t, s, t0.Add(time.Second))
	if a.ID == b.ID || a.ID == tokA || strings.Contains(tokA, a.ID) {
		t.Fatalf("ids must differ from each other and from the secret: %q %q (token %q)", a.ID, b.ID, tokA)
	}
	if got, ok := s.Lookup(tokA, t0.Add(time.Minute)); !ok || got.ID != a.ID || !got.LastSeen.Equal(t0.Add(time.Minute)) {
		t.Fatalf("Lookup(a) = %+v, %v", got, ok)
	}
	if _, ok := s.Lookup(NewToken(), t0); ok {
		t.Fatal("an unknown token was accepted")
	}
	raw, err := os.ReadFile(filepath.Join(dir, Key+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), tokA) {
		t.Fatal("the file holds a cookie secret; it must hold only its hash")
	}

	s = open(t, dir, "fp1", t0.Add(2*time.Minute))
	if _, ok := s.Lookup(tokB, t0.Add(2*time.Minute)); !ok {
		t.Fatal("a session was lost across a restart")
	}
	if err := s.Delete(b.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Lookup(tokB, t0.Add(2*time.Minute)); ok {
		t.Fatal("a deleted session still signs in")
	}
	if err := s.Delete(b.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting twice: %v, want ErrNotFound", err)
	}
	s = open(t, dir, "fp1", t0.Add(3*time.Minute))
	if _, ok := s.Lookup(tokB, t0.Add(3*time.Minute)); ok {
		t.Fatal("a deleted session came back after a restart")
	}
	if _, ok := s.Lookup(tokA, t0.Add(2*time.Hour)); ok {
		t.Fatal("an expired session signs in")
	}
}

func TestCredentialChangeEndsAll(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, "fp1", t0)
	tok, _ := create(t, s, t0)
	s = open(t, dir, "fp2", t0)
	if _, ok := s.Lookup(tok, t0); ok {
		t.Fatal("a session of the old password still signs in")
	}
	if n := len(s.List(t0)); n != 0 {
		t.Fatalf("%d sessions listed after the password changed", n)
	}
	// And they stay gone when the old password comes back.
	s = open(t, dir, "fp1", t0)
	if _, ok := s.Lookup(tok, t0); ok {
		t.Fatal("a session came back with the old password")
	}
}

func TestDeleteAllKeepsOne(t *testing.T) {
	s := open(t, t.TempDir(), "fp", t0)
	tokA, a := create(t, s, t0)
	tokB, _ := create(t, s, t0)
	create(t, s, t0)
	n, err := s.DeleteAll(a.ID)
	if err != nil || n != 2 {
		t.Fatalf("DeleteAll = %d, %v; want 2 ended", n, err)
	}
	if _, ok := s.Lookup(tokA, t0); !ok {
		t.Fatal("the kept session ended")
	}
	if _, ok := s.Lookup(tokB, t0); ok {
		t.Fatal("another session survived DeleteAll")
	}
}

func TestCapEndsLeastRecentlyUsed(t *testing.T) {
	s := open(t, t.TempDir(), "fp", t0)
	first, _ := create(t, s, t0)
	second, _ := create(t, s, t0.Add(time.Second))
	for i := 2; i < Max; i++ {
		create(t, s, t0.Add(time.Duration(i)*time.Second))
	}
	s.Lookup(first, t0.Add(time.Hour-time.Minute)) // used recently: kept
	create(t, s, t0.Add(time.Hour-time.Minute))
	if n := len(s.List(t0)); n != Max {
		t.Fatalf("%d sessions, want the cap %d", n, Max)
	}
	if _, ok := s.Lookup(first, t0); !ok {
		t.Fatal("the recently used session was ended")
	}
	if _, ok := s.Lookup(second, t0); ok {
		t.Fatal("the least recently used session was kept beyond the cap")
	}
}

func TestCorruptFileStartsEmpty(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, Key+".json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := open(t, dir, "fp", t0)
	if n := len(s.List(t0)); n != 0 {
		t.Fatalf("%d sessions from a corrupt file", n)
	}
	create(t, s, t0) // and it can write again
}

// TestNodesShareTheLogins: two nodes of a cluster on one bucket of a real
// NATS server. A login through one is one through the other; logins made
// through each while the other's list is old are both kept; signing out
// through one ends the login on the other within RefreshEvery.
func TestNodesShareTheLogins(t *testing.T) {
	buckets := natstest.SharedBuckets(t, 2)
	var nodes []*Store
	for _, b := range buckets {
		s, err := Open(b, "creds", t0, nil)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, s)
	}
	a, b := nodes[0], nodes[1]
	tok, sess := create(t, a, t0)
	if _, ok := b.Lookup(tok, t0.Add(time.Millisecond)); !ok {
		t.Fatal("a login through node a is unknown to node b")
	}
	tokA, _ := create(t, a, t0)
	tokB, _ := create(t, b, t0) // b's list is older than a's
	later := t0.Add(2 * time.Second)
	for i, s := range nodes {
		for _, tk := range []string{tok, tokA, tokB} {
			if _, ok := s.Lookup(tk, later); !ok {
				t.Errorf("node %d does not know a login: %d sessions", i, len(s.List(later)))
			}
		}
	}
	if err := a.Delete(sess.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Lookup(tok, later.Add(RefreshEvery)); ok {
		t.Error("signed out through node a, the login still works on node b")
	}
	if _, ok := b.Lookup(tokB, later.Add(RefreshEvery)); !ok {
		t.Error("signing one browser out through node a ended another on node b")
	}
}
