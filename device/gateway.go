// Package device is the lamp gateway: it speaks docs/protocol.md to many
// lamps at once over WebSocket, keeps them alive, hands every display change
// to every lamp without letting a slow one hold up the others, and keeps a
// registry of who is connected for the API and UI.
package device

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/cloudcloud/cloudcloud/internal/backoff"
	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/realip"
	"github.com/cloudcloud/cloudcloud/internal/storage"
	"github.com/cloudcloud/cloudcloud/protocol"
)

// Options configures a Gateway; zero durations and sizes take the defaults
// of API.md.
type Options struct {
	Secret           string        // the shared lamp secret
	Named            []NamedSecret // secrets that give a lamp a name
	HandshakeTimeout time.Duration // 0: DefaultHandshakeTimeout, and so on
	PingInterval     time.Duration
	KeepaliveTimeout time.Duration
	WriteTimeout     time.Duration
	MaxFrameSize     int64
	MaxConnections   int // 0: unlimited
	SendQueue        int // commands waiting per lamp
	LogLines         int // debug log lines kept per lamp
	LogBytes         int // debug log bytes kept per lamp
	LogTotalBytes    int // debug log bytes kept for all lamps
	// LogSaveInterval is how often the debug log is saved when it changed;
	// a crash loses at most the lines of that long.
	LogSaveInterval time.Duration
	AuthBackoff     time.Duration
	AuthBackoffMax  time.Duration
	// MaxHandshakes bounds the connections one address may have open that
	// have not given the secret yet, so one address cannot take the
	// connection slots of others.
	MaxHandshakes int
	Proxies       realip.Resolver
	// Records is where the debug switches and the debug log are kept; nil
	// keeps them in memory.
	Records storage.Bucket
	Bus     events.Publisher
	// Node is this server's name in a cluster (cluster.node; empty for a
	// server of its own): device objects and log lines carry it, and it is
	// part of every connection id, so ids made by different nodes never
	// collide. Nodes sharing Records keep their own debug switches and
	// debug log, under DebugKey and LogKey followed by "/" and the name in
	// lower case ("debug-log/node-a").
	Node     string
	Logger   *slog.Logger
	noPoller bool // tests: use the fallback reader

	// OnLamp, if set, is told when a lamp's connection has authenticated
	// (and got its display packet) and when it ended; the lamp registry
	// keeps its lamps from it. It runs on the connection's goroutine and
	// must be quick.
	OnLamp func(LampSeen)

	// OnFanout, if set, is told how long each display change took to reach
	// every lamp (or be superseded there); for metrics and the load tool.
	OnFanout func(lamps int, d time.Duration)
}

// The defaults of Options, which are the defaults of the device.* settings
// too (PROTOCOL.md names the first three).
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultPingInterval     = 15 * time.Second
	DefaultKeepaliveTimeout = 45 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultMaxFrameSize     = 4 << 10
	DefaultSendQueue        = 64
	DefaultLogLines         = 1000
	DefaultLogBytes         = 256 << 10
	DefaultLogTotalBytes    = 4 << 20
	DefaultLogSaveInterval  = 2 * time.Second
	DefaultAuthBackoff      = time.Second
	DefaultAuthBackoffMax   = 30 * time.Second

	DefaultMaxHandshakesPerAddress = 4
)

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.HandshakeTimeout, DefaultHandshakeTimeout)
	def(&o.PingInterval, DefaultPingInterval)
	def(&o.KeepaliveTimeout, DefaultKeepaliveTimeout)
	def(&o.WriteTimeout, DefaultWriteTimeout)
	def(&o.AuthBackoff, DefaultAuthBackoff)
	def(&o.AuthBackoffMax, DefaultAuthBackoffMax)
	if o.MaxFrameSize <= 0 {
		o.MaxFrameSize = DefaultMaxFrameSize
	}
	if o.SendQueue <= 0 {
		o.SendQueue = DefaultSendQueue
	}
	if o.MaxHandshakes <= 0 {
		o.MaxHandshakes = DefaultMaxHandshakesPerAddress
	}
	if o.LogLines <= 0 {
		o.LogLines = DefaultLogLines
	}
	if o.LogBytes <= 0 {
		o.LogBytes = DefaultLogBytes
	}
	if o.LogTotalBytes <= 0 {
		o.LogTotalBytes = DefaultLogTotalBytes
	}
	def(&o.LogSaveInterval, DefaultLogSaveInterval)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Stats are the gateway's counters since start.
type Stats struct {
	Connections      atomic.Int64 // open WebSocket connections now
	Lamps            atomic.Int64 // authenticated lamps now
	HandshakesOK     atomic.Uint64
	HandshakesFailed atomic.Uint64
	Refused          atomic.Uint64 // connections refused: cap reached or shutting down
	Throttled        atomic.Uint64 // handshakes refused with 429: address in back-off or too many at once
	PacketsSent      atomic.Uint64
	PacketsReceived  atomic.Uint64
	Ignored          atomic.Uint64 // frames the protocol does not define
	SlowDropped      atomic.Uint64 // lamps dropped for a full queue or a write timeout
	SilentDropped    atomic.Uint64 // lamps dropped for no sign of life
}

