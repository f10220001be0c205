package device

import (
	"errors"
	"io/fs"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudcloud/cloudcloud/internal/atomicfile"
)

// dialerFrom connects from another loopback address, so a test can be two
// clients: 127.0.0.1 (the attacker) and from.
func dialerFrom(from string) *websocket.Dialer {
	return &websocket.Dialer{NetDialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).DialContext}
}

// A wrong secret is closed at once with 1008, whatever the address's
// back-off, and the server keeps nothing open for it; the address's next
// attempts get 429 before any upgrade while other addresses connect.
func TestWrongSecretIsClosedAtOnceAndThrottledAtTheUpgrade(t *testing.T) {
	ts := newServer(t, Options{AuthBackoff: time.Hour, AuthBackoffMax: time.Hour}, nil)
	c := dial(t, ts.url, nil)
	send(t, c, "guess-1")
	// closeCode gives up after 10 s: a close held back for the hour-long
	// back-off fails here.
	if code, text := closeCode(t, c); code != websocket.ClosePolicyViolation || text != "wrong secret" {
		t.Fatalf("close = %d %q, want 1008 wrong secret", code, text)
	}
	waitFor(t, "the refused connection to be dropped", func() bool { return ts.gw.Stats().Connections.Load() == 0 })

	for range 3 {
		_, resp, err := websocket.DefaultDialer.Dial(ts.url, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("attempt during back-off: %v %v, want 429", resp, err)
		}
		if ra := resp.Header.Get("Retry-After"); ra != "3600" {
			t.Errorf("Retry-After %q, want 3600", ra)
		}
	}
	if got := ts.gw.Stats().HandshakesFailed.Load(); got != 1 {
		t.Errorf("HandshakesFailed = %d: throttled attempts reached the secret check", got)
	}
	other := dial(t, ts.url, dialerFrom("127.0.0.2"))
	send(t, other, secret)
	expect(t, other, "ok", "[cc:0:?:?]")
}

// One address can hold only MaxHandshakes connections that have not given
// the secret; the next gets 429, and other addresses are not affected.
func TestHandshakesPerAddressAreCapped(t *testing.T) {
	ts := newServer(t, Options{MaxConnections: 8, MaxHandshakes: 2}, nil)
	silent := []*websocket.Conn{dial(t, ts.url, nil), dial(t, ts.url, nil)}
	_, resp, err := websocket.DefaultDialer.Dial(ts.url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third silent connection: %v %v, want 429", resp, err)
	}
	for _, from := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		c := dial(t, ts.url, dialerFrom(from))
		send(t, c, secret)
		expect(t, c, "ok", "[cc:0:?:?]")
	}
	// A connection that leaves gives its slot back.
	silent[0].Close()
	waitFor(t, "a slot to be free", func() bool {
		ts.gw.handshakeMu.Lock()
		defer ts.gw.handshakeMu.Unlock()
		return ts.gw.handshaking["127.0.0.1"] == 1
	})
	ts.lamp(t, secret, "[cc:0:?:?]")
	// Once authenticated, a connection no longer takes a handshake slot.
	ts.lamp(t, secret, "[cc:0:?:?]")
}

