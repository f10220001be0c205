package device

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudcloud/cloudcloud/protocol"
)

// hub is the set of authenticated lamps, the current shared display packet
// (as a ready WebSocket frame) and the frames of the lamps that show a state
// of their own. One lock covers them all, so a lamp joining gets either the
// packet before a change and then the change, or the changed packet: never
// neither.
//
// A shared change is encoded once and handed to every lamp that follows
// the shared state, as before; a lamp with its own state is skipped with
// one comparison. A change of one lamp's own state is queued only for that
// lamp's connections (byLamp).
type hub struct {
	mu      sync.Mutex
	lamps   []*lamp
	current []byte
	own     map[string][]byte  // lamp id → the frame of its own state
	byLamp  map[string][]*lamp // lamp id → its authenticated connections
	seq     atomic.Uint64      // allocates broadcast generations
	gen     atomic.Uint64      // generation of the current shared packet
}

func (h *hub) init(current []byte) {
	h.current = current
	h.own = make(map[string][]byte)
	h.byLamp = make(map[string][]*lamp)
}

// add makes l a broadcast target and queues its display packet (its lamp's
// own, else the shared one) and the debug switch, when on.
func (h *hub) add(l *lamp, debug bool) {
	h.mu.Lock()
	l.hubIndex = len(h.lamps)
	h.lamps = append(h.lamps, l)
	id := l.LampID()
	l.lampIndex = len(h.byLamp[id])
	h.byLamp[id] = append(h.byLamp[id], l)
	b, own := h.packetFor(id, 1, nil)
	l.follow(own, b.gen)
	if !l.enqueueDisplay(b) {
		// Ended meanwhile (a shutdown during the handshake): it has been
		// forgotten already, so it must not stay in the set.
		h.removeLocked(l)
		h.mu.Unlock()
		b.settle()
		return
	}
	h.mu.Unlock()
	if debug {
		l.enqueueCommand(command{frame: textFrame(protocol.Debug(true).Bytes()), kind: protocol.KindDebug})
	}
}

// packetFor is the broadcast lamp id's connections should show, counted
// for n of them, and whether it is the lamp's own; h.mu is held.
func (h *hub) packetFor(id string, n int, observe func(int, time.Duration)) (*broadcast, bool) {
	b := &broadcast{frame: h.current, gen: h.gen.Load(), start: time.Now(), observe: observe, lamps: n}
	f, own := h.own[id]
	if own {
		b.frame, b.gen = f, h.seq.Add(1)
	}
	b.remaining.Store(int64(n))
	return b, own
}

// follow records on l whether it shows its own packet (generation gen) or
// the shared one; h.mu is held.
func (l *lamp) follow(own bool, gen uint64) {
	l.own = own
	if !own {
		gen = 0
	}
	l.ownGen.Store(gen)
}

// remove takes l out of the set in O(1) by moving the last lamp into its slot.
func (h *hub) remove(l *lamp) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removeLocked(l)
}

func (h *hub) removeLocked(l *lamp) {
	i := l.hubIndex
	if i < 0 {
		return
	}
	last := len(h.lamps) - 1
	h.lamps[i] = h.lamps[last]
	h.lamps[i].hubIndex = i
	h.lamps[last] = nil
	h.lamps = h.lamps[:last]
	l.hubIndex = -1
	// The same O(1) move among the lamp's connections: thousands of lamps
	// behind one address, with no ?lamp=, are one lamp.
	id := l.LampID()
	conns := h.byLamp[id]
	j, last := l.lampIndex, len(conns)-1
	conns[j] = conns[last]
	conns[j].lampIndex = j
	conns[last] = nil
	conns = conns[:last]
	if len(conns) == 0 {
		delete(h.byLamp, id)
	} else {
		h.byLamp[id] = conns
	}
}

// setDisplay makes frame the shared packet and queues it for every lamp
// that follows it. Queueing is a pointer swap per lamp; the writes happen in
// the lamps' flushers.
func (h *hub) setDisplay(frame []byte, observe func(int, time.Duration)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.current = frame
	gen := h.seq.Add(1)
	h.gen.Store(gen)
	followers := len(h.lamps)
	if len(h.own) > 0 {
		followers = 0
		for _, l := range h.lamps {
			if !l.own {
				followers++
			}
		}
	}
	if followers == 0 {
		return
	}
	b := &broadcast{frame: frame, gen: gen, start: time.Now(), observe: observe, lamps: followers}
	b.remaining.Store(int64(followers))
	for _, l := range h.lamps {
		if l.own {
			continue
		}
		if !l.enqueueDisplay(b) {
			b.settle()
		}
	}
}

// setOwn gives lamp id a frame of its own (nil: it follows the shared packet
// again) and queues it for that lamp's connections only.
func (h *hub) setOwn(id string, frame []byte, observe func(int, time.Duration)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if frame == nil {
		if _, ok := h.own[id]; !ok {
			return
		}
		delete(h.own, id)
	} else {
		h.own[id] = frame
	}
	h.requeue(id, observe)
}

// followAll drops every lamp's own frame: each lamp shows the shared packet.
func (h *hub) followAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	ids := make([]string, 0, len(h.own))
	for id := range h.own {
		ids = append(ids, id)
	}
	clear(h.own)
	for _, id := range ids {
		h.requeue(id, nil)
	}
}

// requeue queues lamp id's packet for its connections; h.mu is held.
func (h *hub) requeue(id string, observe func(int, time.Duration)) {
	conns := h.byLamp[id]
	if len(conns) == 0 {
		return
	}
	b, own := h.packetFor(id, len(conns), observe)
	for _, l := range conns {
		l.follow(own, b.gen)
		if !l.enqueueDisplay(b) {
			b.settle()
		}
	}
}

// connsOf copies lamp id's connections.
func (h *hub) connsOf(id string) []*lamp {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*lamp(nil), h.byLamp[id]...)
}

// snapshot copies the current lamp set.
func (h *hub) snapshot() []*lamp {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*lamp, len(h.lamps))
	copy(out, h.lamps)
	return out
}

// each calls fn for every lamp, outside the lock.
func (h *hub) each(fn func(*lamp)) {
	for _, l := range h.snapshot() {
		fn(l)
	}
}
