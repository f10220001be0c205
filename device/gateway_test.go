package device

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/realip"
	"github.com/cloudcloud/cloudcloud/internal/storage"
	"github.com/cloudcloud/cloudcloud/protocol"
)

const secret = "lamp-secret-1"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// goroutineReaders makes newServer use the fallback reader (one goroutine
// per lamp) instead of epoll, as on platforms without epoll.
var goroutineReaders bool

func TestGoroutineReaders(t *testing.T) {
	goroutineReaders = true
	defer func() { goroutineReaders = false }()
	for name, test := range map[string]func(*testing.T){
		"handshake": TestHandshake, "messages": TestLampMessages, "keepalive": TestKeepalive,
		"oversized": TestOversizedFrameCloses1009, "broadcast": TestBroadcastReconnectAndManyLamps,
		"fragments": TestFragmentedMessagesOverTheWire, "close": TestLampCloseIsEchoed,
		"malformed": TestMalformedFramesGetTheirCloseCodes, "ping before secret": TestPingBeforeSecretIsAnswered,
	} {
		t.Run(name, test)
	}
}

type testServer struct {
	gw  *Gateway
	srv *httptest.Server
	url string
	bus *events.Bus
}

func newServer(t *testing.T, opt Options, wrap func(net.Listener) net.Listener) *testServer {
	t.Helper()
	if opt.Secret == "" {
		opt.Secret = secret
	}
	if opt.AuthBackoff == 0 {
		// Back-off is checked at the next upgrade: short enough that a
		// test's next dial is never refused.
		opt.AuthBackoff, opt.AuthBackoffMax = time.Nanosecond, time.Microsecond
	}
	bus := events.NewBus()
	opt.Bus = bus
	opt.Logger = quiet
	opt.noPoller = goroutineReaders
	gw, err := New(opt, protocol.Off())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(gw)
	if wrap != nil {
		srv.Listener = wrap(srv.Listener)
	}
	srv.Start()
	ts := &testServer{gw: gw, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/", bus: bus}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		gw.Shutdown(ctx)
		srv.Close()
	})
	return ts
}

// dial opens a raw WebSocket like a lamp would, without the handshake.
func dial(t *testing.T, url string, d *websocket.Dialer) *websocket.Conn {
	t.Helper()
	if d == nil {
		d = websocket.DefaultDialer
	}
	c, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t *testing.T, c *websocket.Conn, s string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		t.Fatalf("send %q: %v", s, err)
	}
}

// next reads the next text frame within 5 seconds.
func next(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	mt, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if mt != websocket.TextMessage {
		t.Fatalf("got frame type %d, want text", mt)
	}
	return string(b)
}

func expect(t *testing.T, c *websocket.Conn, want ...string) {
	t.Helper()
	for _, w := range want {
		if got := next(t, c); got != w {
			t.Fatalf("got %q, want %q", got, w)
		}
	}
}

// lamp dials and completes the handshake, checking "ok" and the packet.
func (ts *testServer) lamp(t *testing.T, secret string, wantPacket string) *websocket.Conn {
	t.Helper()
	c := dial(t, ts.url, nil)
	send(t, c, secret)
	expect(t, c, "ok", wantPacket)
	return c
}

// closeCode reads until the connection ends and returns the close code.
func closeCode(t *testing.T, c *websocket.Conn) (int, string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, b, err := c.ReadMessage()
		if err == nil {
			if string(b) == "ok" {
				t.Fatal("server sent ok")
			}
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Text
		}
		return -1, err.Error()
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestHandshake(t *testing.T) {
	ts := newServer(t, Options{HandshakeTimeout: 300 * time.Millisecond}, nil)
	t.Run("secret gets ok and the current packet", func(t *testing.T) {
		ts.lamp(t, secret, "[cc:0:?:?]")
	})
	t.Run("white space around the secret is ignored", func(t *testing.T) {
		ts.lamp(t, "  "+secret+"\r\n", "[cc:0:?:?]")
	})
	t.Run("any path is accepted", func(t *testing.T) {
		c := dial(t, ts.url+"ws", nil)
		send(t, c, secret)
		expect(t, c, "ok")
	})
	refusals := []struct {
		name, reason string
		first        func(c *websocket.Conn)
	}{
		{"wrong secret", "wrong secret", func(c *websocket.Conn) { c.WriteMessage(websocket.TextMessage, []byte("nope")) }},
		{"binary first frame", "must be the secret as text", func(c *websocket.Conn) { c.WriteMessage(websocket.BinaryMessage, []byte(secret)) }},
		{"nothing within the timeout", "no secret within", func(*websocket.Conn) {}},
		{"secret with a suffix", "wrong secret", func(c *websocket.Conn) { c.WriteMessage(websocket.TextMessage, []byte(secret+"x")) }},
	}
	t.Run("an oversized first frame gets 1009", func(t *testing.T) {
		c := dial(t, ts.url, nil)
		c.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("s", 5000)))
		if code, _ := closeCode(t, c); code != websocket.CloseMessageTooBig {
			t.Errorf("close code %d, want 1009", code)
		}
	})
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, ts.url, nil)
			tt.first(c)
			code, text := closeCode(t, c)
			if code != websocket.ClosePolicyViolation || !strings.Contains(text, tt.reason) {
				t.Errorf("close = %d %q, want 1008 containing %q", code, text, tt.reason)
			}
		})
	}
	if ts.gw.Stats().HandshakesFailed.Load() < 4 {
		t.Errorf("HandshakesFailed = %d", ts.gw.Stats().HandshakesFailed.Load())
	}
}

