package device

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cloudcloud/cloudcloud/protocol"
)

// Phase is where a lamp stands, as the API shows it (Info.Phase).
type Phase string

// The phases of API.md ("A device object").
const (
	PhaseConnected     Phase = "connected"     // WebSocket open, no secret yet
	PhaseAuthenticated Phase = "authenticated" // secret accepted, "ok" sent
	PhaseSynchronized  Phase = "synchronized"  // the current display packet was written
	PhaseUpdating      Phase = "updating"      // told to flash new firmware, until it comes back
	PhaseOffline       Phase = "offline"       // the lamp left (Gateway.Offline)
)

// Event says what just happened to a lamp, in the device events the
// gateway publishes (Info.Event).
type Event string

// The device events.
const (
	EventConnected     Event = "connected"
	EventAuthenticated Event = "authenticated"
	EventSynchronized  Event = "synchronized"
	EventUpdating      Event = "updating"
	EventDebug         Event = "debug" // its debug switch changed
	EventDisconnected  Event = "disconnected"
)

// stage is a connection's phase as it keeps it: a number, so that it moves
// forward with one atomic store and "authenticated or later" is one
// comparison. Only a reconnect starts over.
type stage int32

const (
	stageConnected stage = iota
	stageAuthenticated
	stageSynchronized
	stageUpdating
)

func (s stage) phase() Phase {
	return [...]Phase{PhaseConnected, PhaseAuthenticated, PhaseSynchronized, PhaseUpdating}[s]
}

// broadcast is one display packet on its way to every lamp. Its WebSocket
// frame is encoded once and shared: queueing it for a lamp allocates
// nothing. remaining counts the lamps that have neither written it nor moved
// past it, so the fan-out time (the change has reached every lamp, or a
// newer one has) is measured with one atomic decrement per lamp.
type broadcast struct {
	frame     []byte
	gen       uint64
	start     time.Time
	remaining atomic.Int64
	observe   func(lamps int, d time.Duration)
	lamps     int
}

func (b *broadcast) settle() {
	if b.remaining.Add(-1) == 0 && b.observe != nil {
		b.observe(b.lamps, time.Since(b.start))
	}
}

// command is a queued text frame that is not a display packet.
type command struct {
	frame []byte
	kind  protocol.Kind // 0 for a "pong" reply
}

// lamp is one connection. Reads happen on the poller's short-lived
// goroutines (or one reader goroutine, see reader.go); writes go through a
// small queue drained by the gateway's writers (writer.go), so an idle lamp
// costs no goroutine at all.
type lamp struct {
	gw          *Gateway
	raw         net.Conn
	rc          syscall.RawConn // for epoll and non-blocking writes; nil if unavailable
	id          string
	remote      string
	connectedAt time.Time

	name atomic.Pointer[string] // set once at authentication
	// lampID is the lamp this connection belongs to (API.md "Lamps"): the
	// ?lamp= parameter or the address from the upgrade on, the named
	// secret's name once authenticated.
	lampID   atomic.Pointer[string]
	firmware string // the ?fw= parameter, "" when none was sent
	askedID  bool   // it connected with a usable ?lamp=
	phase    atomic.Int32
	lastSeen atomic.Int64 // unix nanoseconds
	sent     atomic.Uint64
	received atomic.Uint64
	synced   atomic.Uint64 // gen of the last display packet written

	asm   assembler // fragments of a message being received
	token uint32    // the lamp's key in the poller

	debugSet bool // guarded by gw.mu: a per-connection debug choice (anonymous lamps)
	debugOn  bool

	hubIndex  int           // guarded by hub.mu; -1 when not in the hub
	lampIndex int           // guarded by hub.mu: its place among its lamp's connections
	own       bool          // guarded by hub.mu: shows its lamp's own packet, not the shared one
	ownGen    atomic.Uint64 // generation of its own packet; 0 while it follows the shared one

	mu         sync.Mutex
	display    *broadcast // newest display packet not yet written
	cmds       []command
	pong       []byte // payload of the newest ping to answer (RFC 6455: the newest is enough)
	pongDue    bool
	ping       bool
	flushing   bool   // a writer owns the connection's write side
	closed     bool   // no more queueing
	closeFrame []byte // written last, when the lamp is ended with a code
	whyClosed  atomic.Pointer[string]
	gone       sync.Once
}

func (l *lamp) Name() string {
	if p := l.name.Load(); p != nil {
		return *p
	}
	return ""
}

// LampID is the id of the lamp this connection belongs to.
func (l *lamp) LampID() string {
	if p := l.lampID.Load(); p != nil {
		return *p
	}
	return ""
}

// debugKey is what its debug switch is kept under across reconnects: its
// name or ?lamp= id; "" for a lamp known only by its address, which may be
// shared with others.
func (l *lamp) debugKey() string {
	if n := l.Name(); n != "" {
		return n
	}
	if l.askedID {
		return l.LampID()
	}
	return ""
}

// schedule hands l to a writer unless one owns it already; l.mu is held.
func (l *lamp) schedule() {
	if !l.flushing {
		l.flushing = true
		l.gw.writers.push(l)
	}
}

// enqueueDisplay makes b the next display packet, superseding any older one
// not yet written. It reports false if the lamp is closed.
func (l *lamp) enqueueDisplay(b *broadcast) bool {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false
	}
	old := l.display
	l.display = b
	l.schedule()
	l.mu.Unlock()
	if old != nil {
		old.settle()
	}
	return true
}

// enqueueCommand queues a command; commands are never skipped. It reports
// false when the lamp is closed or its queue is full (the caller drops it).
func (l *lamp) enqueueCommand(c command) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || len(l.cmds) >= l.gw.opt.SendQueue {
		return false
	}
	l.cmds = append(l.cmds, c)
	l.schedule()
	return true
}

// enqueuePong answers a ping control frame with a pong with its payload.
func (l *lamp) enqueuePong(payload []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.pong, l.pongDue = payload, true
	l.schedule()
}

// requestPing asks for a ping control frame.
func (l *lamp) requestPing() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.ping {
		return
	}
	l.ping = true
	l.schedule()
}

// end closes the connection, with a close frame when code is not 0, and
// removes the lamp from the gateway, logging why. It is safe to call more
// than once and from any goroutine; the first call wins. A close frame goes
// out through the writer, after anything it is writing now; a lamp whose
// writer is stuck is dropped after a second without one.
func (l *lamp) end(code int, text, why string) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	d := l.display
	l.display, l.cmds, l.ping, l.pongDue = nil, nil, false, false
	if code == 0 {
		l.mu.Unlock()
		if d != nil {
			d.settle()
		}
		l.drop(why)
		return
	}
	l.whyClosed.Store(&why)
	l.closeFrame = closeFrame(code, text)
	l.schedule()
	l.mu.Unlock()
	if d != nil {
		d.settle()
	}
	time.AfterFunc(time.Second, func() { l.drop(why) })
}

// drop closes the TCP connection and forgets the lamp, once.
func (l *lamp) drop(why string) {
	l.gone.Do(func() {
		_ = l.raw.Close()
		if p := l.whyClosed.Load(); p != nil {
			why = *p
		}
		l.gw.forget(l, why)
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
