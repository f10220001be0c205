package device

import (
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/cloudcloud/cloudcloud/protocol"
)

// A lamp is read in one of two ways. Where the platform offers a readiness
// poller (epoll on Linux, see epoll_linux.go), an idle lamp has no goroutine
// at all: when bytes arrive, a short-lived goroutine reads one frame, handles
// it and re-arms the poller, and a sweeper drops lamps that fall silent.
// Elsewhere each lamp has one reader goroutine blocked in conn.Read, with the
// read deadline as keepalive. Both share the frame handling below.

// closedByLamp ends reading when the lamp sends a close frame.
type closedByLamp struct{ code int }

func (e closedByLamp) Error() string {
	return fmt.Sprintf("lamp closed the connection (code %d)", e.code)
}

// errQueueFull ends a lamp that asked for more pongs than it reads.
var errQueueFull = errors.New("send queue full")

// assembler joins fragmented data frames into messages.
type assembler struct {
	op      byte
	msg     []byte
	started bool
}

// add takes one data frame; it returns the message when the frame ends one.
func (a *assembler) add(f frame, limit int64) (byte, []byte, bool, error) {
	switch {
	case f.opcode == opContinuation && !a.started:
		return 0, nil, false, &frameError{1002, "continuation frame without a start"}
	case f.opcode != opContinuation && a.started:
		return 0, nil, false, &frameError{1002, "new message inside a fragmented one"}
	case f.opcode != opContinuation:
		a.op, a.msg, a.started = f.opcode, f.payload, true
	default:
		if int64(len(a.msg)+len(f.payload)) > limit {
			return 0, nil, false, errTooBig
		}
		a.msg = append(a.msg, f.payload...)
	}
	if !f.fin {
		return 0, nil, false, nil
	}
	op, msg := a.op, a.msg
	*a = assembler{}
	return op, msg, true, nil
}

// control answers a control frame: ping with pong (same payload), close by
// ending the read with closedByLamp; pong needs nothing beyond the sign of
// life every frame gives.
func (l *lamp) control(op byte, payload []byte) error {
	switch op {
	case opPing:
		if stage(l.phase.Load()) == stageConnected {
			// The handshake owns the write side: answer now, not after "ok".
			return l.writeNow(appendFrame(nil, opPong, payload))
		}
		l.enqueuePong(payload)
	case opClose:
		code := websocket.CloseNormalClosure
		switch {
		case len(payload) == 1:
			return &frameError{websocket.CloseProtocolError, "close frame with a 1-byte payload"}
		case len(payload) >= 2 && !utf8.Valid(payload[2:]):
			return &frameError{websocket.CloseInvalidFramePayloadData, "close reason is not valid UTF-8"}
		case len(payload) >= 2:
			code = int(payload[0])<<8 | int(payload[1])
		}
		return closedByLamp{code}
	}
	return nil
}

// readMessage blocks until a whole data message arrived, answering control
// frames on the way. The handshake and the fallback reader use it.
func (l *lamp) readMessage() (byte, []byte, error) {
	var hdr [14]byte
	for {
		f, err := readFrame(l.raw, &hdr, l.gw.opt.MaxFrameSize)
		if err != nil {
			return 0, nil, err
		}
		l.lastSeen.Store(time.Now().UnixNano())
		if f.opcode >= opClose {
			if err := l.control(f.opcode, f.payload); err != nil {
				return 0, nil, err
			}
			continue
		}
		if op, msg, done, err := l.asm.add(f, l.gw.opt.MaxFrameSize); err != nil || done {
			return op, msg, err
		}
	}
}