func TestLampMessages(t *testing.T) {
	ts := newServer(t, Options{}, nil)
	logs := ts.bus.Subscribe(10, events.TypeLog)
	c := ts.lamp(t, secret, "[cc:0:?:?]")

	send(t, c, "ping")
	expect(t, c, "pong")

	pong := make(chan string, 1)
	c.SetPongHandler(func(s string) error { pong <- s; return nil })
	c.WriteControl(websocket.PingMessage, []byte("hello"), time.Now().Add(time.Second))
	go func() { c.SetReadDeadline(time.Now().Add(2 * time.Second)); c.ReadMessage() }()
	select {
	case got := <-pong:
		if got != "hello" {
			t.Errorf("pong payload %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pong control frame")
	}
	c.SetReadDeadline(time.Time{})

	send(t, c, "d:wifi rssi -67")
	send(t, c, "hello there")
	c.WriteMessage(websocket.BinaryMessage, []byte{1, 2})
	e := <-logs.C
	line := e.Data.(LogLine)
	if line.Message != "wifi rssi -67" || !strings.HasPrefix(line.Device, "d-") {
		t.Errorf("log event %+v", line)
	}
	waitFor(t, "two ignored frames", func() bool { return ts.gw.Stats().Ignored.Load() == 2 })
	if got := ts.gw.Logs("", 10); len(got) != 1 || got[0].Message != "wifi rssi -67" {
		t.Errorf("Logs = %+v", got)
	}
	if got := ts.gw.Logs(line.Device, 10); len(got) != 1 {
		t.Errorf("Logs(%s) = %+v", line.Device, got)
	}
	if got := ts.gw.Logs("d-000000", 10); len(got) != 0 {
		t.Errorf("Logs of an unknown lamp = %+v", got)
	}
	if err := ts.gw.SetDisplay(protocol.Reset()); err == nil {
		t.Error("a command was accepted as a display packet")
	}
}

func TestOversizedFrameCloses1009(t *testing.T) {
	ts := newServer(t, Options{}, nil)
	c := ts.lamp(t, secret, "[cc:0:?:?]")
	send(t, c, "d:"+strings.Repeat("x", 5000))
	if code, _ := closeCode(t, c); code != websocket.CloseMessageTooBig {
		t.Errorf("close code %d, want 1009", code)
	}
}

func TestKeepalive(t *testing.T) {
	ts := newServer(t, Options{PingInterval: 50 * time.Millisecond, KeepaliveTimeout: 300 * time.Millisecond}, nil)

	// A lamp that only answers the server's pings (gorilla answers while reading) stays.
	alive := ts.lamp(t, secret, "[cc:0:?:?]")
	pings := 0
	alive.SetPingHandler(func(s string) error {
		pings++
		return alive.WriteControl(websocket.PongMessage, []byte(s), time.Now().Add(time.Second))
	})
	done := make(chan error, 1)
	go func() {
		alive.SetReadDeadline(time.Now().Add(time.Second))
		_, _, err := alive.ReadMessage()
		done <- err
	}()

	// A silent lamp (never reads, so never answers a ping) is dropped.
	silent := ts.lamp(t, secret, "[cc:0:?:?]")
	_ = silent
	waitFor(t, "the silent lamp to be dropped", func() bool { return ts.gw.Stats().SilentDropped.Load() == 1 })

	err := <-done
	if !isTimeout(err) {
		t.Fatalf("the live lamp's connection ended: %v", err)
	}
	if pings < 3 {
		t.Errorf("live lamp saw %d pings in a second, want several", pings)
	}
	// The drop is counted before the connection is forgotten.
	waitFor(t, "the live lamp to be the only one", func() bool { return ts.gw.Stats().Lamps.Load() == 1 })
}

func TestBroadcastReconnectAndManyLamps(t *testing.T) {
	ts := newServer(t, Options{}, nil)
	const n = 500
	lamps := make([]*websocket.Conn, n)
	for i := range lamps {
		lamps[i] = ts.lamp(t, secret, "[cc:0:?:?]")
	}
	p, _ := protocol.Manual(protocol.RGB{R: 255, G: 65, B: 174}, 0)
	ts.gw.SetDisplay(p)
	for i, c := range lamps {
		if got := next(t, c); got != "[cc:2:255,65,174:0]" {
			t.Fatalf("lamp %d got %q", i, got)
		}
	}
	waitFor(t, "every lamp synchronized", func() bool {
		for _, d := range ts.gw.Devices() {
			if !d.Synchronized {
				return false
			}
		}
		return true
	})
	lamps[0].Close()
	waitFor(t, "the closed lamp to leave", func() bool { return ts.gw.Stats().Lamps.Load() == n-1 })
	ts.lamp(t, secret, "[cc:2:255,65,174:0]")
}

// A lamp connected for longer than the write timeout still gets every
// packet: no write deadline from the handshake or a slow write lingers.
func TestLongLivedLampKeepsReceiving(t *testing.T) {
	ts := newServer(t, Options{WriteTimeout: 100 * time.Millisecond}, nil)
	c := ts.lamp(t, secret, "[cc:0:?:?]")
	for i := range 3 {
		time.Sleep(150 * time.Millisecond)
		p, _ := protocol.Manual(protocol.RGB{R: uint8(i)}, 0)
		ts.gw.SetDisplay(p)
		expect(t, c, p.String())
	}
	if n := ts.gw.Stats().SlowDropped.Load(); n != 0 {
		t.Errorf("%d lamps dropped as slow", n)
	}
}

func TestNoLostUpdatesUnderConcurrentJoins(t *testing.T) {
	// 20 lamps from one address join at once: above the per-address cap
	// of handshakes in flight, which is not what this test is about.
	ts := newServer(t, Options{MaxHandshakes: 100}, nil)
	var wg sync.WaitGroup
	final, _ := protocol.Weather(protocol.WeatherCloudy, protocol.MaxIntensity)
	wg.Go(func() {
		for i := range 200 {
			code := protocol.WeatherCode(1 + i%8)
			p, _ := protocol.Weather(code, protocol.ClampIntensity(code, protocol.Intensity(i)))
			ts.gw.SetDisplay(p)
		}
		ts.gw.SetDisplay(final)
	})
	conns := make([]*websocket.Conn, 20)
	for i := range conns {
		conns[i] = dial(t, ts.url, nil)
		send(t, conns[i], secret)
	}
	wg.Wait()
	for i, c := range conns {
		expect(t, c, "ok")
		for got := ""; got != final.String(); {
			got = next(t, c)
			if _, err := protocol.Parse(got); err != nil {
				t.Fatalf("lamp %d: %v", i, err)
			}
		}
	}
}

// smallBuffers makes the server's socket send buffer tiny so a lamp that
// stops reading blocks the server's writes quickly.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4096)
	}
	return c, err
}