// Gateway serves lamps. Create it with New and mount it as an http.Handler
// on the device port.
type Gateway struct {
	opt      Options
	log      *slog.Logger
	idPrefix string // of connection ids: "d-", or "d-<node>-" in a cluster
	secrets  secrets
	// refusals slows down repeated wrong secrets from one address. The
	// waiting costs the server nothing: a wrong secret is closed at once,
	// and the address's next attempts get 429 before any upgrade until its
	// back-off has passed.
	refusals *backoff.PerAddress
	// handshaking counts, per address, connections that have not given
	// the secret yet; see Options.MaxHandshakes.
	handshakeMu sync.Mutex
	handshaking map[string]int
	upgrader    websocket.Upgrader
	logs        *logBook
	hub         hub
	stats       Stats

	mu         sync.Mutex // guards conns, the debug switches and offline
	conns      map[string]*lamp
	debugAll   bool
	debugNames map[string]bool
	offline    map[string]Info // lamps that left, by Info.Lamp

	poller  *readPoller // nil: a reader goroutine per lamp
	writers *writerPool

	closing atomic.Bool
	done    chan struct{}
	savers  sync.WaitGroup // saveLogsLoop
	// logSaveFailing is owned by whoever runs saveLogs.
	logSaveFailing bool
	readers        sync.WaitGroup
	stopOnce       sync.Once
}

// Frames every lamp gets, encoded once.
var (
	okFrame   = textFrame(protocol.OK)
	pongFrame = textFrame(protocol.Pong)
)

// ErrNoSecret is returned by New when no lamp could ever authenticate.
var ErrNoSecret = errors.New("device: no lamp secret configured")

// New builds a gateway that shows initial until SetDisplay says otherwise.
func New(opt Options, initial protocol.Packet) (*Gateway, error) {
	opt.defaults()
	if opt.Secret == "" && len(opt.Named) == 0 {
		return nil, ErrNoSecret
	}
	if err := storage.CheckKey(opt.logKey()); opt.Node != "" && (err != nil || strings.Contains(opt.Node, "/")) {
		return nil, fmt.Errorf("device: node name %q must be letters, digits, '-' and '_'", opt.Node)
	}
	g := &Gateway{
		opt:         opt,
		log:         opt.Logger,
		secrets:     newSecrets(opt.Secret, opt.Named),
		refusals:    backoff.New(opt.AuthBackoff, opt.AuthBackoffMax, nil),
		logs:        newLogBook(opt.LogLines, opt.LogBytes, opt.LogTotalBytes, 256),
		conns:       make(map[string]*lamp),
		debugNames:  make(map[string]bool),
		offline:     make(map[string]Info),
		handshaking: make(map[string]int),
		done:        make(chan struct{}),
		idPrefix:    "d-",
		upgrader: websocket.Upgrader{
			// gorilla only does the upgrade: frames are read by frames.go
			// and written by writer.go, so its buffers serve the upgrade
			// alone, and with thousands of lamps every byte per connection
			// counts. The read buffer is the smallest it accepts; the write
			// buffer is pooled, held only while the upgrade answers.
			ReadBufferSize:  125,
			WriteBufferSize: 512,
			WriteBufferPool: &sync.Pool{},
			// Lamps send no Origin; the secret, not the origin, is the guard.
			CheckOrigin:      func(*http.Request) bool { return true },
			HandshakeTimeout: opt.HandshakeTimeout,
		},
	}
	if opt.Node != "" {
		g.idPrefix = "d-" + opt.Node + "-"
	}
	g.hub.init(textFrame(initial.Bytes()))
	g.writers = newWriterPool()
	for range runtime.GOMAXPROCS(0) {
		go g.writeLoop()
	}
	if !opt.noPoller {
		var err error
		if g.poller, err = newReadPoller(g); err != nil {
			g.log.Warn("no epoll; every lamp gets a reader goroutine", "err", err)
		}
	}
	if err := g.loadDebug(); err != nil {
		return nil, err
	}
	if err := g.loadLogs(); err != nil {
		return nil, err
	}
	if opt.Records != nil {
		g.savers.Go(g.saveLogsLoop)
	}
	go g.pinger()
	return g, nil
}