// handleMessage acts on a data message from an authenticated lamp.
func (l *lamp) handleMessage(op byte, msg []byte) error {
	g := l.gw
	l.received.Add(1)
	g.stats.PacketsReceived.Add(1)
	if op != opText {
		g.stats.Ignored.Add(1)
		g.log.Debug("lamp sent a binary frame; ignored", "lamp", l.id, "bytes", len(msg))
		return nil
	}
	if !utf8.Valid(msg) {
		return &frameError{websocket.CloseInvalidFramePayloadData, "text frame is not valid UTF-8"}
	}
	switch kind, line := protocol.ClassifyLamp(msg); kind {
	case protocol.LampPing:
		if !l.enqueueCommand(command{frame: pongFrame}) {
			return errQueueFull
		}
	case protocol.LampDebug:
		g.addLog(l, line)
	default:
		g.stats.Ignored.Add(1)
		g.log.Debug("lamp sent an unknown frame; ignored", "lamp", l.id, "frame", string(msg[:min(len(msg), 64)]))
	}
	return nil
}

// readLoop is the fallback reader: one goroutine per lamp, the read deadline
// (pushed out by every frame) as keepalive.
func (l *lamp) readLoop() {
	for {
		if err := l.readOne(l.gw.opt.KeepaliveTimeout); err != nil {
			l.readError(err)
			return
		}
	}
}

// readOne reads and handles one frame. In poller mode the frame's first
// bytes are already there and the rest must follow within wait, so a lamp
// cannot hold a goroutine with half a frame; in fallback mode wait is the
// keepalive timeout.
func (l *lamp) readOne(wait time.Duration) error {
	_ = l.raw.SetReadDeadline(time.Now().Add(wait))
	var hdr [14]byte
	f, err := readFrame(l.raw, &hdr, l.gw.opt.MaxFrameSize)
	if err != nil {
		return err
	}
	l.lastSeen.Store(time.Now().UnixNano())
	if f.opcode >= opClose {
		return l.control(f.opcode, f.payload)
	}
	op, msg, done, err := l.asm.add(f, l.gw.opt.MaxFrameSize)
	if err != nil || !done {
		return err
	}
	return l.handleMessage(op, msg)
}

// readError ends the lamp for a read error, the way the protocol wants for
// each case, and returns the reason.
func (l *lamp) readError(err error) string {
	var fe *frameError
	var cl closedByLamp
	why := err.Error()
	switch {
	case isTimeout(err) && stage(l.phase.Load()) == stageConnected:
		why = fmt.Sprintf("no secret within %s", l.gw.opt.HandshakeTimeout)
		l.end(websocket.ClosePolicyViolation, why, why)
	case isTimeout(err):
		l.gw.stats.SilentDropped.Add(1)
		why = fmt.Sprintf("no sign of life for %s", l.gw.opt.KeepaliveTimeout)
		l.end(websocket.CloseGoingAway, "no sign of life", why)
	case errors.As(err, &fe):
		if fe.code == websocket.CloseMessageTooBig {
			why = fmt.Sprintf("frame larger than %d bytes", l.gw.opt.MaxFrameSize)
		}
		l.end(fe.code, fe.reason, why)
	case errors.As(err, &cl):
		reply := cl.code
		if reply < 1000 || reply == 1005 || reply == 1006 || reply == 1015 || reply >= 5000 {
			reply = websocket.CloseNormalClosure // codes that must not be sent back
		}
		l.end(reply, "", why)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		why = "connection closed without a close frame"
		l.end(0, "", why)
	default:
		l.end(0, "", why)
	}
	return why
}

// sweepSilent drops lamps that showed no sign of life for the keepalive
// timeout; in poller mode no read deadline does it for us.
func (g *Gateway) sweepSilent(now time.Time) {
	limit := now.Add(-g.opt.KeepaliveTimeout).UnixNano()
	g.hub.each(func(l *lamp) {
		if l.lastSeen.Load() < limit {
			g.stats.SilentDropped.Add(1)
			// The close frame may wait for a blocked writer: not on this goroutine.
			go l.end(websocket.CloseGoingAway, "no sign of life", fmt.Sprintf("no sign of life for %s", g.opt.KeepaliveTimeout))
		}
	})
}
