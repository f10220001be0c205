// Package cluster makes the lamp gateways of several cloudcloud nodes on one
// NATS system act as one (docs/cluster.md): each node tells the others which
// lamps it holds and what happens to them, keeps a view of every other
// node's lamps, carries out the commands meant for its own lamps, and
// answers the others' questions for its debug log.
//
// What is stored (states, scenes, the firmware image...) is shared through
// JetStream by internal/storage/jetstore; this package carries what is not
// stored: which node holds which connection now. It uses plain NATS
// subjects, one set per node:
//
//	cloudcloud.node.<node>.heartbeat  every Heartbeat: the node is alive, with its lamp count
//	cloudcloud.node.<node>.bye        the node is stopping: forget its lamps now
//	cloudcloud.node.<node>.devices    batches of device objects whose connection changed
//	cloudcloud.node.<node>.counters   every Counters: the packet counts of its lamps that changed
//	cloudcloud.node.<node>.log        debug lines its lamps sent
//	cloudcloud.node.<node>.event.<t>  its other events of type t (Options.Forward)
//	cloudcloud.node.<node>.snapshot   request: every device object it holds, in chunks
//	cloudcloud.node.<node>.command    request: reset, update or debug for its lamps
//	cloudcloud.node.<node>.logs       request: its debug log lines
//
// A node not heard from for Expiry is gone, and so are its lamps: a node
// that dies cannot say bye.
package cluster

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/storage"
	"github.com/cloudcloud/cloudcloud/protocol"
)

// Gateway is this node's lamp gateway (device.Gateway).
type Gateway interface {
	Devices() []device.Info
	Connections() int // len(Devices()), for the heartbeat
	Offline() []device.Info
	Command(p protocol.Packet, ids []string) ([]string, error)
	SetDebug(on bool, ids []string) ([]string, error)
	RememberDebug(on bool, keys []string) error
	Logs(device string, limit int) []device.LogLine
	LampDevices(id string) []device.Info
	SetLampDisplay(id string, p protocol.Packet) error
	FollowShared(ids ...string)
}

// Bus is the event bus (events.Bus): this node's device events and debug
// lines are taken from it, the other nodes' are put on it.
type Bus interface {
	events.Publisher
	Subscribe(buffer int, types ...events.Type) *events.Subscription
	SubscribeCoalesced(key func(events.Event) string, types ...events.Type) *events.Coalesced
}

// Options configures a Cluster.
type Options struct {
	Conn    *nats.Conn
	Node    string // cluster.node; the gateway must have the same (device.Options.Node)
	Gateway Gateway
	Bus     Bus
	// Records, if set, is the bucket the nodes share: the debug log of a
	// node that is gone, or does not answer, is read from its last save
	// there (device.StoredLogs).
	Records storage.Bucket
	// LampChanged, if set, is told the lamp id of every connection of
	// another node that came, changed or went (for the lamp registry's
	// pages).
	LampChanged func(lamp string)
	// Forward are more event types this node sends the others, each with
	// how to decode its data; the others put them on their bus with
	// events.Event.Node set. (Device events and debug lines always go.)
	Forward map[events.Type]func([]byte) (any, error)
	// Expiry is how long a silent node is believed (the lamps' keepalive
	// timeout); 0: device.DefaultKeepaliveTimeout.
	Expiry time.Duration
	// Heartbeat is how often this node says it is alive; 0: Expiry/5, at
	// most MaxHeartbeat.
	Heartbeat time.Duration
	// Counters is how often this node sends its lamps' packet counts and
	// last-seen times that changed, which change with every packet and so
	// are not in the device batches; 0: DefaultCounters.
	Counters time.Duration
	// Timeout bounds a question to another node; 0: DefaultTimeout.
	Timeout time.Duration
	Logger  *slog.Logger
}

// DefaultTimeout bounds a question to another node (a command, its log).
const DefaultTimeout = 2 * time.Second

// DefaultCounters is how often a node sends its lamps' packet counts: as
// often as the pages get a fresh device list (web's devices snapshot).
const DefaultCounters = 15 * time.Second

// MaxHeartbeat is the longest default heartbeat interval: a node that
// missed device batches (NATS was away) finds out from the counts of two
// heartbeats, so they come often; each is one small message.
const MaxHeartbeat = 2 * time.Second

// batchInterval is how often this node sends the device objects that
// changed: the newest of each connection, so thousands of lamps connecting
// cost the others a few messages a second.
const batchInterval = 100 * time.Millisecond

// chunk is how many device objects go in one message, well under NATS's
// default 1 MB limit.
const chunk = 500

// Node is a node as GET /api/cluster shows it.
type Node struct {
	Name      string    `json:"name"`
	Self      bool      `json:"self"`
	Lamps     int       `json:"lamps"`
	StartedAt time.Time `json:"started_at"`
	// HeardAt is when this node last heard from it (now, for itself).
	HeardAt time.Time `json:"heard_at"`
}