func tinyReceiveDialer() *websocket.Dialer {
	return &websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048) })
			return nil
		}}
		return d.Dial(network, addr)
	}}
}

func TestSlowLampNeverDelaysOthers(t *testing.T) {
	ts := newServer(t, Options{WriteTimeout: 3 * time.Second, SendQueue: 1 << 20}, func(l net.Listener) net.Listener { return smallBuffers{l} })
	stuck := dial(t, ts.url, tinyReceiveDialer())
	send(t, stuck, secret) // and never read again
	waitFor(t, "the stuck lamp to authenticate", func() bool { return ts.gw.Stats().Lamps.Load() == 1 })
	stuckID := ts.gw.Devices()[0].ID
	good := []*websocket.Conn{ts.lamp(t, secret, "[cc:0:?:?]"), ts.lamp(t, secret, "[cc:0:?:?]")}

	// Commands are never coalesced: 200 KB of them overflow the stuck lamp's
	// socket buffers, so its writer blocks until the write deadline.
	for range 20000 {
		if _, err := ts.gw.Command(protocol.Reset(), []string{stuckID}); err != nil {
			t.Fatal(err)
		}
	}
	// While it is blocked, every display change still reaches the good
	// lamps, in order.
	for i := range 50 {
		p, _ := protocol.Manual(protocol.RGB{R: uint8(i)}, 0)
		ts.gw.SetDisplay(p)
		for _, c := range good {
			// 2 seconds is below the stuck lamp's 3 s write deadline: if it held
			// anyone up, this would fail.
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, b, err := c.ReadMessage()
			if err != nil || string(b) != p.String() {
				t.Fatalf("change %d: good lamp got %q, %v", i, b, err)
			}
		}
	}
	waitFor(t, "the stuck lamp to be dropped", func() bool { return ts.gw.Stats().SlowDropped.Load() >= 1 })
	// The drop is counted before the connection is forgotten.
	waitFor(t, "the 2 good lamps to be the only ones left", func() bool { return ts.gw.Stats().Lamps.Load() == 2 })
}

