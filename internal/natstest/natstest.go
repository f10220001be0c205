// Package natstest runs a real NATS server with JetStream for tests, in the
// test's own process (github.com/nats-io/nats-server/v2), on a loopback
// port.
package natstest

import (
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/cloudcloud/cloudcloud/internal/storage"
	"github.com/cloudcloud/cloudcloud/internal/storage/jetstore"
)

// Start runs a NATS server with JetStream, its store in dir, on
// 127.0.0.1:port (0: a free port; a given one lets a test restart the
// server where its clients look for it). It is shut down when the test
// ends.
func Start(t testing.TB, port int, dir string) *natsserver.Server {
	t.Helper()
	if port == 0 {
		port = -1
	}
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("the NATS server did not start within 10s")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// SharedBuckets starts a NATS server and returns n connections to one
// bucket on it: n nodes sharing their records.
func SharedBuckets(t testing.TB, n int) []storage.Bucket {
	t.Helper()
	return Buckets(t, Start(t, 0, t.TempDir()), n)
}

// Buckets returns n connections to one bucket on ns, closed when the test
// ends.
func Buckets(t testing.TB, ns *natsserver.Server, n int) []storage.Bucket {
	t.Helper()
	var out []storage.Bucket
	for range n {
		s, err := jetstore.Open(ns.ClientURL(), 1, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		b, err := s.Bucket("")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}