// NodeError says that another node did not answer in time: what was asked
// of its lamps may not have happened.
type NodeError struct {
	Node string
	Err  error
}

func (e *NodeError) Error() string {
	return fmt.Sprintf("node %q, which holds the lamp, did not answer (%v); try again in a moment", e.Node, e.Err)
}

func (e *NodeError) Unwrap() error { return e.Err }

type heartbeat struct {
	Node      string    `json:"node"`
	Instance  string    `json:"instance"` // tells two processes that share a name apart
	StartedAt time.Time `json:"started_at"`
	Lamps     int       `json:"lamps"`
}

// deviceBatch is device objects of a node's connections that changed, with
// the process they are from: a batch of a process that restarted under the
// same name is not the new process's.
type deviceBatch struct {
	Instance string        `json:"instance"`
	Devices  []device.Info `json:"devices"`
}

// counterBatch is the packet counts of a node's connections that changed
// since its last batch, with the process they are from (as deviceBatch).
type counterBatch struct {
	Instance string          `json:"instance"`
	Counters []countersOfOne `json:"counters"`
}

type countersOfOne struct {
	ID       string    `json:"id"`
	Sent     uint64    `json:"sent"`
	Received uint64    `json:"received"`
	LastSeen time.Time `json:"last_seen"`
}

type snapshotChunk struct {
	Devices []device.Info `json:"devices"`
	More    bool          `json:"more"`
}

type commandRequest struct {
	Packet string   `json:"packet,omitempty"` // reset or update, as protocol.Parse reads it
	Debug  *bool    `json:"debug,omitempty"`  // or the debug switch
	IDs    []string `json:"ids"`              // none: every lamp of the node
	// Remember, with Debug: keep the switch for these lamps (names or
	// lamp ids) for when they connect to the node; nothing is sent.
	Remember []string `json:"remember,omitempty"`
}

type commandReply struct {
	SentTo  []string `json:"sent_to"`
	Unknown []string `json:"unknown,omitempty"`
	Error   string   `json:"error,omitempty"`
}

type logsRequest struct {
	Device string `json:"device"`
	Limit  int    `json:"limit"`
}

// peer is another node, as far as this one knows.
type peer struct {
	instance   string
	startedAt  time.Time
	heard      time.Time
	lamps      int // in its last heartbeat
	mismatches int // heartbeats in a row whose count differs from devices
	syncing    bool
	devices    map[string]device.Info // by connection id
}

// seen is i as of p's last heartbeat: a connection p still lists has been
// heard by p within the keepalive timeout (p drops it otherwise), and a
// last-seen time frozen at its last change would make a live lamp look
// lost.
func (p *peer) seen(i device.Info) device.Info {
	if p.heard.After(i.LastSeen) {
		i.LastSeen = p.heard.UTC()
	}
	return i
}

// Cluster is this node's part in the cluster. Its methods are the
// gateway's, for every node's lamps.
type Cluster struct {
	opt      Options
	log      *slog.Logger
	nc       *nats.Conn
	instance string
	started  time.Time

	mu     sync.Mutex
	peers  map[string]*peer
	byLamp map[string]map[string]device.Info // lamp id → node/connection → device
	// left are lamps that left another node (or went with it), by
	// device.Info.Lamp(), as the gateway keeps its own (Offline).
	left map[string]device.Info

	subs      []*nats.Subscription
	lastCount atomic.Int64 // this node's lamps in its last heartbeat
}

func subject(node, kind string) string { return "cloudcloud.node." + node + "." + kind }

// nodeOf is the node of a subject made by subject.
func nodeOf(subj string) string {
	parts := strings.Split(subj, ".")
	if len(parts) != 4 {
		return ""
	}
	return parts[2]
}