func TestSendQueueFullDropsLamp(t *testing.T) {
	ts := newServer(t, Options{WriteTimeout: 10 * time.Second, SendQueue: 4}, func(l net.Listener) net.Listener { return smallBuffers{l} })
	stuck := dial(t, ts.url, tinyReceiveDialer())
	send(t, stuck, secret)
	waitFor(t, "auth", func() bool { return ts.gw.Stats().Lamps.Load() == 1 })
	for i := 0; i < 5000 && ts.gw.Stats().SlowDropped.Load() == 0; i++ {
		ts.gw.Command(protocol.Update(), nil)
	}
	waitFor(t, "the lamp with a full queue to be dropped", func() bool { return ts.gw.Stats().Lamps.Load() == 0 })
}

// bucket opens the top level of a data directory, where the gateway keeps
// its records.
func bucket(t *testing.T, dir string) storage.Bucket {
	t.Helper()
	d, err := storage.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestCommandsAndDebug(t *testing.T) {
	records := bucket(t, t.TempDir())
	ts := newServer(t, Options{Named: []NamedSecret{{Name: "bedroom", Secret: "bedroom-secret"}}, Records: records}, nil)
	anon := ts.lamp(t, secret, "[cc:0:?:?]")
	bed := ts.lamp(t, "bedroom-secret", "[cc:0:?:?]")
	var anonID, bedID string
	for _, d := range ts.gw.Devices() {
		if d.Name == "bedroom" {
			bedID = d.ID
		} else {
			anonID = d.ID
		}
	}
	if anonID == "" || bedID == "" {
		t.Fatalf("devices %+v", ts.gw.Devices())
	}

	if _, err := ts.gw.Command(protocol.Reset(), []string{anonID, "d-nothere"}); err == nil || !strings.Contains(err.Error(), `"d-nothere"`) {
		t.Fatalf("unknown id: %v", err)
	}
	sent, err := ts.gw.Command(protocol.Update(), []string{"bedroom"})
	if err != nil || len(sent) != 1 || sent[0] != bedID {
		t.Fatalf("update by name: %v %v", sent, err)
	}
	expect(t, bed, "[cc:u:?:?]")
	waitFor(t, "phase updating", func() bool {
		for _, d := range ts.gw.Devices() {
			if d.ID == bedID {
				return d.Phase == "updating"
			}
		}
		return false
	})
	sent, _ = ts.gw.Command(protocol.Reset(), nil)
	if len(sent) != 2 {
		t.Errorf("reset to all sent to %v", sent)
	}
	expect(t, anon, "[cc:r:?:?]") // and not the update before it
	expect(t, bed, "[cc:r:?:?]")

	// Debug for the named lamp survives its reconnect; the anonymous one's does not.
	ts.gw.SetDebug(true, []string{bedID, anonID})
	expect(t, bed, "[cc:d:1:?]")
	expect(t, anon, "[cc:d:1:?]")
	bed.Close()
	anon.Close()
	waitFor(t, "both gone", func() bool { return ts.gw.Stats().Lamps.Load() == 0 })
	bed = ts.lamp(t, "bedroom-secret", "[cc:0:?:?]")
	expect(t, bed, "[cc:d:1:?]")
	anon = ts.lamp(t, secret, "[cc:0:?:?]")
	send(t, anon, "ping")
	expect(t, anon, "pong") // no debug packet came before the pong

	// Debug for all applies to lamps that connect later, and is kept on disk.
	ts.gw.SetDebug(true, nil)
	expect(t, anon, "[cc:d:1:?]")
	expect(t, bed, "[cc:d:1:?]")
	ts.lamp(t, secret, "[cc:0:?:?]")
	late := ts.lamp(t, secret, "[cc:0:?:?]")
	expect(t, late, "[cc:d:1:?]")
	again, err := New(Options{Secret: secret, Records: records, Logger: quiet}, protocol.Off())
	if err != nil || !again.debugAll {
		t.Errorf("debug for all not restored from disk: %v", err)
	}
	again.Shutdown(context.Background())
}

func TestRemoteAddressFromTrustedProxyOnly(t *testing.T) {
	proxies, _ := realip.New([]string{"127.0.0.1"})
	ts := newServer(t, Options{Proxies: proxies}, nil)
	h := http.Header{"X-Forwarded-For": {"198.51.100.7"}}
	c, _, err := websocket.DefaultDialer.Dial(ts.url, h)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	send(t, c, secret)
	expect(t, c, "ok")
	if d := ts.gw.Devices(); len(d) != 1 || d[0].RemoteAddr != "198.51.100.7" {
		t.Errorf("devices %+v", d)
	}

	untrusted := newServer(t, Options{}, nil)
	c2, _, err := websocket.DefaultDialer.Dial(untrusted.url, h)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	send(t, c2, secret)
	expect(t, c2, "ok")
	if d := untrusted.gw.Devices(); len(d) != 1 || !strings.HasPrefix(d[0].RemoteAddr, "127.0.0.1:") {
		t.Errorf("untrusted devices %+v", d)
	}
}

func TestConnectionCapAndPlainHTTP(t *testing.T) {
	ts := newServer(t, Options{MaxConnections: 1}, nil)
	ts.lamp(t, secret, "[cc:0:?:?]")
	_, resp, err := websocket.DefaultDialer.Dial(ts.url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("second connection: %v %v", resp, err)
	}
	r, err := http.Get(ts.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 400 || !strings.Contains(string(body), "lamp port") {
		t.Errorf("plain GET: %d %s", r.StatusCode, body)
	}
}

func TestShutdownSendsGoingAway(t *testing.T) {
	ts := newServer(t, Options{}, nil)
	a := ts.lamp(t, secret, "[cc:0:?:?]")
	b := ts.lamp(t, secret, "[cc:0:?:?]")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*websocket.Conn{a, b} {
		if code, _ := closeCode(t, c); code != websocket.CloseGoingAway {
			t.Errorf("close code %d, want 1001", code)
		}
	}
	_, resp, err := websocket.DefaultDialer.Dial(ts.url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("connect after shutdown: %v", err)
	}
}

func TestDeviceEvents(t *testing.T) {
	ts := newServer(t, Options{}, nil)
	sub := ts.bus.Subscribe(20, events.TypeDevice)
	c := ts.lamp(t, secret, "[cc:0:?:?]")
	c.Close()
	var seen []string
	for len(seen) < 4 {
		select {
		case e := <-sub.C:
			seen = append(seen, string(e.Data.(Info).Event))
		case <-time.After(5 * time.Second):
			t.Fatalf("events so far %v", seen)
		}
	}
	if fmt.Sprint(seen) != "[connected authenticated synchronized disconnected]" {
		t.Errorf("events %v", seen)
	}
}

func TestOfflineLampsAreRememberedUntilTheyReturn(t *testing.T) {
	ts := newServer(t, Options{Named: []NamedSecret{{Name: "bedroom", Secret: "bedroom-secret"}}}, nil)
	bed := ts.lamp(t, "bedroom-secret", "[cc:0:?:?]")
	anon := ts.lamp(t, secret, "[cc:0:?:?]")
	refused := dial(t, ts.url, nil)
	send(t, refused, "wrong")
	closeCode(t, refused)
	if n := len(ts.gw.Offline()); n != 0 {
		t.Fatalf("%d offline lamps before any left (a refused lamp is not one)", n)
	}
	bed.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "reboot"), time.Now().Add(time.Second))
	anon.Close()
	waitFor(t, "both lamps offline", func() bool { return len(ts.gw.Offline()) == 2 })
	for _, o := range ts.gw.Offline() {
		if o.Phase != "offline" || o.DisconnectedAt == nil || o.Reason == "" || !o.Authenticated {
			t.Errorf("offline entry %+v", o)
		}
		if o.Name == "bedroom" && !strings.Contains(o.Reason, "1001") {
			t.Errorf("bedroom's reason %q", o.Reason)
		}
	}
	if d := ts.gw.Devices(); len(d) != 0 {
		t.Errorf("offline lamps listed as connected: %+v", d)
	}
	ts.lamp(t, "bedroom-secret", "[cc:0:?:?]")
	if o := ts.gw.Offline(); len(o) != 1 || o[0].Name != "" {
		t.Errorf("after bedroom came back: %+v", o)
	}
}
