package server

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudcloud/cloudcloud/internal/atomicfile"
	"github.com/cloudcloud/cloudcloud/internal/config"
)

// rawConn opens a TCP connection the test drives byte by byte.
func rawConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByServer reports whether the server closes c within 10 s; anything
// it answers first is returned.
func closedByServer(t *testing.T, c net.Conn) (bool, string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false, string(b)
	}
	return true, string(b)
}

func shortLimits(t *testing.T) {
	t.Helper()
	saved := limits
	limits.readHeader, limits.read, limits.write, limits.idle = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
	limits.shutdownGrace = 200 * time.Millisecond
	t.Cleanup(func() { limits = saved })
}

// Half-sent bodies and idle keep-alive connections are closed by the
// server on both ports, even when the client never goes away.
func TestStalledAndIdleConnectionsAreClosed(t *testing.T) {
	shortLimits(t)
	r := start(t, t.TempDir(), nil)
	lamp := lampConnect(t, r.addrs.Device, r.creds.DeviceSecret)
	for _, port := range []struct{ name, addr string }{{"web", r.addrs.Web}, {"lamp", r.addrs.Device}} {
		t.Run(port.name+" half-sent body", func(t *testing.T) {
			c := rawConn(t, port.addr)
			fmt.Fprintf(c, "PUT /api/state HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"mode\":")
			if closed, _ := closedByServer(t, c); !closed {
				t.Error("a half-sent body kept its connection open")
			}
		})
		t.Run(port.name+" idle keep-alive", func(t *testing.T) {
			c := rawConn(t, port.addr)
			fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			if closed, got := closedByServer(t, c); !closed || !strings.HasPrefix(got, "HTTP/1.1 ") {
				t.Errorf("closed %v after %q", closed, got)
			}
		})
	}
	// A lamp is not an HTTP request: the timeouts above do not end it.
	lamp.WriteMessage(websocket.TextMessage, []byte("ping"))
	lamp.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, b, err := lamp.ReadMessage(); err != nil || string(b) != "pong" {
		t.Errorf("lamp after the HTTP timeouts: %q %v", b, err)
	}
}

func TestOversizedHeadersGet431(t *testing.T) {
	r := start(t, t.TempDir(), nil)
	for _, addr := range []string{r.addrs.Web, r.addrs.Device} {
		req, _ := http.NewRequest("GET", "http://"+addr+"/healthz", nil)
		req.Header.Set("X-Padding", strings.Repeat("a", 64<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("%s: 64 KiB of headers got %d, want 431", addr, resp.StatusCode)
		}
	}
}

// Idle connections beyond the caps get 503 at once; on the lamp port plain
// HTTP connections count too, and the other port stays reachable.
func TestConnectionCapsOnBothPorts(t *testing.T) {
	r := start(t, t.TempDir(), func(c *config.Config) {
		c.Web.MaxConnections = 3
		c.Device.MaxConnections = 2
	})
	// Connections that say nothing make room for a newcomer.
	for range 3 {
		rawConn(t, r.addrs.Web)
	}
	noKeepAlive := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := noKeepAlive.Get("http://" + r.addrs.Web + "/healthz")
	if err != nil {
		t.Fatalf("healthz past silent connections: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("healthz past silent connections: %d", resp.StatusCode)
	}
	// Connections that have spoken (here: kept alive after one request)
	// keep their places.
	for _, port := range []struct {
		addr string
		n    int
	}{{r.addrs.Web, 3}, {r.addrs.Device, 2}} {
		for range port.n {
			c := rawConn(t, port.addr)
			fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	// Over the cap: 503. A silent connection the test did not make (a
	// client of an earlier test still redialling a port number the kernel
	// has since given this server) is evicted for a newcomer, as it should
	// be; the connection let in then holds its slot, and the next one must
	// be refused.
	for _, addr := range []string{r.addrs.Web, r.addrs.Device} {
		var got []string
		for range 3 {
			c := rawConn(t, addr)
			fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("%s over the cap: %v", addr, err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), "max_connections") {
				got = nil
				break
			}
			got = append(got, fmt.Sprintf("%d %q", resp.StatusCode, body))
		}
		if got != nil {
			t.Errorf("%s over the cap, three times: %v", addr, got)
		}
	}
}

// A web request whose body never finishes does not hold up the stop: its
// connection is closed and Run returns nil (shutdown checks).
func TestShutdownClosesStuckWebRequests(t *testing.T) {
	saved := limits
	limits.shutdownGrace = 200 * time.Millisecond
	t.Cleanup(func() { limits = saved })
	r := start(t, t.TempDir(), nil)
	c := rawConn(t, r.addrs.Web)
	fmt.Fprintf(c, "PUT /api/state HTTP/1.1\r\nHost: x\r\nAuthorization: Basic %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"mode\":",
		base64.StdEncoding.EncodeToString([]byte("admin:"+r.creds.WebPassword)))
	r.shutdown(t)
	if closed, _ := closedByServer(t, c); !closed {
		t.Error("the stuck request's connection is still open after shutdown")
	}
}

// Temporary files of writes a kill interrupted are gone after a start.
func TestStartRemovesTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "firmware"), 0o700); err != nil {
		t.Fatal(err)
	}
	stale := []string{filepath.Join(dir, ".state.json.tmp-4242"), filepath.Join(dir, "firmware", ".state.json.tmp-1")}
	for _, p := range stale {
		if err := os.WriteFile(p, []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	start(t, dir, nil)
	for _, p := range stale {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s survived the start: %v", p, err)
		}
	}
}

// On a full disk a change is answered 507 saying so, takes no effect
// anywhere (the state, the debug switch, what new lamps get), and shows in
// /metrics.
func TestFullDiskIsSaidAndChangesNothing(t *testing.T) {
	r := start(t, t.TempDir(), nil)
	web := "http://" + r.addrs.Web
	call := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, web+path, strings.NewReader(body))
		req.SetBasicAuth("admin", r.creds.WebPassword)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	_, before := call("GET", "/api/state", "")
	restore := atomicfile.SetFault(func(p string) error { return &fs.PathError{Op: "write", Path: p, Err: syscall.ENOSPC} })
	for _, req := range []struct{ method, path, body string }{
		{"PUT", "/api/state", `{"mode":"manual","color":"#ff0000"}`},
		{"POST", "/api/commands", `{"command":"debug","on":true}`},
	} {
		status, body := call(req.method, req.path, req.body)
		if status != http.StatusInsufficientStorage || !strings.Contains(body, "is full") || !strings.Contains(body, "nothing was changed") {
			t.Errorf("%s %s on a full disk: %d %s", req.method, req.path, status, body)
		}
	}
	restore()
	if _, after := call("GET", "/api/state", ""); after != before {
		t.Errorf("state changed by a failed PUT:\n%s\n%s", before, after)
	}
	lamp := lampConnect(t, r.addrs.Device, r.creds.DeviceSecret)
	lamp.WriteMessage(websocket.TextMessage, []byte("ping"))
	lamp.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, b, err := lamp.ReadMessage(); err != nil || string(b) != "pong" {
		t.Errorf("a new lamp got %q %v, want pong and no debug packet", b, err)
	}
	if _, devices := call("GET", "/api/devices", ""); !strings.Contains(devices, `"debug":false`) || strings.Contains(devices, `"debug":true`) {
		t.Errorf("devices after a failed debug switch: %s", devices)
	}
	resp, err := http.Get(web + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`cloudcloud_storage_errors_total\{kind="no_space"\} [1-9]`).Match(m) {
		t.Error("/metrics does not count the full disk")
	}
}