// ServeHTTP upgrades any path to a lamp WebSocket (PROTOCOL.md: any path).
// A plain browser visit gets a sentence instead of a protocol error.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		http.Error(w, "This is the cloudcloud lamp port: point lamps here (ws://host:port/). The web UI is on the web port.", http.StatusBadRequest)
		return
	}
	if g.closing.Load() {
		g.stats.Refused.Add(1)
		http.Error(w, "server is shutting down; reconnect later", http.StatusServiceUnavailable)
		return
	}
	remote := g.opt.Proxies.ClientAddr(r)
	ip := realip.IP(remote)
	if d := g.refusals.Wait(ip); d > 0 {
		g.stats.Throttled.Add(1)
		tooMany(w, d, "wrong secrets from your address; try again later")
		return
	}
	if !g.startHandshake(ip) {
		g.stats.Throttled.Add(1)
		tooMany(w, time.Second, fmt.Sprintf("more than %d connections from your address are waiting to give the secret", g.opt.MaxHandshakes))
		return
	}
	// The slot is given back once: when the secret is accepted (an
	// authenticated lamp no longer waits to give it), or when the
	// connection ends first.
	freeSlot := sync.OnceFunc(func() { g.endHandshake(ip) })
	defer freeSlot()
	if n := g.stats.Connections.Add(1); g.opt.MaxConnections > 0 && n > int64(g.opt.MaxConnections) {
		g.stats.Connections.Add(-1)
		g.stats.Refused.Add(1)
		g.log.Warn("lamp connection refused: device.max_connections reached", "max", g.opt.MaxConnections)
		http.Error(w, "too many lamps connected; raise device.max_connections", http.StatusServiceUnavailable)
		return
	}
	conn, err := g.upgrader.Upgrade(w, r, nil)
	if err != nil {
		g.stats.Connections.Add(-1)
		g.log.Debug("lamp upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	// From here on gorilla's Conn is not used: frames are read by frames.go
	// and written by writer.go. The handshake owns the write side until it
	// is done (flushing set), so "ok" goes out before anything queued.
	raw := conn.UnderlyingConn()
	// The HTTP server's deadlines stay on a hijacked connection; from here
	// on the gateway sets its own.
	_ = raw.SetDeadline(time.Time{})
	l := &lamp{gw: g, raw: raw, remote: remote, connectedAt: time.Now().UTC(), hubIndex: -1, flushing: true}
	params := ParseLampParams(r.URL.RawQuery)
	for _, p := range params.Ignored {
		g.log.Info("lamp URL parameter ignored", "remote", remote, "reason", p)
	}
	id := params.Lamp
	if id == "" {
		id = ip
	}
	l.lampID.Store(&id)
	l.askedID = params.Lamp != ""
	l.firmware = params.Firmware
	if sc, ok := raw.(syscall.Conn); ok {
		l.rc, _ = sc.SyscallConn()
	}
	l.lastSeen.Store(l.connectedAt.UnixNano())
	if !g.register(l) {
		_ = raw.Close()
		g.stats.Connections.Add(-1)
		g.stats.Refused.Add(1)
		return
	}
	// The handshake runs here, on the handler's already grown stack; the
	// lamp's long-lived reader then starts on a fresh, small one. With
	// thousands of idle lamps, that stack is most of what a lamp costs.
	reason := l.handshake(freeSlot)
	freeSlot()
	if reason != "" {
		l.end(0, "", reason)
		return
	}
	g.startReading(l)
}

// tooMany refuses a handshake before the upgrade, which costs the server
// nothing while the client waits; the connection is not kept alive.
func tooMany(w http.ResponseWriter, retry time.Duration, why string) {
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retry.Seconds()))))
	w.Header().Set("Connection", "close")
	http.Error(w, why, http.StatusTooManyRequests)
}

// startHandshake reserves one of ip's handshake slots; it reports false
// when ip has Options.MaxHandshakes connections without a secret already.
func (g *Gateway) startHandshake(ip string) bool {
	g.handshakeMu.Lock()
	defer g.handshakeMu.Unlock()
	if g.handshaking[ip] >= g.opt.MaxHandshakes {
		return false
	}
	g.handshaking[ip]++
	return true
}

func (g *Gateway) endHandshake(ip string) {
	g.handshakeMu.Lock()
	defer g.handshakeMu.Unlock()
	if g.handshaking[ip]--; g.handshaking[ip] <= 0 {
		delete(g.handshaking, ip)
	}
}

// register gives l a unique id and makes it visible in the registry.
// It reports false, registering nothing, once Shutdown has begun: the
// check and readers.Add are under g.mu, which Shutdown takes after setting
// closing, so no Add can race with its Wait.
func (g *Gateway) register(l *lamp) bool {
	var b [3]byte
	g.mu.Lock()
	if g.closing.Load() {
		g.mu.Unlock()
		return false
	}
	g.readers.Add(1)
	for {
		_, _ = rand.Read(b[:])
		id := g.idPrefix + hex.EncodeToString(b[:])
		if _, taken := g.conns[id]; !taken {
			l.id = id
			g.conns[id] = l
			break
		}
	}
	g.mu.Unlock()
	g.publishDevice(l, EventConnected)
	return true
}

