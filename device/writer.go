package device

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/cloudcloud/cloudcloud/protocol"
)

// Writing: a fixed pool of writers (one per core) drains the lamps' queues.
// A writer gathers everything a lamp has queued into one buffer and tries one
// non-blocking write(2). That is the whole cost of a lamp in a broadcast: no
// goroutine, no allocation. Only when a lamp's socket is full does the rest
// go to a goroutine of that lamp's own, which writes with a deadline and
// drops the lamp when it passes: a slow lamp never holds up a writer.
//
// Frames are written here rather than through gorilla's Conn for that reason:
// gorilla's writes block, so every lamp would need a goroutine to write from.

// writerPool is the queue of lamps with something to write.
type writerPool struct {
	mu     sync.Mutex
	cond   *sync.Cond
	queue  []*lamp
	head   int
	closed bool
}

func newWriterPool() *writerPool {
	p := &writerPool{}
	p.cond = sync.NewCond(&p.mu)
	return p
}

func (p *writerPool) push(l *lamp) {
	p.mu.Lock()
	p.queue = append(p.queue, l)
	p.mu.Unlock()
	p.cond.Signal()
}

// pop waits for a lamp; nil once the pool is closed.
func (p *writerPool) pop() *lamp {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.head == len(p.queue) {
		if p.closed {
			return nil
		}
		p.cond.Wait()
	}
	l := p.queue[p.head]
	p.queue[p.head] = nil
	p.head++
	if p.head == len(p.queue) {
		p.queue, p.head = p.queue[:0], 0
	}
	return l
}

func (p *writerPool) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cond.Broadcast()
}

// writeLoop is one writer.
func (g *Gateway) writeLoop() {
	buf := make([]byte, 0, 1024)
	w := newNBWrite()
	for {
		l := g.writers.pop()
		if l == nil {
			return
		}
		buf = l.flushFast(w, buf)
	}
}

// batch says what one gathered write carries, for the bookkeeping after it.
type batch struct {
	display *broadcast
	cmds    int
	update  bool
	close   bool
}

// take gathers what is queued into buf. It reports false, and gives up the
// write side, when there is nothing to write.
func (l *lamp) take(buf []byte) ([]byte, batch, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b batch
	if l.closed {
		if l.closeFrame != nil {
			buf = append(buf, l.closeFrame...)
			l.closeFrame, b.close = nil, true
			return buf, b, true
		}
		return buf, b, false // flushing stays set: nothing may write any more
	}
	if l.pongDue {
		buf = appendFrame(buf, opPong, l.pong)
		l.pong, l.pongDue = nil, false
	}
	if l.display != nil {
		buf = append(buf, l.display.frame...)
		b.display, l.display = l.display, nil
	}
	for _, c := range l.cmds {
		buf = append(buf, c.frame...)
		b.cmds++
		b.update = b.update || c.kind == protocol.KindUpdate
	}
	l.cmds = l.cmds[:0]
	if l.ping {
		buf = appendFrame(buf, opPing, nil)
		l.ping = false
	}
	if len(buf) == 0 {
		l.flushing = false
		return buf, b, false
	}
	return buf, b, true
}

// flushFast writes l's queue with non-blocking writes on a pool writer; it
// hands over to flushSlow when the socket is full. It returns buf for reuse.
func (l *lamp) flushFast(w *nbWrite, buf []byte) []byte {
	for {
		var b batch
		var ok bool
		buf, b, ok = l.take(buf[:0])
		if !ok {
			return buf
		}
		n, err := w.tryWrite(l, buf)
		if err != nil {
			l.writeFailed(err, b)
			return buf
		}
		if n < len(buf) {
			rest := append([]byte(nil), buf[n:]...)
			go l.flushSlow(rest, b)
			return buf
		}
		if l.wrote(b) {
			return buf
		}
	}
}

// flushSlow finishes writing on l's own goroutine with blocking writes and a
// deadline, then drains the queue the same way until it is empty.
func (l *lamp) flushSlow(buf []byte, b batch) {
	// The deadline stays on the descriptor: clear it when done, or the pool
	// writers' non-blocking writes would fail once it has passed.
	defer func() { _ = l.raw.SetWriteDeadline(time.Time{}) }()
	for {
		_ = l.raw.SetWriteDeadline(time.Now().Add(l.gw.opt.WriteTimeout))
		if _, err := l.raw.Write(buf); err != nil {
			l.writeFailed(err, b)
			return
		}
		if l.wrote(b) {
			return
		}
		var ok bool
		if buf, b, ok = l.take(buf[:0]); !ok {
			return
		}
	}
}

// wrote does the bookkeeping after a batch went out; it reports true when
// the batch was the close frame, after which the lamp is dropped.
func (l *lamp) wrote(b batch) bool {
	g := l.gw
	if b.display != nil {
		l.sent.Add(1)
		g.stats.PacketsSent.Add(1)
		l.synced.Store(b.display.gen)
		if l.phase.CompareAndSwap(int32(stageAuthenticated), int32(stageSynchronized)) {
			g.publishDevice(l, EventSynchronized)
		}
		b.display.settle()
	}
	if b.cmds > 0 {
		l.sent.Add(uint64(b.cmds))
		g.stats.PacketsSent.Add(uint64(b.cmds))
	}
	if b.update {
		l.phase.Store(int32(stageUpdating))
		g.publishDevice(l, EventUpdating)
	}
	if b.close {
		l.drop("")
	}
	return b.close
}

func (l *lamp) writeFailed(err error, b batch) {
	if b.display != nil {
		b.display.settle()
	}
	why := "write failed: " + err.Error()
	if isTimeout(err) {
		l.gw.stats.SlowDropped.Add(1)
		why = "too slow to receive (write timed out); it will reconnect and get the current state"
	}
	l.end(0, "", why)
	l.drop(why) // when the failed write was the close frame, end did nothing
}

// writeNow writes frame directly; only for the handshake, while the
// handshake goroutine owns the write side (see Gateway.ServeHTTP).
func (l *lamp) writeNow(frame []byte) error {
	_ = l.raw.SetWriteDeadline(time.Now().Add(l.gw.opt.WriteTimeout))
	_, err := l.raw.Write(frame)
	_ = l.raw.SetWriteDeadline(time.Time{}) // see flushSlow
	return err
}

// release gives up the write side the handshake owned, handing anything
// queued meanwhile (a pong, a close frame) to a writer.
func (l *lamp) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushing = false
	if l.pongDue || l.closeFrame != nil || l.display != nil || len(l.cmds) > 0 || l.ping {
		l.schedule()
	}
}

// appendFrame appends an unmasked server frame (FIN set) to buf.
func appendFrame(buf []byte, opcode byte, payload []byte) []byte {
	buf = append(buf, 0x80|opcode)
	switch n := len(payload); {
	case n < 126:
		buf = append(buf, byte(n))
	case n < 1<<16:
		buf = append(buf, 126)
		buf = binary.BigEndian.AppendUint16(buf, uint16(n))
	default:
		buf = append(buf, 127)
		buf = binary.BigEndian.AppendUint64(buf, uint64(n))
	}
	return append(buf, payload...)
}

// textFrame is a whole text frame holding p's wire form.
func textFrame(p []byte) []byte { return appendFrame(make([]byte, 0, len(p)+2), opText, p) }

// closeFrame is a close frame with code and a reason cut to fit 125 bytes.
func closeFrame(code int, text string) []byte {
	if len(text) > 123 {
		text = text[:123]
	}
	payload := binary.BigEndian.AppendUint16(nil, uint16(code))
	return appendFrame(nil, opClose, append(payload, text...))
}
