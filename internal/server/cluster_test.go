package server

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudcloud/cloudcloud/internal/config"
	"github.com/cloudcloud/cloudcloud/internal/natstest"
)

const (
	clusterPassword = "cluster-password"
	clusterSecret   = "cluster-lamp-secret"
)

// clusterNode is a running cloudcloud node of a test cluster.
type clusterNode struct {
	Addrs
	srv  *Server
	stop func() // stops it gracefully and waits; safe to call twice
}

// startNode runs a cloudcloud node on the NATS server at url. edit, if
// set, changes its configuration first.
func startNode(t *testing.T, url, node string, edit ...func(*config.Config)) *clusterNode {
	t.Helper()
	cfg := config.Default()
	cfg.Web.Listen, cfg.Device.Listen, cfg.Storage.Dir = "127.0.0.1:0", "127.0.0.1:0", t.TempDir()
	cfg.Web.Password, cfg.Device.AuthSecret = clusterPassword, clusterSecret
	cfg.Cluster.NATSURL, cfg.Cluster.Node = url, node
	for _, e := range edit {
		e(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ready, done := make(chan Addrs, 1), make(chan error, 1)
	srv, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(t.Output(), nil)).With("node", node), Ready: func(a Addrs) { ready <- a }})
	if err != nil {
		t.Fatalf("node %s: %v", node, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- srv.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("node %s stopped with %v", node, err)
				}
			case <-time.After(2 * ShutdownTimeout):
				t.Errorf("node %s did not stop", node)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case a := <-ready:
		return &clusterNode{Addrs: a, srv: srv, stop: stop}
	case err := <-done:
		t.Fatalf("node %s did not start: %v", node, err)
	case <-time.After(20 * time.Second):
		t.Fatalf("node %s did not start in 20s", node)
	}
	return nil
}

func putState(t *testing.T, web, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, "http://"+web+"/api/state", strings.NewReader(body))
	req.SetBasicAuth("admin", clusterPassword)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res
}

func waitPacket(t *testing.T, c *websocket.Conn, want string) {
	t.Helper()
	var seen []string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c.SetReadDeadline(deadline)
		_, b, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("lamp waiting for %s: %v (saw %q)", want, err, seen)
		}
		if string(b) == want {
			return
		}
		seen = append(seen, string(b))
	}
	t.Fatalf("the lamp never got %s (saw %q)", want, seen)
}

// TestAChangeThroughOneNodeReachesTheLampsOfAnother: two nodes on one
// NATS server; a lamp on each; a change through either node reaches both
// lamps. While NATS is down a change is answered 503 and changes nothing;
// once NATS is back, changes go through again.
func TestAChangeThroughOneNodeReachesTheLampsOfAnother(t *testing.T) {
	natsDir := t.TempDir()
	ns := natstest.Start(t, 0, natsDir)
	port := ns.Addr().(*net.TCPAddr).Port
	a := startNode(t, ns.ClientURL(), "a")
	b := startNode(t, ns.ClientURL(), "b")
	onA, onB := lampConnect(t, a.Device, clusterSecret), lampConnect(t, b.Device, clusterSecret)

	if res := putState(t, a.Web, `{"mode": "manual", "color": "#102030", "pulse": 2}`); res.StatusCode != 200 {
		t.Fatalf("PUT through node a: %s", res.Status)
	}
	waitPacket(t, onA, "[cc:2:16,32,48:2]")
	waitPacket(t, onB, "[cc:2:16,32,48:2]")
	if res := putState(t, b.Web, `{"pulse": 7}`); res.StatusCode != 200 {
		t.Fatalf("PUT through node b: %s", res.Status)
	}
	waitPacket(t, onA, "[cc:2:16,32,48:7]")
	waitPacket(t, onB, "[cc:2:16,32,48:7]")

	ns.Shutdown()
	ns.WaitForShutdown()
	res := putState(t, a.Web, `{"pulse": 1}`)
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Errorf("a change while NATS is down: %s, want 503 with Retry-After", res.Status)
	}
	natstest.Start(t, port, natsDir)
	var ok bool
	for range 100 {
		if putState(t, b.Web, `{"pulse": 3}`).StatusCode == 200 {
			ok = true
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !ok {
		t.Fatal("changes still fail after NATS came back")
	}
	waitPacket(t, onB, "[cc:2:16,32,48:3]")
	waitPacket(t, onA, "[cc:2:16,32,48:3]")
	// And each node still lists the other's lamp.
	eventually(t, "a lists b's lamp after NATS came back", func() (bool, string) {
		status, body := callAPI(t, a.Web, http.MethodGet, "/api/devices", "")
		return status == http.StatusOK && strings.Contains(string(body), `"node":"b"`) && strings.Contains(string(body), `"node":"a"`), string(body)
	})
}