// forget removes an ended lamp from the gateway; see lamp.end.
func (g *Gateway) forget(l *lamp, why string) {
	defer g.readers.Done()
	g.hub.remove(l)
	g.stopReading(l)
	g.mu.Lock()
	delete(g.conns, l.id)
	g.mu.Unlock()
	g.stats.Connections.Add(-1)
	if stage(l.phase.Load()) != stageConnected {
		g.stats.Lamps.Add(-1)
	}
	g.log.Info("lamp disconnected", "lamp", l.id, "name", l.Name(), "remote", l.remote, "reason", why)
	i := g.info(l, g.debugFor(l))
	if i.Authenticated && g.opt.OnLamp != nil {
		g.opt.OnLamp(LampSeen{Lamp: i.LampID, Addr: realip.IP(l.remote), FirmwareVersion: l.firmware, Online: false, Time: time.Now().UTC()})
	}
	if i.Authenticated {
		// Remember the lamp that left, so a person sees it offline and why,
		// until it comes back.
		now := time.Now().UTC()
		i.Phase, i.DisconnectedAt, i.Reason = PhaseOffline, &now, why
		g.mu.Lock()
		g.offline[i.Lamp()] = i
		if len(g.offline) > maxOffline {
			g.evictOffline()
		}
		g.mu.Unlock()
	}
	if g.opt.Bus != nil {
		i.Event = EventDisconnected
		i.Reason = why
		g.opt.Bus.Publish(events.Event{Type: events.TypeDevice, Data: i})
	}
}

// maxOffline bounds how many departed lamps are remembered.
const maxOffline = 64

// evictOffline forgets the lamp that left longest ago; g.mu is held.
func (g *Gateway) evictOffline() {
	var oldest string
	for k, i := range g.offline {
		if oldest == "" || i.DisconnectedAt.Before(*g.offline[oldest].DisconnectedAt) {
			oldest = k
		}
	}
	delete(g.offline, oldest)
}

// Offline lists lamps that were connected and left (and have not come back
// since), most recently gone first; named lamps by name, others by address.
func (g *Gateway) Offline() []Info {
	g.mu.Lock()
	out := make([]Info, 0, len(g.offline))
	for _, i := range g.offline {
		out = append(out, i)
	}
	g.mu.Unlock()
	slices.SortFunc(out, func(a, b Info) int { return b.DisconnectedAt.Compare(*a.DisconnectedAt) })
	return out
}

// handshake reads the secret and answers "ok"; it returns "" on success or
// why the lamp was refused. freeSlot gives back the address's handshake
// slot, which it does as soon as the secret is accepted.
func (l *lamp) handshake(freeSlot func()) string {
	g := l.gw
	// A refused lamp is closed at once: its address's back-off is enforced
	// at its next upgrade (see ServeHTTP), not by holding this connection.
	refuse := func(code int, why string) string {
		g.stats.HandshakesFailed.Add(1)
		g.log.Warn("lamp refused", "remote", l.remote, "reason", why)
		l.release()
		l.end(code, why, why)
		return why
	}
	_ = l.raw.SetReadDeadline(time.Now().Add(g.opt.HandshakeTimeout))
	op, secret, err := l.readMessage()
	switch {
	case err != nil && isTimeout(err):
		return refuse(websocket.ClosePolicyViolation, fmt.Sprintf("no secret within %s", g.opt.HandshakeTimeout))
	case err != nil:
		g.stats.HandshakesFailed.Add(1)
		l.release() // so that the close frame readError asks for goes out
		return l.readError(err)
	case op != opText:
		return refuse(websocket.ClosePolicyViolation, "the first frame must be the secret as text")
	case !utf8.Valid(secret):
		g.refusals.Fail(realip.IP(l.remote))
		return refuse(websocket.CloseInvalidFramePayloadData, "the secret is not valid UTF-8")
	}
	name, ok := g.secrets.match(secret)
	ip := realip.IP(l.remote)
	if !ok {
		g.refusals.Fail(ip)
		return refuse(websocket.ClosePolicyViolation, "wrong secret")
	}
	g.refusals.Succeed(ip)
	freeSlot() // before "ok": a lamp that has it waits for nothing
	if name != "" {
		l.name.Store(&name)
		l.lampID.Store(&name)
	}
	if err := l.writeNow(okFrame); err != nil {
		g.stats.HandshakesFailed.Add(1)
		return "could not answer ok: " + err.Error()
	}
	l.release()
	l.sent.Add(1)
	l.lastSeen.Store(time.Now().UnixNano())
	l.phase.Store(int32(stageAuthenticated))
	g.stats.HandshakesOK.Add(1)
	g.stats.Lamps.Add(1)
	g.log.Info("lamp authenticated", "lamp", l.id, "name", name, "id", l.LampID(), "firmware", l.firmware, "remote", l.remote)
	g.mu.Lock()
	delete(g.offline, l.LampID())
	g.mu.Unlock()
	g.publishDevice(l, EventAuthenticated)
	// Joining the hub queues the current display packet (the lamp's own, or
	// the shared one) atomically with respect to changes: none can slip
	// between "current" and "next".
	g.hub.add(l, g.debugFor(l))
	if g.opt.OnLamp != nil {
		g.opt.OnLamp(LampSeen{Lamp: l.LampID(), Addr: realip.IP(l.remote), FirmwareVersion: l.firmware, Online: true, Time: time.Now().UTC()})
	}
	return ""
}