// New joins the cluster: it answers the other nodes and listens to them at
// once; Run sends the heartbeat and this node's news.
func New(o Options) (*Cluster, error) {
	if o.Conn == nil || o.Node == "" || o.Gateway == nil || o.Bus == nil {
		return nil, errors.New("cluster: Conn, Node, Gateway and Bus are required")
	}
	if o.Expiry <= 0 {
		o.Expiry = device.DefaultKeepaliveTimeout
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = min(o.Expiry/5, MaxHeartbeat)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Counters <= 0 {
		o.Counters = DefaultCounters
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	c := &Cluster{opt: o, log: o.Logger, nc: o.Conn, instance: hex.EncodeToString(b[:]), started: time.Now().UTC(),
		peers: map[string]*peer{}, byLamp: map[string]map[string]device.Info{}, left: map[string]device.Info{}}
	handlers := []struct {
		subject string
		fn      nats.MsgHandler
	}{
		{subject("*", "heartbeat"), c.onHeartbeat},
		{subject("*", "bye"), c.onBye},
		{subject("*", "devices"), c.onDevices},
		{subject("*", "counters"), c.onCounters},
		{subject("*", "log"), c.onLog},
		{subject("*", "event") + ".*", c.onEvent},
		{subject(o.Node, "snapshot"), c.onSnapshot},
		{subject(o.Node, "command"), c.onCommand},
		{subject(o.Node, "logs"), c.onLogs},
	}
	for _, h := range handlers {
		sub, err := c.nc.Subscribe(h.subject, h.fn)
		if err != nil {
			c.unsubscribe()
			return nil, fmt.Errorf("cluster: subscribe to %s: %w", h.subject, err)
		}
		c.subs = append(c.subs, sub)
	}
	return c, nil
}

func (c *Cluster) unsubscribe() {
	for _, s := range c.subs {
		_ = s.Unsubscribe()
	}
	c.subs = nil
}

// Run sends the heartbeat, forgets silent nodes and forwards this node's
// device events and debug lines until ctx ends; then it says bye.
func (c *Cluster) Run(ctx context.Context) {
	devs := c.opt.Bus.SubscribeCoalesced(func(e events.Event) string {
		if i, ok := e.Data.(device.Info); ok {
			return i.ID
		}
		return ""
	}, events.TypeDevice)
	defer devs.Close()
	forwarded := []events.Type{events.TypeLog}
	for t := range c.opt.Forward {
		forwarded = append(forwarded, t)
	}
	logs := c.opt.Bus.Subscribe(4096, forwarded...)
	defer func() { logs.Close() }()

	c.beat()
	beat := time.NewTicker(c.opt.Heartbeat)
	defer beat.Stop()
	batch := time.NewTicker(batchInterval)
	defer batch.Stop()
	counters := time.NewTicker(c.opt.Counters)
	defer counters.Stop()
	sentCounters := map[string]countersOfOne{}
	pending := false
	reconnects := c.nc.Stats().Reconnects
	link := c.nc.Status()
	for {
		select {
		case <-ctx.Done():
			c.unsubscribe()
			c.sendDevices(devs.Take())
			if c.nc.IsConnected() {
				_ = c.nc.Publish(subject(c.opt.Node, "bye"), []byte(c.instance))
				// Bounded: a stop must not wait for a NATS that went away.
				_ = c.nc.FlushTimeout(time.Second)
			}
			return
		case <-beat.C:
			c.beat()
			c.expire(time.Now())
		case <-counters.C:
			sentCounters = c.sendCounters(sentCounters)
		case <-devs.Ready:
			pending = true
		case <-batch.C:
			if pending {
				pending = false
				c.sendDevices(devs.Take())
			}
			// Back after NATS was away: what the nodes told each other
			// meanwhile is lost, so say where this one stands and ask
			// the others for their lists at once.
			if r := c.nc.Stats().Reconnects; r != reconnects {
				reconnects = r
				c.beat()
				c.resyncAll()
			}
			if s := c.nc.Status(); s != link {
				link = s
				c.changed()
			}
		case e, ok := <-logs.C:
			if !ok {
				// Lagged: lines were lost for the other nodes' pages (they
				// are in this node's log all the same); listen again.
				logs = c.opt.Bus.Subscribe(4096, forwarded...)
				continue
			}
			switch {
			case e.Node != "":
			case e.Type == events.TypeLog:
				c.publishJSON(subject(c.opt.Node, "log"), e.Data)
			default:
				c.publishJSON(subject(c.opt.Node, "event")+"."+string(e.Type), e.Data)
			}
		}
	}
}

func (c *Cluster) publishJSON(subj string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		c.log.Error("cluster: encode", "subject", subj, "err", err)
		return
	}
	if err := c.nc.Publish(subj, data); err != nil {
		c.log.Debug("cluster: publish", "subject", subj, "err", err)
	}
}

func (c *Cluster) beat() {
	n := c.opt.Gateway.Connections()
	c.publishJSON(subject(c.opt.Node, "heartbeat"), heartbeat{Node: c.opt.Node, Instance: c.instance, StartedAt: c.started, Lamps: n})
	if c.lastCount.Swap(int64(n)) != int64(n) {
		c.changed()
	}
}

// changed tells the pages where the cluster stands now (events.TypeCluster):
// a node came or went, a node's lamp count or the NATS link changed. Counts
// are those of the heartbeats, so this is at most one event per node per
// heartbeat.
func (c *Cluster) changed() {
	c.opt.Bus.Publish(events.Event{Type: events.TypeCluster, Data: c.Status()})
}

// sendDevices tells the others about this node's connections that changed.
func (c *Cluster) sendDevices(es []events.Event) {
	var list []device.Info
	for _, e := range es {
		if i, ok := e.Data.(device.Info); ok && e.Node == "" {
			list = append(list, i)
		}
	}
	for len(list) > 0 {
		n := min(len(list), chunk)
		c.publishJSON(subject(c.opt.Node, "devices"), deviceBatch{Instance: c.instance, Devices: list[:n]})
		list = list[n:]
	}
}

// sendCounters tells the others the packet counts of this node's
// connections that changed since sent, and returns the counts now.
func (c *Cluster) sendCounters(sent map[string]countersOfOne) map[string]countersOfOne {
	now := make(map[string]countersOfOne, len(sent))
	var changed []countersOfOne
	for _, i := range c.opt.Gateway.Devices() {
		one := countersOfOne{ID: i.ID, Sent: i.PacketsSent, Received: i.PacketsReceived, LastSeen: i.LastSeen}
		now[i.ID] = one
		if sent[i.ID] != one {
			changed = append(changed, one)
		}
	}
	for len(changed) > 0 {
		n := min(len(changed), counterChunk)
		c.publishJSON(subject(c.opt.Node, "counters"), counterBatch{Instance: c.instance, Counters: changed[:n]})
		changed = changed[n:]
	}
	return now
}

// counterChunk is how many connections' counts go in one message: about
// 100 bytes each.
const counterChunk = 2000

// onCounters takes another node's packet counts into its device objects.
// Nothing is announced: the counts are for lists asked for, as the
// gateway's own are.
func (c *Cluster) onCounters(m *nats.Msg) {
	node := nodeOf(m.Subject)
	if node == c.opt.Node {
		return
	}
	var batch counterBatch
	if err := json.Unmarshal(m.Data, &batch); err != nil {
		c.log.Warn("cluster: packet counts that do not decode", "node", node, "err", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.peers[node]
	if p == nil || p.instance != batch.Instance {
		return
	}
	for _, one := range batch.Counters {
		i, ok := p.devices[one.ID]
		if !ok {
			continue
		}
		i.PacketsSent, i.PacketsReceived = one.Sent, one.Received
		if one.LastSeen.After(i.LastSeen) {
			i.LastSeen = one.LastSeen
		}
		p.devices[one.ID] = i
		c.index(node, i) // replaces the copy under its lamp
	}
}

// expire forgets the nodes not heard from for Expiry.
func (c *Cluster) expire(now time.Time) {
	c.mu.Lock()
	var gone []string
	for name, p := range c.peers {
		if now.Sub(p.heard) > c.opt.Expiry {
			gone = append(gone, name)
		}
	}
	c.mu.Unlock()
	for _, name := range gone {
		c.forgetNode(name, fmt.Sprintf("node %s stopped answering", name))
	}
}

// forgetNode drops a node and its lamps, telling the pages they left.
func (c *Cluster) forgetNode(name, why string) {
	c.mu.Lock()
	p := c.peers[name]
	if p == nil {
		c.mu.Unlock()
		return
	}
	delete(c.peers, name)
	left := make([]device.Info, 0, len(p.devices))
	for _, i := range p.devices {
		c.unindex(name, i)
		left = append(left, i)
	}
	c.mu.Unlock()
	c.log.Info("cluster: a node left", "node", name, "lamps", len(left), "why", why)
	c.changed()
	now := time.Now().UTC()
	for _, i := range left {
		i.Event, i.Phase, i.Reason, i.DisconnectedAt = device.EventDisconnected, device.PhaseOffline, why, &now
		c.remember(i)
		c.announce(i)
	}
}

// maxLeft bounds the lamps kept that left other nodes, as the gateway
// bounds its own.
const maxLeft = 64

// remember keeps a lamp that left another node, for Offline.
func (c *Cluster) remember(i device.Info) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rememberLocked(i)
}

// rememberLocked is remember with c.mu held.
func (c *Cluster) rememberLocked(i device.Info) {
	if !i.Authenticated || i.DisconnectedAt == nil {
		return
	}
	i.Event = ""
	c.left[i.Lamp()] = i
	if len(c.left) > maxLeft {
		oldest := ""
		for k, o := range c.left {
			if oldest == "" || o.DisconnectedAt.Before(*c.left[oldest].DisconnectedAt) {
				oldest = k
			}
		}
		delete(c.left, oldest)
	}
}

// announce puts another node's device event on this node's bus.
func (c *Cluster) announce(i device.Info) {
	c.opt.Bus.Publish(events.Event{Type: events.TypeDevice, Data: i, Node: i.Node})
	if c.opt.LampChanged != nil && i.LampID != "" {
		c.opt.LampChanged(i.LampID)
	}
}

func (c *Cluster) index(node string, i device.Info) {
	if i.LampID == "" {
		return
	}
	m := c.byLamp[i.LampID]
	if m == nil {
		m = map[string]device.Info{}
		c.byLamp[i.LampID] = m
	}
	m[node+"/"+i.ID] = i
}

func (c *Cluster) unindex(node string, i device.Info) {
	if m := c.byLamp[i.LampID]; m != nil {
		delete(m, node+"/"+i.ID)
		if len(m) == 0 {
			delete(c.byLamp, i.LampID)
		}
	}
}

func (c *Cluster) onHeartbeat(m *nats.Msg) {
	var hb heartbeat
	if err := json.Unmarshal(m.Data, &hb); err != nil || hb.Node != nodeOf(m.Subject) {
		c.log.Warn("cluster: a heartbeat that does not decode", "subject", m.Subject, "err", err)
		return
	}
	if hb.Node == c.opt.Node {
		if hb.Instance != c.instance {
			c.log.Error("cluster: another process also calls itself node "+hb.Node+"; give every node its own cluster.node", "started_at", hb.StartedAt)
		}
		return
	}
	c.mu.Lock()
	p := c.peers[hb.Node]
	if p != nil && p.instance != hb.Instance {
		// The node restarted faster than it expired: its old lamps are gone.
		c.mu.Unlock()
		c.forgetNode(hb.Node, "node "+hb.Node+" restarted")
		c.mu.Lock()
		p = nil
	}
	sync := false
	if p == nil {
		p = &peer{instance: hb.Instance, startedAt: hb.StartedAt, devices: map[string]device.Info{}}
		c.peers[hb.Node] = p
		c.log.Info("cluster: a node joined", "node", hb.Node, "lamps", hb.Lamps)
		sync = true
	}
	counted := p.lamps != hb.Lamps || sync
	p.heard, p.lamps = time.Now(), hb.Lamps
	// Device batches can be lost (a slow consumer, a reconnect): a count
	// that stays wrong for two heartbeats asks for the whole list.
	if hb.Lamps != len(p.devices) {
		p.mismatches++
	} else {
		p.mismatches = 0
	}
	if p.mismatches >= 2 {
		p.mismatches = 0
		sync = true
	}
	if sync && !p.syncing {
		p.syncing = true
		go c.resync(hb.Node, hb.Instance)
	}
	c.mu.Unlock()
	if counted {
		c.changed()
	}
}

func (c *Cluster) onBye(m *nats.Msg) {
	node := nodeOf(m.Subject)
	c.mu.Lock()
	p := c.peers[node]
	ok := p != nil && p.instance == string(m.Data)
	c.mu.Unlock()
	if ok {
		c.forgetNode(node, "node "+node+" stopped")
	}
}

func (c *Cluster) onDevices(m *nats.Msg) {
	node := nodeOf(m.Subject)
	if node == c.opt.Node {
		return
	}
	var batch deviceBatch
	if err := json.Unmarshal(m.Data, &batch); err != nil {
		c.log.Warn("cluster: device objects that do not decode", "node", node, "err", err)
		return
	}
	list := batch.Devices
	c.mu.Lock()
	p := c.peers[node]
	if p == nil || p.instance != batch.Instance {
		// Not heard yet (its heartbeat brings the whole list), or of the
		// process before a restart.
		c.mu.Unlock()
		return
	}
	for _, i := range list {
		if old, ok := p.devices[i.ID]; ok {
			c.unindex(node, old)
		}
		if i.Event == device.EventDisconnected {
			delete(p.devices, i.ID)
			c.rememberLocked(i)
			continue
		}
		i.Event = ""
		p.devices[i.ID] = i
		c.index(node, i)
	}
	c.mu.Unlock()
	for _, i := range list {
		c.announce(i)
	}
}

func (c *Cluster) onLog(m *nats.Msg) {
	if nodeOf(m.Subject) == c.opt.Node {
		return
	}
	var line device.LogLine
	if err := json.Unmarshal(m.Data, &line); err != nil {
		return
	}
	c.opt.Bus.Publish(events.Event{Type: events.TypeLog, Time: line.Time, Data: line, Node: nodeOf(m.Subject)})
}

// onEvent takes another node's event of a type in Options.Forward.
func (c *Cluster) onEvent(m *nats.Msg) {
	parts := strings.Split(m.Subject, ".")
	if len(parts) != 5 || parts[2] == c.opt.Node {
		return
	}
	t := events.Type(parts[4])
	decode := c.opt.Forward[t]
	if decode == nil {
		return
	}
	data, err := decode(m.Data)
	if err != nil {
		c.log.Warn("cluster: an event that does not decode", "node", parts[2], "type", t, "err", err)
		return
	}
	c.opt.Bus.Publish(events.Event{Type: t, Data: data, Node: parts[2]})
}

// resyncAll asks every known node for its list.
func (c *Cluster) resyncAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, p := range c.peers {
		if !p.syncing {
			p.syncing = true
			go c.resync(name, p.instance)
		}
	}
}

// resync asks node for every device it holds and makes that its list.
func (c *Cluster) resync(node, instance string) {
	list, err := c.snapshot(node)
	c.mu.Lock()
	p := c.peers[node]
	if p == nil || p.instance != instance {
		c.mu.Unlock()
		return
	}
	p.syncing = false
	if err != nil {
		c.mu.Unlock()
		c.log.Warn("cluster: could not get the lamps of a node; asking again at its next heartbeat", "node", node, "err", err)
		return
	}
	fresh := make(map[string]device.Info, len(list))
	for _, i := range list {
		fresh[i.ID] = i
	}
	var changed []device.Info
	now := time.Now().UTC()
	for id, old := range p.devices {
		if _, ok := fresh[id]; !ok {
			c.unindex(node, old)
			old.Event, old.Phase, old.DisconnectedAt = device.EventDisconnected, device.PhaseOffline, &now
			changed = append(changed, old)
		}
	}
	for id, i := range fresh {
		if old, ok := p.devices[id]; ok {
			c.unindex(node, old)
		}
		c.index(node, i)
		changed = append(changed, i)
	}
	p.devices = fresh
	c.mu.Unlock()
	for _, i := range changed {
		c.announce(i)
	}
}

// snapshot asks node for every device object it holds.
func (c *Cluster) snapshot(node string) ([]device.Info, error) {
	inbox := c.nc.NewRespInbox()
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := c.nc.PublishRequest(subject(node, "snapshot"), inbox, nil); err != nil {
		return nil, err
	}
	var all []device.Info
	for range 1 << 16 { // bounded: far more chunks than any node has lamps for
		m, err := sub.NextMsg(c.opt.Timeout)
		if err != nil {
			return nil, err
		}
		var ch snapshotChunk
		if err := json.Unmarshal(m.Data, &ch); err != nil {
			return nil, fmt.Errorf("a snapshot chunk does not decode: %w", err)
		}
		all = append(all, ch.Devices...)
		if !ch.More {
			return all, nil
		}
	}
	return nil, errors.New("the snapshot did not end")
}

func (c *Cluster) onSnapshot(m *nats.Msg) {
	list := c.opt.Gateway.Devices()
	for {
		n := min(len(list), chunk)
		data, _ := json.Marshal(snapshotChunk{Devices: list[:n], More: n < len(list)})
		if err := c.nc.Publish(m.Reply, data); err != nil {
			return
		}
		list = list[n:]
		if len(list) == 0 {
			return
		}
	}
}

func (c *Cluster) onCommand(m *nats.Msg) {
	var req commandRequest
	reply := commandReply{SentTo: []string{}}
	err := json.Unmarshal(m.Data, &req)
	if err == nil {
		reply.SentTo, err = c.local(req)
	}
	var ude *device.UnknownDeviceError
	switch {
	case errors.As(err, &ude):
		reply.Unknown = ude.IDs
	case err != nil:
		reply.Error = err.Error()
	}
	data, _ := json.Marshal(reply)
	_ = m.Respond(data)
}

// local carries out a command on this node's lamps.
func (c *Cluster) local(req commandRequest) ([]string, error) {
	if req.Debug != nil && len(req.Remember) > 0 {
		return nil, c.opt.Gateway.RememberDebug(*req.Debug, req.Remember)
	}
	if req.Debug != nil {
		return c.opt.Gateway.SetDebug(*req.Debug, req.IDs)
	}
	p, err := protocol.Parse(req.Packet)
	if err != nil {
		return nil, err
	}
	return c.opt.Gateway.Command(p, req.IDs)
}

func (c *Cluster) onLogs(m *nats.Msg) {
	var req logsRequest
	if err := json.Unmarshal(m.Data, &req); err != nil {
		return
	}
	lines := c.opt.Gateway.Logs(req.Device, req.Limit)
	data, _ := json.Marshal(lines)
	// The answer is one NATS message (max_payload, 1 MB by default), and
	// lamps may send lines of up to device.max_frame_size: the newest lines
	// that fit go.
	budget := int(c.nc.MaxPayload()) - 1<<10
	for len(data) > budget && len(lines) > 0 {
		keep := min(len(lines)-1, len(lines)*budget/len(data))
		lines = lines[len(lines)-keep:]
		data, _ = json.Marshal(lines)
	}
	_ = m.Respond(data)
}

// The gateway's methods, for the lamps of every node.

// Devices lists the open connections of every node: this node's, then the
// others', each oldest first.
func (c *Cluster) Devices() []device.Info {
	out := c.opt.Gateway.Devices()
	c.mu.Lock()
	start := len(out)
	for _, p := range c.peers {
		for _, i := range p.devices {
			out = append(out, p.seen(i))
		}
	}
	c.mu.Unlock()
	sortDevices(out[start:])
	return out
}

func sortDevices(list []device.Info) {
	slices.SortFunc(list, func(a, b device.Info) int {
		if c := a.ConnectedAt.Compare(b.ConnectedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// Offline lists the lamps that left any node (this one, or others while
// this one heard them) and are connected to none now, most recently gone
// first, each lamp once.
func (c *Cluster) Offline() []device.Info {
	online := map[string]bool{}
	for _, i := range c.Devices() {
		online[i.Lamp()] = true
	}
	gone := map[string]device.Info{}
	add := func(i device.Info) {
		k := i.Lamp()
		if cur, ok := gone[k]; online[k] || ok && !i.DisconnectedAt.After(*cur.DisconnectedAt) {
			return
		}
		gone[k] = i
	}
	for _, i := range c.opt.Gateway.Offline() {
		add(i)
	}
	c.mu.Lock()
	for _, i := range c.left {
		add(i)
	}
	c.mu.Unlock()
	out := make([]device.Info, 0, len(gone))
	for _, i := range gone {
		out = append(out, i)
	}
	slices.SortFunc(out, func(a, b device.Info) int { return b.DisconnectedAt.Compare(*a.DisconnectedAt) })
	if len(out) > maxLeft {
		out = out[:maxLeft]
	}
	return out
}

// LampDevices lists the connections of lamp id on every node.
func (c *Cluster) LampDevices(id string) []device.Info {
	out := c.opt.Gateway.LampDevices(id)
	c.mu.Lock()
	for key, i := range c.byLamp[id] {
		node, _, _ := strings.Cut(key, "/")
		if p := c.peers[node]; p != nil {
			out = append(out, p.seen(i))
		}
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b device.Info) int { return a.ConnectedAt.Compare(b.ConnectedAt) })
	return out
}

// SetLampDisplay and FollowShared act on this node's connections: every
// node shows a lamp's own state from its record.
func (c *Cluster) SetLampDisplay(id string, p protocol.Packet) error {
	return c.opt.Gateway.SetLampDisplay(id, p)
}

// FollowShared: see SetLampDisplay.
func (c *Cluster) FollowShared(ids ...string) { c.opt.Gateway.FollowShared(ids...) }

// Command sends reset or update to the chosen lamps (ids, names or lamp
// ids; none: every lamp of every node), each through the node that holds
// it, and returns the connection ids it was sent to.
func (c *Cluster) Command(p protocol.Packet, ids []string) ([]string, error) {
	return c.route(commandRequest{Packet: p.String()}, ids)
}

// SetDebug switches debug logging of the chosen lamps (none: every lamp of
// every node, now and later), each on the node that holds it.
func (c *Cluster) SetDebug(on bool, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return c.route(commandRequest{Debug: &on}, nil)
	}
	var keys []string
	for _, i := range c.Devices() {
		if k := cmp.Or(i.Name, i.LampID); k != "" && slices.ContainsFunc(ids, i.AnswersTo) && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	sent, err := c.route(commandRequest{Debug: &on}, ids)
	if err != nil {
		return sent, err
	}
	// The other nodes remember the switch, so a lamp that reconnects to
	// one of them keeps it. Best effort: the switch is on where the lamp is.
	if len(keys) > 0 {
		for _, node := range c.nodeNames() {
			req := commandRequest{Debug: &on, Remember: keys}
			var err error
			if node == c.opt.Node {
				_, err = c.local(req)
			} else {
				_, err = c.ask(node, req)
			}
			if err != nil {
				c.log.Warn("cluster: a node could not keep a debug switch; a lamp that moves there logs without it", "node", node, "lamps", keys, "err", err)
			}
		}
	}
	return sent, nil
}

// nodeNames are this node and every other it knows.
func (c *Cluster) nodeNames() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []string{c.opt.Node}
	for name := range c.peers {
		out = append(out, name)
	}
	return out
}

// route sends req to the nodes holding ids (every node for none). An id no
// node holds sends nothing anywhere.
func (c *Cluster) route(req commandRequest, ids []string) ([]string, error) {
	targets, unknown := c.owners(ids)
	if len(unknown) > 0 {
		return nil, &device.UnknownDeviceError{IDs: unknown}
	}
	type result struct {
		sent []string
		err  error
	}
	results := make(chan result, len(targets))
	for node, ids := range targets {
		r := req
		r.IDs = ids
		go func() {
			var res result
			if node == c.opt.Node {
				res.sent, res.err = c.local(r)
			} else {
				res.sent, res.err = c.ask(node, r)
			}
			results <- res
		}()
	}
	sent := []string{}
	var errs []error
	for range targets {
		r := <-results
		sent = append(sent, r.sent...)
		if r.err != nil {
			errs = append(errs, r.err)
		}
	}
	slices.Sort(sent)
	return sent, errors.Join(errs...)
}

// owners splits ids by the node holding them; with no ids every node gets
// an empty list (all of its lamps).
func (c *Cluster) owners(ids []string) (map[string][]string, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string][]string{}
	if len(ids) == 0 {
		out[c.opt.Node] = nil
		for name := range c.peers {
			out[name] = nil
		}
		return out, nil
	}
	local := c.opt.Gateway.Devices()
	var unknown []string
	for _, id := range ids {
		found := false
		if slices.ContainsFunc(local, func(i device.Info) bool { return i.AnswersTo(id) }) {
			out[c.opt.Node] = append(out[c.opt.Node], id)
			found = true
		}
		for name, p := range c.peers {
			for _, i := range p.devices {
				if i.AnswersTo(id) {
					out[name] = append(out[name], id)
					found = true
					break
				}
			}
		}
		if !found {
			unknown = append(unknown, id)
		}
	}
	return out, unknown
}

// ask carries out req on node.
func (c *Cluster) ask(node string, req commandRequest) ([]string, error) {
	data, _ := json.Marshal(req)
	m, err := c.nc.Request(subject(node, "command"), data, c.opt.Timeout)
	if err != nil {
		return nil, &NodeError{Node: node, Err: err}
	}
	var reply commandReply
	if err := json.Unmarshal(m.Data, &reply); err != nil {
		return nil, &NodeError{Node: node, Err: err}
	}
	switch {
	case len(reply.Unknown) > 0:
		// It left that node since this one heard of it.
		return reply.SentTo, &device.UnknownDeviceError{IDs: reply.Unknown}
	case reply.Error != "":
		return reply.SentTo, fmt.Errorf("node %s: %s", node, reply.Error)
	}
	return reply.SentTo, nil
}

// Logs returns the newest limit debug lines of device (a connection id or
// name; "" for every lamp) from every node, oldest first: from this one,
// from the others that answer in time, and from what the rest (gone, or
// slow) last saved in Options.Records.
func (c *Cluster) Logs(dev string, limit int) []device.LogLine {
	out := c.opt.Gateway.Logs(dev, limit)
	c.mu.Lock()
	nodes := make([]string, 0, len(c.peers))
	for name := range c.peers {
		nodes = append(nodes, name)
	}
	c.mu.Unlock()
	data, _ := json.Marshal(logsRequest{Device: dev, Limit: limit})
	var mu sync.Mutex
	var wg sync.WaitGroup
	answered := []string{c.opt.Node}
	for _, node := range nodes {
		wg.Go(func() {
			m, err := c.nc.Request(subject(node, "logs"), data, c.opt.Timeout)
			if err != nil {
				c.log.Warn("cluster: a node did not send its debug log; reading its last save", "node", node, "err", err)
				return
			}
			var lines []device.LogLine
			if err := json.Unmarshal(m.Data, &lines); err != nil {
				return
			}
			mu.Lock()
			out = append(out, lines...)
			answered = append(answered, node)
			mu.Unlock()
		})
	}
	wg.Wait()
	if c.opt.Records != nil {
		stored, err := device.StoredLogs(c.opt.Records, answered, dev, limit)
		if err != nil {
			c.log.Warn("cluster: cannot read the debug logs other nodes saved", "err", err)
		}
		out = append(out, stored...)
	}
	slices.SortStableFunc(out, func(a, b device.LogLine) int { return a.Time.Compare(b.Time) })
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out
}

// Nodes lists the nodes this one knows: itself first, then the others by
// name.
func (c *Cluster) Nodes() []Node {
	now := time.Now().UTC()
	out := []Node{{Name: c.opt.Node, Self: true, Lamps: c.opt.Gateway.Connections(), StartedAt: c.started, HeardAt: now}}
	c.mu.Lock()
	for name, p := range c.peers {
		out = append(out, Node{Name: name, Lamps: len(p.devices), StartedAt: p.startedAt, HeardAt: p.heard.UTC()})
	}
	c.mu.Unlock()
	slices.SortFunc(out[1:], func(a, b Node) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Status is GET /api/cluster: this node, its NATS connection and every node
// it knows.
type Status struct {
	Node  string `json:"node"`
	NATS  string `json:"nats"` // "connected", "reconnecting", ...
	Nodes []Node `json:"nodes"`
}

// Status says where this node stands in the cluster.
func (c *Cluster) Status() Status {
	return Status{Node: c.opt.Node, NATS: strings.ToLower(c.nc.Status().String()), Nodes: c.Nodes()}
}
