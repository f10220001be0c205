package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/config"
	"github.com/cloudcloud/cloudcloud/internal/natstest"
	"github.com/cloudcloud/cloudcloud/internal/server"
)

// syncBuffer is a log that several goroutines write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestClusterAgainstRealNodes runs the cluster mode against three real
// nodes on a real NATS server, all in this process, with the lamp clients
// on pipes instead of processes: every lamp of every node gets every
// change, each node's CPU is read, and when the last node stops its lamps
// come back on the other two with the final state.
func TestClusterAgainstRealNodes(t *testing.T) {
	ns := natstest.Start(t, 0, t.TempDir())

	var nodes []Node
	for i := range 3 {
		cfg := config.Default()
		cfg.Web.Listen, cfg.Device.Listen, cfg.Storage.Dir = "127.0.0.1:0", "127.0.0.1:0", t.TempDir()
		cfg.Web.Password, cfg.Device.AuthSecret = "load-password", "load-test-secret"
		cfg.Device.MaxHandshakes = 100
		cfg.Cluster.NATSURL, cfg.Cluster.Node = ns.ClientURL(), fmt.Sprintf("node-%d", i+1)
		ready := make(chan server.Addrs, 1)
		srv, err := server.New(cfg, server.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Ready: func(a server.Addrs) { ready <- a }})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx) }()
		stop := sync.OnceValue(func() error { cancel(); return <-done })
		t.Cleanup(func() { stop() })
		var a server.Addrs
		select {
		case a = <-ready:
		case err := <-done:
			t.Fatal(err)
		}
		nodes = append(nodes, Node{Name: cfg.Cluster.Node, Lamps: "ws://" + a.Device + "/", API: "http://" + a.Web, Kill: stop})
	}

	var log syncBuffer
	clientErrs := make(chan error, len(nodes))
	res, err := Cluster(context.Background(), ClusterOptions{
		Nodes: nodes, Secret: "load-test-secret", Username: "admin", Password: "load-password",
		LampsPerNode: 20, InFlight: 10, Sources: 10, Changes: 5, Every: 20 * time.Millisecond, Settle: 50 * time.Millisecond, Kill: true,
		Client: func(ctx context.Context, i int) (io.WriteCloser, io.ReadCloser, error) {
			inR, inW := io.Pipe()
			outR, outW := io.Pipe()
			go func() {
				err := Client(ctx, inR, outW, &log)
				outW.Close()
				clientErrs <- err
			}()
			return inW, outR, nil
		},
		Log: &log,
	})
	if err != nil {
		t.Fatalf("Cluster: %v\n%s", err, log.String())
	}
	for range nodes {
		if err := <-clientErrs; err != nil {
			t.Errorf("a lamp client: %v", err)
		}
	}
	if res.Lamps != 60 || res.ConnectFailures != 0 || res.MissedFinal != 0 {
		t.Errorf("lamps %d, connect failures %d, missed the final state %d; want 60, 0, 0\n%s", res.Lamps, res.ConnectFailures, res.MissedFinal, log.String())
	}
	if res.FanoutP50MS <= 0 || res.FanoutP99MS < res.FanoutP50MS || res.LampLatencyP50MS <= 0 || res.LampLatencyP99MS > res.FanoutMaxMS || res.APIP50MS <= 0 {
		t.Errorf("implausible fan-out: %+v", res)
	}
	if len(res.PerNode) != 3 {
		t.Fatalf("per node: %+v", res.PerNode)
	}
	for _, n := range res.PerNode {
		// The nodes share this process, so their CPU figures are the
		// process's: only that they were read is checked.
		if n.Lamps != 20 || math.IsNaN(n.CPUMS) || n.IdleCPUMS < 0 || n.RSSLampsKiB <= 0 {
			t.Errorf("node %+v: want 20 lamps, its CPU time and memory", n)
		}
	}
	if k := res.Kill; k == nil || k.Node != "node-3" || k.Lamps != 20 || k.NotBack != 0 || k.AllBackMS <= 0 || k.BackP50MS > k.AllBackMS {
		t.Errorf("kill step: %+v\n%s", res.Kill, log.String())
	}
	var table bytes.Buffer
	res.Table(&table)
	t.Logf("figures:\n%s", table.String())
	for _, want := range []string{"fan-out to every lamp", "node-3 killed"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("the table has no %q:\n%s", want, table.String())
		}
	}
}

func TestClusterRefusesWhatItCannotMeasure(t *testing.T) {
	for _, tt := range []struct {
		o    ClusterOptions
		want string
	}{
		{ClusterOptions{Changes: 1}, "needs nodes"},
		{ClusterOptions{Nodes: []Node{{Name: "a"}}, Changes: 0}, "at least one change"},
		{ClusterOptions{Nodes: []Node{{Name: "a"}, {Name: "b"}}, Changes: 1, Kill: true}, "started by the tool"},
	} {
		if _, err := Cluster(context.Background(), tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Cluster(%+v): %v, want an error with %q", tt.o, err, tt.want)
		}
	}
}
