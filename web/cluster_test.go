package web

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/cluster"
	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/lamps"
)

// fakeCluster is a node's view of its cluster.
type fakeCluster = fakeStatus[cluster.Status]

func newFakeCluster(st cluster.Status) *fakeCluster {
	return &fakeCluster{st: st, typ: events.TypeCluster}
}

func withCluster(f *fakeCluster) envOption { return func(_ *Options, d *Deps) { d.Cluster = f } }

var twoNodes = cluster.Status{Node: "node-1", NATS: "connected", Nodes: []cluster.Node{
	{Name: "node-1", Self: true, Lamps: 1, StartedAt: time.Unix(0, 0).UTC()},
	{Name: "node-2", Lamps: 12, StartedAt: time.Unix(0, 0).UTC()},
}}

func TestClusterStatusOnThePage(t *testing.T) {
	off := newEnv(t)
	if res := off.call(t, http.MethodGet, "/", ""); strings.Contains(res.body, "cluster-status") {
		t.Error("the page of a server of its own mentions a cluster")
	}
	if res := off.call(t, http.MethodGet, "/api/cluster", ""); res.status != http.StatusOK || strings.TrimSpace(res.body) != `{"node":"","nats":"","nodes":[]}` {
		t.Errorf("GET /api/cluster of a server of its own: %d %s", res.status, res.body)
	}

	f := newFakeCluster(twoNodes)
	e := newEnv(t, withCluster(f))
	if res := e.call(t, http.MethodGet, "/", ""); !strings.Contains(res.body, "Cluster of 2 nodes: node-1 (this one) 1 lamp, node-2 12 lamps.") {
		t.Errorf("the page lacks the cluster line")
	}
	res := e.call(t, http.MethodGet, "/api/cluster", "")
	var st cluster.Status
	if err := json.Unmarshal([]byte(res.body), &st); err != nil || st.Node != "node-1" || len(st.Nodes) != 2 || st.Nodes[1].Lamps != 12 {
		t.Errorf("GET /api/cluster: %s (%v)", res.body, err)
	}
	s := e.openEvents(t)
	if ev := s.next(t, "cluster"); !strings.Contains(ev.data, `"name":"node-2"`) {
		t.Errorf("cluster snapshot %s", ev.data)
	}
	f.set(e.bus, cluster.Status{Node: "node-1", NATS: "reconnecting", Nodes: twoNodes.Nodes[:1]})
	if ev := s.next(t, "cluster"); !strings.Contains(ev.data, `"nats":"reconnecting"`) {
		t.Errorf("cluster event %s", ev.data)
	}
}

// TestBrowserClusterStatus: the status line follows the cluster without a
// reload, worded as the server words it.
func TestBrowserClusterStatus(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests are slow; skipped with -short")
	}
	b := newBrowser(t)
	f := newFakeCluster(twoNodes)
	e := newEnv(t, withCluster(f))
	ctx := b.ctx
	b.signIn(t, ctx, e.web.URL)
	for _, st := range []cluster.Status{
		{Node: "node-1", NATS: "reconnecting", Nodes: twoNodes.Nodes[:1]},
		{Node: "node-1", NATS: "connected", Nodes: append(twoNodes.Nodes, cluster.Node{Name: "node-3", Lamps: 1})},
	} {
		f.set(e.bus, st)
		want, _ := json.Marshal(clusterText(st))
		b.waitJS(t, ctx, "the line "+string(want), `document.querySelector('#cluster-status').textContent === `+string(want))
	}
}

// TestLampCardNamesItsNodes: a lamp's card says which cluster nodes hold
// its connections, each once; a server of its own says nothing of nodes.
func TestLampCardNamesItsNodes(t *testing.T) {
	now := time.Now()
	l := lamps.Lamp{ID: "desk", Online: true, Devices: []device.Info{
		{ID: "d-node-2-1", Node: "node-2", ConnectedAt: now}, {ID: "d-node-1-1", Node: "node-1", ConnectedAt: now}, {ID: "d-node-2-2", Node: "node-2", ConnectedAt: now},
	}}
	if got := lampView(l, now).Nodes; got != "node-2, node-1" {
		t.Errorf("the card of a lamp on two nodes says %q", got)
	}
	l.Devices = []device.Info{{ID: "d-1", ConnectedAt: now}}
	if got := lampView(l, now).Nodes; got != "" {
		t.Errorf("the card of a lamp on a server of its own says %q", got)
	}
}