// pinger asks every lamp for a sign of life each ping interval and, when
// lamps are read through the poller, drops the silent ones.
func (g *Gateway) pinger() {
	ping := time.NewTicker(g.opt.PingInterval)
	defer ping.Stop()
	sweep := time.NewTicker(min(max(g.opt.KeepaliveTimeout/8, 10*time.Millisecond), time.Second))
	defer sweep.Stop()
	for {
		select {
		case <-g.done:
			return
		case <-ping.C:
			g.hub.each(func(l *lamp) { l.requestPing() })
		case now := <-sweep.C:
			if g.poller != nil {
				g.sweepSilent(now)
			}
		}
	}
}

// startReading hands an authenticated lamp to the poller, or gives it a
// reader goroutine where there is no poller.
func (g *Gateway) startReading(l *lamp) {
	if g.poller != nil {
		err := g.poller.add(l)
		if err == nil {
			return
		}
		g.log.Warn("could not watch a lamp with epoll; reading it with a goroutine", "lamp", l.id, "err", err)
	}
	go l.readLoop()
}

func (g *Gateway) stopReading(l *lamp) {
	if g.poller != nil {
		g.poller.remove(l)
	}
}

// SetDisplay sends p to every lamp and makes it what newly connecting lamps
// get. Only the newest display packet matters: a lamp that has not written
// the previous one yet skips it.
func (g *Gateway) SetDisplay(p protocol.Packet) error {
	if !p.Kind.IsDisplay() {
		return fmt.Errorf("device: %s is a command, not a display packet", p)
	}
	g.hub.setDisplay(textFrame(p.Bytes()), g.opt.OnFanout)
	return nil
}

// SetLampDisplay gives lamp id a display packet of its own, sent to its
// connections only (now, and whenever it connects), until FollowShared.
func (g *Gateway) SetLampDisplay(id string, p protocol.Packet) error {
	if !p.Kind.IsDisplay() {
		return fmt.Errorf("device: %s is a command, not a display packet", p)
	}
	g.hub.setOwn(id, textFrame(p.Bytes()), g.opt.OnFanout)
	return nil
}

// FollowShared makes lamp id show the shared display packet again; with no
// ids, every lamp.
func (g *Gateway) FollowShared(ids ...string) {
	if len(ids) == 0 {
		g.hub.followAll()
		return
	}
	for _, id := range ids {
		g.hub.setOwn(id, nil, nil)
	}
}

// LampDevices lists the connections of lamp id that have authenticated.
func (g *Gateway) LampDevices(id string) []Info {
	conns := g.hub.connsOf(id)
	out := make([]Info, 0, len(conns))
	for _, l := range conns {
		out = append(out, g.info(l, g.debugFor(l)))
	}
	slices.SortFunc(out, func(a, b Info) int { return a.ConnectedAt.Compare(b.ConnectedAt) })
	return out
}

// UnknownDeviceError names lamps a command was meant for that are not connected.
type UnknownDeviceError struct{ IDs []string }

func (e *UnknownDeviceError) Error() string {
	return fmt.Sprintf("no connected lamp with id or name %s; nothing was sent", strings.Join(quoteAll(e.IDs), ", "))
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = fmt.Sprintf("%q", v)
	}
	return out
}