// A ping before the secret is answered before the secret is given.
func TestPingBeforeSecretIsAnswered(t *testing.T) {
	ts := newServer(t, Options{}, nil)
	c := dial(t, ts.url, nil)
	pong := make(chan string, 1)
	c.SetPongHandler(func(s string) error { pong <- s; return nil })
	go func() { c.SetReadDeadline(time.Now().Add(10 * time.Second)); c.ReadMessage() }()
	if err := c.WriteControl(websocket.PingMessage, []byte("early"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-pong:
		if got != "early" {
			t.Errorf("pong %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pong before the secret")
	}
}

func TestMalformedFramesGetTheirCloseCodes(t *testing.T) {
	ts := newServer(t, Options{}, nil)
	for _, tt := range []struct {
		name  string
		frame []byte
		code  int
	}{
		{"1-byte close payload", clientFrame(true, opClose, []byte{3}), websocket.CloseProtocolError},
		{"close reason not UTF-8", clientFrame(true, opClose, []byte{0x03, 0xe8, 0xff}), websocket.CloseInvalidFramePayloadData},
		{"text not UTF-8", clientFrame(true, opText, []byte("d:\xff\xfe")), websocket.CloseInvalidFramePayloadData},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := ts.lamp(t, secret, "[cc:0:?:?]")
			c.UnderlyingConn().Write(tt.frame)
			if code, _ := closeCode(t, c); code != tt.code {
				t.Errorf("close code %d, want %d", code, tt.code)
			}
		})
	}
	t.Run("secret not UTF-8", func(t *testing.T) {
		c := dial(t, ts.url, nil)
		c.UnderlyingConn().Write(clientFrame(true, opText, []byte("\xff")))
		if code, _ := closeCode(t, c); code != websocket.CloseInvalidFramePayloadData {
			t.Errorf("close code %d, want 1007", code)
		}
	})
	if n := len(ts.gw.Logs("", 0)); n != 0 {
		t.Errorf("%d log lines stored from invalid frames", n)
	}
}

// A debug switch that cannot be saved answers an error and changes
// nothing: not the devices' flags, not what lamps are sent, not later lamps.
func TestFailedDebugSwitchLeavesNoTrace(t *testing.T) {
	ts := newServer(t, Options{Records: bucket(t, t.TempDir()), Named: []NamedSecret{{Name: "bedroom", Secret: "bedroom-secret"}}}, nil)
	anon := ts.lamp(t, secret, "[cc:0:?:?]")
	bed := ts.lamp(t, "bedroom-secret", "[cc:0:?:?]")
	restore := atomicfile.SetFault(func(p string) error { return &fs.PathError{Op: "open", Path: p, Err: syscall.EROFS} })
	for _, ids := range [][]string{nil, {"bedroom"}} {
		if _, err := ts.gw.SetDebug(true, ids); !errors.Is(err, syscall.EROFS) {
			t.Fatalf("SetDebug(%v) on a read-only disk: %v", ids, err)
		}
	}
	restore()
	for _, d := range ts.gw.Devices() {
		if d.Debug {
			t.Errorf("device %s shows debug on after a failed switch", d.ID)
		}
	}
	for _, c := range []*websocket.Conn{anon, bed} {
		send(t, c, "ping")
		expect(t, c, "pong") // and no [cc:d:1:?] before it
	}
	late := ts.lamp(t, "bedroom-secret", "[cc:0:?:?]")
	send(t, late, "ping")
	expect(t, late, "pong")
}

func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(entries)
}

// Refused connections hold no descriptor on the server while their
// clients stay: only the clients' own ends remain open.
func TestRefusedConnectionsHoldNoDescriptors(t *testing.T) {
	ts := newServer(t, Options{AuthBackoff: time.Hour, AuthBackoffMax: time.Hour, MaxHandshakes: 50}, nil)
	ts.lamp(t, secret, "[cc:0:?:?]") // warm up: the server's own descriptors exist
	before := openFDs(t)
	var clients []*websocket.Conn
	for range 20 {
		clients = append(clients, dial(t, ts.url, nil))
	}
	for _, c := range clients {
		send(t, c, "guess")
	}
	for _, c := range clients {
		if code, _ := closeCode(t, c); code != websocket.ClosePolicyViolation {
			t.Fatalf("close %d", code)
		}
	}
	waitFor(t, "the server to let go of the refused connections", func() bool { return openFDs(t) <= before+len(clients) })
	// The count drops as each refused connection is forgotten, a moment
	// after its descriptor is closed.
	waitFor(t, "only the one lamp to be counted", func() bool { return ts.gw.Stats().Connections.Load() == 1 })
}
