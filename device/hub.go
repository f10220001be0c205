package device

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudcloud/cloudcloud/protocol"
)

// hub is the set of authenticated lamps and the current display packet (as
// a ready WebSocket frame).
// One lock covers both, so a lamp joining gets either the packet before a
// change and then the change, or the changed packet: never neither.
type hub struct {
	mu      sync.Mutex
	lamps   []*lamp
	current []byte
	gen     atomic.Uint64
}

func (h *hub) init(current []byte) { h.current = current }

// add makes l a broadcast target and queues the current display packet (and
// the debug switch, when on) for it.
func (h *hub) add(l *lamp, debug bool) {
	h.mu.Lock()
	l.hubIndex = len(h.lamps)
	h.lamps = append(h.lamps, l)
	b := &broadcast{frame: h.current, gen: h.gen.Load()}
	b.remaining.Store(1)
	if !l.enqueueDisplay(b) {
		// Ended meanwhile (a shutdown during the handshake): it has been
		// forgotten already, so it must not stay in the set.
		h.lamps = h.lamps[:len(h.lamps)-1]
		l.hubIndex = -1
		h.mu.Unlock()
		b.settle()
		return
	}
	h.mu.Unlock()
	if debug {
		l.enqueueCommand(command{frame: textFrame(protocol.Debug(true).Bytes()), kind: protocol.KindDebug})
	}
}

// remove takes l out of the set in O(1) by moving the last lamp into its slot.
func (h *hub) remove(l *lamp) {
	h.mu.Lock()
	defer h.mu.Unlock()
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
}

// setDisplay makes data current and queues it for every lamp. Queueing is a
// pointer swap per lamp; the writes happen in the lamps' flushers.
func (h *hub) setDisplay(frame []byte, observe func(int, time.Duration)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.current = frame
	b := &broadcast{frame: frame, gen: h.gen.Add(1), start: time.Now(), observe: observe, lamps: len(h.lamps)}
	if len(h.lamps) == 0 {
		return
	}
	b.remaining.Store(int64(len(h.lamps)))
	for _, l := range h.lamps {
		if !l.enqueueDisplay(b) {
			b.settle()
		}
	}
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