// targets resolves ids (or names) to authenticated lamps; none means all.
func (g *Gateway) targets(ids []string) ([]*lamp, error) {
	all := g.hub.snapshot()
	if len(ids) == 0 {
		return all, nil
	}
	var out []*lamp
	var unknown []string
	for _, id := range ids {
		found := false
		for _, l := range all {
			if answersTo(id, l.id, l.Name(), l.LampID()) {
				if !slices.Contains(out, l) {
					out = append(out, l)
				}
				found = true
			}
		}
		if !found {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) > 0 {
		return nil, &UnknownDeviceError{IDs: unknown}
	}
	return out, nil
}

// Command sends reset or update to the chosen lamps (ids or names; none
// means every lamp) and returns the ids it was sent to. An unknown id sends
// nothing and returns *UnknownDeviceError.
func (g *Gateway) Command(p protocol.Packet, ids []string) ([]string, error) {
	if p.Kind.IsDisplay() || p.Kind == protocol.KindDebug {
		return nil, fmt.Errorf("device: %s is not a lamp command; use SetDisplay or SetDebug", p.Kind)
	}
	lamps, err := g.targets(ids)
	if err != nil {
		return nil, err
	}
	return g.send(lamps, command{frame: textFrame(p.Bytes()), kind: p.Kind}), nil
}

// send queues c for lamps, dropping any lamp whose queue is full.
func (g *Gateway) send(lamps []*lamp, c command) []string {
	sent := make([]string, 0, len(lamps))
	for _, l := range lamps {
		if l.enqueueCommand(c) {
			sent = append(sent, l.id)
			continue
		}
		g.stats.SlowDropped.Add(1)
		l.end(0, "", fmt.Sprintf("send queue full (%d commands waiting); too slow", g.opt.SendQueue))
	}
	return sent
}

// SetDebug switches debug logging on or off for the chosen lamps, or for all
// lamps (now and later) when ids is empty. A lamp with a named secret or a
// ?lamp= id keeps its switch across reconnects; one known only by its
// address, for this connection only.
func (g *Gateway) SetDebug(on bool, ids []string) ([]string, error) {
	lamps, err := g.targets(ids)
	if err != nil {
		return nil, err
	}
	// The switches on disk change first; only then the ones in memory, so a
	// failed save (a full or read-only disk) leaves no trace anywhere.
	g.mu.Lock()
	all, names := g.debugAll, maps.Clone(g.debugNames)
	if len(ids) == 0 {
		all = on
		clear(names)
	}
	for _, l := range lamps {
		if key := l.debugKey(); len(ids) > 0 && key != "" {
			names[key] = on
		}
	}
	if err := g.saveDebug(all, names); err != nil {
		g.mu.Unlock()
		return nil, err
	}
	g.debugAll, g.debugNames = all, names
	for _, l := range lamps {
		if len(ids) == 0 {
			l.debugSet = false
		} else if l.debugKey() == "" {
			l.debugSet, l.debugOn = true, on
		}
	}
	g.mu.Unlock()
	sent := g.send(lamps, command{frame: textFrame(protocol.Debug(on).Bytes()), kind: protocol.KindDebug})
	for _, l := range lamps {
		g.publishDevice(l, EventDebug)
	}
	return sent, nil
}

// RememberDebug keeps the debug switch of the lamps named by keys (their
// names or ?lamp= ids) for when they connect here, without sending
// anything: in a cluster the switch is set on the node holding a lamp, and
// the others remember it, so a lamp that moves keeps it. Like SetDebug, it
// changes nothing when the switches cannot be saved.
func (g *Gateway) RememberDebug(on bool, keys []string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	names := maps.Clone(g.debugNames)
	for _, k := range keys {
		if k != "" {
			names[k] = on
		}
	}
	if err := g.saveDebug(g.debugAll, names); err != nil {
		return err
	}
	g.debugNames = names
	return nil
}

// debugFor says whether debug logging is on for l.
func (g *Gateway) debugFor(l *lamp) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.debugLocked(l)
}

func (g *Gateway) debugLocked(l *lamp) bool {
	if l.debugSet {
		return l.debugOn
	}
	if on, ok := g.debugNames[l.debugKey()]; ok && l.debugKey() != "" {
		return on
	}
	return g.debugAll
}

type debugFile struct {
	All   bool            `json:"all"`
	Names map[string]bool `json:"names"`
}

// DebugKey is the debug switches' record in the storage bucket (debug.json
// in the data directory); a node of a cluster adds its name (nodeKey).
const DebugKey = "debug"

func (o *Options) debugKey() string { return nodeKey(DebugKey, o.Node) }
func (o *Options) logKey() string   { return nodeKey(LogKey, o.Node) }

// nodeKey is the record key of node's own copy of key: key itself for a
// server of its own.
func nodeKey(key, node string) string {
	if node == "" {
		return key
	}
	return key + "/" + strings.ToLower(node)
}

func (g *Gateway) loadDebug() error {
	if g.opt.Records == nil {
		return nil
	}
	var f debugFile
	revision, _, err := storage.LoadJSON(g.opt.Records, g.opt.debugKey(), &f, nil, g.log, "debug switches")
	if err == nil && g.opt.Node != "" {
		g.newerDebug(&f, revision)
	}
	g.debugAll = f.All
	for k, v := range f.Names {
		g.debugNames[k] = v
	}
	return err
}

// newerDebug replaces f, this node's switches saved at revision, with
// those another node of the cluster saved later, if one did. Every node
// saves every switch (SetDebug on the node holding a lamp, RememberDebug on
// the others), so the record written last is the cluster's; a node that
// was away or is new missed the changes made meanwhile. Revisions of the
// shared JetStream bucket are its stream's sequence, so they order the
// writes of every key.
func (g *Gateway) newerDebug(f *debugFile, revision uint64) {
	keys, err := g.opt.Records.Keys(DebugKey + "/")
	if err != nil {
		g.log.Warn("cannot read the other nodes' debug switches; starting from this node's", "err", err)
		return
	}
	for _, key := range keys {
		e, err := g.opt.Records.Get(key)
		if err != nil || e.Revision <= revision || key == g.opt.debugKey() {
			continue
		}
		var other debugFile
		if json.Unmarshal(e.Value, &other) == nil {
			*f, revision = other, e.Revision
		}
	}
}

