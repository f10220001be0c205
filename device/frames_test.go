package device

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// clientFrame builds a masked frame as a lamp sends it.
func clientFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		out = append(out, 0x80|byte(n))
	case n < 1<<16:
		out = append(out, 0x80|126, byte(n>>8), byte(n))
	default:
		out = append(out, 0x80|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	mask := []byte{0x12, 0x34, 0x56, 0x78}
	out = append(out, mask...)
	for i, c := range payload {
		out = append(out, c^mask[i&3])
	}
	return out
}

func TestReadFrame(t *testing.T) {
	long := bytes.Repeat([]byte("x"), 300)
	tests := []struct {
		name    string
		in      []byte
		op      byte
		payload []byte
		code    int // expected close code of a protocol error; 0 = ok
	}{
		{"text", clientFrame(true, opText, []byte("ping")), opText, []byte("ping"), 0},
		{"16-bit length", clientFrame(true, opText, long), opText, long, 0},
		{"empty ping", clientFrame(true, opPing, nil), opPing, []byte{}, 0},
		{"unmasked", []byte{0x81, 0x01, 'x'}, 0, nil, 1002},
		{"reserved bit", append([]byte{0xC1}, clientFrame(true, opText, []byte("x"))[1:]...), 0, nil, 1002},
		{"unknown opcode", clientFrame(true, 0x3, nil), 0, nil, 1002},
		{"fragmented ping", clientFrame(false, opPing, nil), 0, nil, 1002},
		{"control over 125", clientFrame(true, opPing, long), 0, nil, 1002},
		{"too large", clientFrame(true, opText, bytes.Repeat([]byte("x"), 5000)), 0, nil, 1009},
		{"64-bit length", clientFrame(true, opBinary, bytes.Repeat([]byte("y"), 70000)), 0, nil, 1009},
	}
	for _, tt := range tests {
		var hdr [14]byte
		f, err := readFrame(bytes.NewReader(tt.in), &hdr, 4096)
		if tt.code != 0 {
			var fe *frameError
			if !errors.As(err, &fe) || fe.code != tt.code {
				t.Errorf("%s: err = %v, want close code %d", tt.name, err, tt.code)
			}
			continue
		}
		if err != nil || f.opcode != tt.op || !bytes.Equal(f.payload, tt.payload) || !f.fin {
			t.Errorf("%s: %+v, %v", tt.name, f, err)
		}
	}
	var hdr [14]byte
	if _, err := readFrame(bytes.NewReader(clientFrame(true, opText, []byte("hello"))[:5]), &hdr, 4096); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated frame: %v", err)
	}
	if _, err := readFrame(bytes.NewReader(nil), &hdr, 4096); !errors.Is(err, io.EOF) {
		t.Errorf("no frame: %v", err)
	}
}

func TestAssembler(t *testing.T) {
	var a assembler
	steps := []struct {
		f    frame
		done bool
		code int
	}{
		{frame{fin: false, opcode: opText, payload: []byte("d:he")}, false, 0},
		{frame{fin: false, opcode: opContinuation, payload: []byte("ll")}, false, 0},
		{frame{fin: true, opcode: opContinuation, payload: []byte("o")}, true, 0},
		{frame{fin: true, opcode: opContinuation, payload: []byte("x")}, false, 1002},
	}
	for i, s := range steps {
		op, msg, done, err := a.add(s.f, 4096)
		if s.code != 0 {
			var fe *frameError
			if !errors.As(err, &fe) || fe.code != s.code {
				t.Errorf("step %d: %v", i, err)
			}
			continue
		}
		if err != nil || done != s.done {
			t.Fatalf("step %d: done %v err %v", i, done, err)
		}
		if done && (op != opText || string(msg) != "d:hello") {
			t.Errorf("assembled %d %q", op, msg)
		}
	}
	a = assembler{}
	a.add(frame{opcode: opText, payload: []byte("a")}, 4096)
	if _, _, _, err := a.add(frame{fin: true, opcode: opText}, 4096); err == nil {
		t.Error("a new message inside a fragmented one was accepted")
	}
	a = assembler{}
	a.add(frame{opcode: opText, payload: bytes.Repeat([]byte("a"), 3000)}, 4096)
	if _, _, _, err := a.add(frame{fin: true, opcode: opContinuation, payload: bytes.Repeat([]byte("a"), 3000)}, 4096); err != errTooBig {
		t.Errorf("oversized message: %v", err)
	}
}

// FuzzReadFrame: any bytes from a lamp parse or fail cleanly, never panic,
// and a frame never carries more than the limit.
func FuzzReadFrame(f *testing.F) {
	f.Add(clientFrame(true, opText, []byte("ping")))
	f.Add(clientFrame(false, opText, []byte("d:")))
	f.Add(clientFrame(true, opClose, []byte{3, 232}))
	f.Add([]byte{0x81, 0xff, 0, 0, 0, 0, 0, 0, 0, 9})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		var a assembler
		var hdr [14]byte
		for range 64 {
			fr, err := readFrame(r, &hdr, 4096)
			if err != nil {
				return
			}
			if len(fr.payload) > 4096 {
				t.Fatalf("payload of %d bytes over the limit", len(fr.payload))
			}
			if fr.opcode < opClose {
				if _, msg, _, err := a.add(fr, 4096); err != nil {
					return
				} else if len(msg) > 4096 {
					t.Fatalf("message of %d bytes over the limit", len(msg))
				}
			}
		}
	})
}

// A lamp whose firmware fragments messages (small write buffer) is understood.
func TestFragmentedMessagesOverTheWire(t *testing.T) {
	ts := newServer(t, Options{}, nil)
	c := dial(t, ts.url, &websocket.Dialer{WriteBufferSize: 16})
	send(t, c, secret)
	expect(t, c, "ok", "[cc:0:?:?]")
	line := "d:" + strings.Repeat("fragment ", 40)
	send(t, c, line)
	waitFor(t, "the log line", func() bool { return len(ts.gw.Logs("", 1)) == 1 })
	if got := ts.gw.Logs("", 1)[0].Message; got != strings.TrimPrefix(line, "d:") {
		t.Errorf("log line %q", got)
	}
}

// An unmasked frame is a protocol error: close 1002.
func TestUnmaskedFrameCloses1002(t *testing.T) {
	ts := newServer(t, Options{}, nil)
	c := ts.lamp(t, secret, "[cc:0:?:?]")
	c.UnderlyingConn().Write([]byte{0x81, 0x04, 'p', 'i', 'n', 'g'})
	if code, _ := closeCode(t, c); code != websocket.CloseProtocolError {
		t.Errorf("close code %d, want 1002", code)
	}
}

// A close frame from the lamp is answered with a close frame.
func TestLampCloseIsEchoed(t *testing.T) {
	ts := newServer(t, Options{}, nil)
	c := ts.lamp(t, secret, "[cc:0:?:?]")
	c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4000, "bye"), time.Now().Add(time.Second))
	if code, _ := closeCode(t, c); code != 4000 {
		t.Errorf("close echo %d, want 4000", code)
	}
	waitFor(t, "the lamp to leave", func() bool { return ts.gw.Stats().Lamps.Load() == 0 })
}
