package device

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudcloud/cloudcloud/protocol"
)

// Phase is where a lamp's connection stands.
type Phase int32

// A connection moves forward through these phases; only a reconnect starts over.
const (
	PhaseConnected     Phase = iota // WebSocket open, no secret yet
	PhaseAuthenticated              // secret accepted, "ok" sent
	PhaseSynchronized               // the current display packet was written
	PhaseUpdating                   // told to flash new firmware, until it comes back
)

func (p Phase) String() string {
	return [...]string{"connected", "authenticated", "synchronized", "updating"}[p]
}

// broadcast is one display packet on its way to every lamp. It is encoded
// once and shared: queueing it for a lamp allocates nothing. remaining counts
// the lamps that have neither written it nor moved past it, so the fan-out
// time (the change has reached every lamp, or a newer one has) is measured
// without any per-lamp bookkeeping beyond one atomic decrement.
type broadcast struct {
	data      []byte
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

type command struct {
	data []byte
	kind protocol.Kind
}

// lamp is one connection. The reader goroutine owns its lifetime; writes go
// through a small queue drained by a flusher goroutine that exists only while
// there is something to write, so an idle lamp costs no writer goroutine.
type lamp struct {
	gw          *Gateway
	conn        *websocket.Conn // writes (gorilla)
	raw         net.Conn        // reads (frames.go)
	id          string
	remote      string
	connectedAt time.Time

	name     atomic.Pointer[string] // set once at authentication
	phase    atomic.Int32
	lastSeen atomic.Int64 // unix nanoseconds
	sent     atomic.Uint64
	received atomic.Uint64
	synced   atomic.Uint64 // gen of the last display packet written

	asm   assembler       // fragments of a message being received
	token uint32          // the lamp's key in the poller
	rc    syscall.RawConn // for the poller; nil in fallback mode

	debugSet bool // guarded by gw.mu: a per-connection debug choice (anonymous lamps)
	debugOn  bool

	hubIndex int // guarded by hub.mu; -1 when not in the hub

	mu       sync.Mutex
	display  *broadcast // newest display packet not yet written
	cmds     []command
	ping     bool
	flushing bool
	closed   bool
}

func (l *lamp) Name() string {
	if p := l.name.Load(); p != nil {
		return *p
	}
	return ""
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
	start := !l.flushing
	l.flushing = true
	l.mu.Unlock()
	if old != nil {
		old.settle()
	}
	if start {
		go l.flush()
	}
	return true
}

// enqueueCommand queues a command; commands are never skipped. It reports
// false when the lamp is closed or its queue is full (the caller drops it).
func (l *lamp) enqueueCommand(c command) bool {
	l.mu.Lock()
	if l.closed || len(l.cmds) >= l.gw.opt.SendQueue {
		l.mu.Unlock()
		return false
	}
	l.cmds = append(l.cmds, c)
	start := !l.flushing
	l.flushing = true
	l.mu.Unlock()
	if start {
		go l.flush()
	}
	return true
}

// requestPing asks the flusher to send a ping control frame.
func (l *lamp) requestPing() {
	l.mu.Lock()
	if l.closed || l.ping {
		l.mu.Unlock()
		return
	}
	l.ping = true
	start := !l.flushing
	l.flushing = true
	l.mu.Unlock()
	if start {
		go l.flush()
	}
}

// flush writes what is queued until the queue is empty, then exits. Display
// first, then commands in order: after the handshake that gives exactly
// "current packet, then [cc:d:1:?]" as the protocol wants.
func (l *lamp) flush() {
	for {
		l.mu.Lock()
		d, cmds, ping := l.display, l.cmds, l.ping
		l.display, l.cmds, l.ping = nil, nil, false
		if l.closed || d == nil && len(cmds) == 0 && !ping {
			l.flushing = false
			l.mu.Unlock()
			if d != nil {
				d.settle()
			}
			return
		}
		l.mu.Unlock()

		deadline := time.Now().Add(l.gw.opt.WriteTimeout)
		err := l.conn.SetWriteDeadline(deadline)
		if err == nil && d != nil {
			err = l.conn.WriteMessage(websocket.TextMessage, d.data)
			if err == nil {
				l.sent.Add(1)
				l.gw.stats.PacketsSent.Add(1)
				l.synced.Store(d.gen)
				if l.phase.CompareAndSwap(int32(PhaseAuthenticated), int32(PhaseSynchronized)) {
					l.gw.publishDevice(l, "synchronized")
				}
			}
			d.settle()
		}
		for i := 0; err == nil && i < len(cmds); i++ {
			err = l.conn.WriteMessage(websocket.TextMessage, cmds[i].data)
			if err == nil {
				l.sent.Add(1)
				l.gw.stats.PacketsSent.Add(1)
				if cmds[i].kind == protocol.KindUpdate {
					l.phase.Store(int32(PhaseUpdating))
					l.gw.publishDevice(l, "updating")
				}
			}
		}
		if err == nil && ping {
			err = l.conn.WriteControl(websocket.PingMessage, nil, deadline)
		}
		if err != nil {
			why := "write failed: " + err.Error()
			if isTimeout(err) {
				l.gw.stats.SlowDropped.Add(1)
				why = "too slow to receive (write timed out); it will reconnect and get the current state"
			}
			l.end(0, "", why)
			l.mu.Lock()
			l.flushing = false
			l.mu.Unlock()
			return
		}
	}
}

// end closes the connection, with a close frame when code is not 0 (which
// may wait up to a second for the write lock) or else by dropping TCP at
// once, and removes the lamp from the gateway, logging why. It is safe to
// call more than once and from any goroutine; the first call wins.
func (l *lamp) end(code int, text, why string) {
	l.mu.Lock()
	already := l.closed
	l.closed = true
	d := l.display
	l.display = nil
	l.mu.Unlock()
	if d != nil {
		d.settle()
	}
	if already {
		return
	}
	if code != 0 {
		_ = l.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
	}
	_ = l.conn.Close()
	l.gw.forget(l, why)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