// saveDebug persists the debug switches; g.mu is held.
func (g *Gateway) saveDebug(all bool, names map[string]bool) error {
	if g.opt.Records == nil {
		return nil
	}
	if _, err := storage.PutJSON(g.opt.Records, g.opt.debugKey(), debugFile{All: all, Names: names}); err != nil {
		return fmt.Errorf("save debug switches (nothing was changed): %w", err)
	}
	return nil
}

func (g *Gateway) addLog(l *lamp, msg string) {
	// A lamp with a name or a ?lamp= id keeps one ring across reconnects;
	// one known only by its address, which others may share, one per
	// connection.
	key := cmp.Or(l.debugKey(), l.id)
	line, live := g.logs.add(key, LogLine{Time: time.Now().UTC(), Device: l.id, Name: l.Name(), Lamp: l.LampID(), Message: msg, Node: g.opt.Node})
	if live && g.opt.Bus != nil {
		g.opt.Bus.Publish(events.Event{Type: events.TypeLog, Time: line.Time, Data: line})
	}
}

// LogKey is the debug log's record in the storage bucket (debug-log.json
// in the data directory); a node of a cluster adds its name (nodeKey).
const LogKey = "debug-log"

// loadLogs reads the debug log saved before the last stop. A record that
// does not decode is set aside and the log starts empty.
func (g *Gateway) loadLogs() error {
	if g.opt.Records == nil {
		return nil
	}
	var f logFile
	_, found, err := storage.LoadJSON(g.opt.Records, g.opt.logKey(), &f, nil, g.log, "debug log")
	if found {
		g.logs.load(f)
	}
	return err
}

// saveLogsLoop writes the debug log to disk every LogSaveInterval when it
// changed; Shutdown saves it once more when the lamps are gone. A whole
// snapshot, written atomically, is at most LogTotalBytes and needs no
// recovery rule: the file is the old snapshot or the new one.
func (g *Gateway) saveLogsLoop() {
	t := time.NewTicker(g.opt.LogSaveInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			g.saveLogs()
		case <-g.done:
			return
		}
	}
}

// saveLogs writes the debug log if it changed; a failure is logged once
// until a save succeeds again. Only saveLogsLoop and, after it ended,
// Shutdown call it.
func (g *Gateway) saveLogs() {
	if g.opt.Records == nil {
		return
	}
	f, changed := g.logs.snapshot()
	if !changed {
		return
	}
	_, err := storage.PutJSON(g.opt.Records, g.opt.logKey(), f)
	switch {
	case err != nil:
		g.logs.markDirty()
		if !g.logSaveFailing {
			g.log.Error("cannot save the debug log; retrying", "err", err)
		}
	case g.logSaveFailing:
		g.log.Info("debug log saved again")
	}
	g.logSaveFailing = err != nil
}

// Logs returns up to limit debug lines, newest last, of the connection
// with that id or the lamp with that name or lamp id, or of every lamp when
// device is "".
func (g *Gateway) Logs(device string, limit int) []LogLine {
	return g.logs.query(logsOf(device), limit)
}

// logsOf matches the lines of the connection with that id, or of the
// lamp with that name or lamp id; nil, every line, for "".
func logsOf(device string) func(LogLine) bool {
	if device == "" {
		return nil
	}
	return func(l LogLine) bool { return l.Device == device || l.Name == device || l.Lamp == device }
}

// StoredLogs returns up to limit debug lines (no limit when 0), newest
// last, matched as Logs matches them (every lamp for "") from the logs
// the nodes of a cluster saved in records, except those of the nodes named
// in skip. A node that is gone, or does not answer, is read from its last
// save (every Options.LogSaveInterval), so what its lamps said is not lost
// with it.
func StoredLogs(records storage.Bucket, skip []string, device string, limit int) ([]LogLine, error) {
	keys, err := records.Keys(LogKey + "/")
	if err != nil {
		return nil, err
	}
	match := logsOf(device)
	out := []LogLine{}
	for _, key := range keys {
		if slices.ContainsFunc(skip, func(node string) bool { return nodeKey(LogKey, node) == key }) {
			continue
		}
		e, err := records.Get(key)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var f logFile
		if json.Unmarshal(e.Value, &f) != nil {
			continue // its node sets it aside when it starts
		}
		for _, lines := range f.Lamps {
			for _, l := range lines {
				if match == nil || match(l) {
					out = append(out, l)
				}
			}
		}
	}
	slices.SortStableFunc(out, func(a, b LogLine) int { return a.Time.Compare(b.Time) })
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, nil
}

// Info is a lamp as the API shows it (API.md, "A device object").
type Info struct {
	ID              string    `json:"id"`
	Name            string    `json:"name"`
	RemoteAddr      string    `json:"remote_addr"`
	ConnectedAt     time.Time `json:"connected_at"`
	LastSeen        time.Time `json:"last_seen"`
	Authenticated   bool      `json:"authenticated"`
	Synchronized    bool      `json:"synchronized"`
	Debug           bool      `json:"debug"`
	PacketsSent     uint64    `json:"packets_sent"`
	PacketsReceived uint64    `json:"packets_received"`
	// LampID is the lamp the connection belongs to (API.md "Lamps").
	LampID string `json:"lamp"`
	// FirmwareVersion is what the lamp said it runs (?fw=), when it did.
	FirmwareVersion string `json:"firmware_version,omitempty"`
	Phase           Phase  `json:"phase"`
	Event           Event  `json:"event,omitempty"` // in a device event: what just happened
	// For a lamp that left: when and why.
	DisconnectedAt *time.Time `json:"disconnected_at,omitempty"`
	Reason         string     `json:"reason,omitempty"`
	// Node is the cluster node that holds the connection (CLUSTER.md);
	// empty on a server of its own.
	Node string `json:"node,omitempty"`
}

// Lamp is how a lamp is recognised across reconnects, when its connection
// id changes: its id (API.md "Lamps"), or for an Info made without one,
// its name, else its address without the port.
func (i Info) Lamp() string {
	switch {
	case i.LampID != "":
		return i.LampID
	case i.Name != "":
		return i.Name
	}
	return realip.IP(i.RemoteAddr)
}

// AnswersTo says whether a command naming id (Command, SetDebug) means
// this connection: its id, its name or its lamp's id.
func (i Info) AnswersTo(id string) bool { return answersTo(id, i.ID, i.Name, i.LampID) }

// answersTo is the one rule of AnswersTo, for connections and device
// objects alike.
func answersTo(id, conn, name, lamp string) bool {
	return id == conn || id != "" && (id == name || id == lamp)
}

// LampSeen tells the lamp registry (Options.OnLamp) that a lamp's
// connection came or went.
type LampSeen struct {
	Lamp            string // its id (API.md "Lamps")
	Addr            string // its IP address
	FirmwareVersion string // from ?fw=; "" when it sent none
	Online          bool   // false: this connection ended
	Time            time.Time
}

func (g *Gateway) info(l *lamp, debug bool) Info {
	phase := stage(l.phase.Load())
	return Info{
		ID: l.id, Name: l.Name(), RemoteAddr: l.remote,
		ConnectedAt:     l.connectedAt,
		LastSeen:        time.Unix(0, l.lastSeen.Load()).UTC(),
		Authenticated:   phase >= stageAuthenticated,
		Synchronized:    phase >= stageSynchronized && l.synced.Load() == g.wantGen(l),
		Debug:           debug,
		PacketsSent:     l.sent.Load(),
		PacketsReceived: l.received.Load(),
		Phase:           phase.phase(),
		LampID:          l.LampID(),
		FirmwareVersion: l.firmware,
		Node:            g.opt.Node,
	}
}

// wantGen is the generation of the display packet l should have written:
// its lamp's own, else the shared one.
func (g *Gateway) wantGen(l *lamp) uint64 {
	if gen := l.ownGen.Load(); gen != 0 {
		return gen
	}
	return g.hub.gen.Load()
}

// Connections counts the open lamp connections: len(Devices()), without
// making the list.
func (g *Gateway) Connections() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}

// Devices lists every open lamp connection, oldest first.
func (g *Gateway) Devices() []Info {
	g.mu.Lock()
	out := make([]Info, 0, len(g.conns))
	for _, l := range g.conns {
		out = append(out, g.info(l, g.debugLocked(l)))
	}
	g.mu.Unlock()
	slices.SortFunc(out, func(a, b Info) int {
		if c := a.ConnectedAt.Compare(b.ConnectedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Stats returns the live counters.
func (g *Gateway) Stats() *Stats { return &g.stats }

func (g *Gateway) publishDevice(l *lamp, event Event) {
	if g.opt.Bus == nil {
		return
	}
	i := g.info(l, g.debugFor(l))
	i.Event = event
	g.opt.Bus.Publish(events.Event{Type: events.TypeDevice, Data: i})
}

// Shutdown refuses new lamps, sends every lamp a close frame with code 1001
// (going away) so it reconnects later, and waits for the connections to end
// or ctx to expire.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.closing.Store(true)
	g.stopOnce.Do(func() { close(g.done) })
	g.mu.Lock()
	all := make([]*lamp, 0, len(g.conns))
	for _, l := range g.conns {
		all = append(all, l)
	}
	g.mu.Unlock()
	for _, l := range all {
		l.end(websocket.CloseGoingAway, "server shutting down", "server shutting down")
	}
	finished := make(chan struct{})
	go func() {
		g.readers.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		g.writers.close()
		g.savers.Wait()
		g.saveLogs()
		return nil
	case <-ctx.Done():
		g.savers.Wait()
		g.saveLogs()
		return fmt.Errorf("device: shutdown: %w", ctx.Err())
	}
}
