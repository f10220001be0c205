package deploy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudcloud/cloudcloud/internal/config"
	"github.com/cloudcloud/cloudcloud/internal/firmware/firmwaretest"
)

// nginxRewrite says where the test runs what deploy/nginx.conf puts on this
// machine's real ports and certificate paths.
type nginxRewrite struct {
	HTTPS, HTTP string // nginx's listen addresses for 443 and 80
	Web, Device string // cloudcloud's web and device addresses
	Cert, Key   string // the certificate and its key
}

// rewriteNginxExample returns the example with its ports and paths moved to
// the test's. The example stays the source: every string replaced must be
// in it, and afterwards nothing may point at a real port or file any more,
// so a change to the example that the test does not follow fails here
// rather than testing something else.
func rewriteNginxExample(example string, r nginxRewrite) (string, error) {
	replacements := []struct{ old, new string }{
		{"listen 443 ssl;", "listen " + r.HTTPS + " ssl;"},
		{"listen [::]:443 ssl;", "# IPv6 listen left out by the test"},
		{"listen 80;", "listen " + r.HTTP + ";"},
		{"listen [::]:80;", "# IPv6 listen left out by the test"},
		{"server 127.0.0.1:8000;", "server " + r.Web + ";"},
		{"server 127.0.0.1:8080;", "server " + r.Device + ";"},
		{"/etc/letsencrypt/live/cloud.example.org/fullchain.pem", r.Cert},
		{"/etc/letsencrypt/live/cloud.example.org/privkey.pem", r.Key},
	}
	out := example
	for _, rep := range replacements {
		if !strings.Contains(out, rep.old) {
			return "", fmt.Errorf("deploy/nginx.conf no longer contains %q, which the test moves to a loopback port or temporary file; update rewriteNginxExample with the example", rep.old)
		}
		out = strings.ReplaceAll(out, rep.old, rep.new)
	}
	ds, err := parseNginx(out)
	if err != nil {
		return "", fmt.Errorf("deploy/nginx.conf after rewriting: %w", err)
	}
	var problems []string
	var walk func(parent string, ds []*nginxDirective)
	walk = func(parent string, ds []*nginxDirective) {
		for _, d := range ds {
			arg := ""
			if len(d.Args) > 0 {
				arg = d.Args[0]
			}
			var allowed []string
			switch {
			case d.Name == "listen":
				allowed = []string{r.HTTPS, r.HTTP}
			case d.Name == "ssl_certificate":
				allowed = []string{r.Cert}
			case d.Name == "ssl_certificate_key":
				allowed = []string{r.Key}
			case d.Name == "server" && parent == "upstream":
				allowed = []string{r.Web, r.Device}
			}
			if allowed != nil && !slices.Contains(allowed, arg) {
				problems = append(problems, fmt.Sprintf("line %d: %s %s", d.Line, d.Name, strings.Join(d.Args, " ")))
			}
			walk(d.Name, d.Block)
		}
	}
	walk("", ds)
	if len(problems) > 0 {
		return "", fmt.Errorf("deploy/nginx.conf has listen addresses, certificates or upstreams the test does not rewrite; update rewriteNginxExample:\n%s", strings.Join(problems, "\n"))
	}
	return out, nil
}

func TestRewriteNginxExample(t *testing.T) {
	example := readRepoFile(t, "deploy/nginx.conf")
	r := nginxRewrite{HTTPS: "127.0.0.1:1443", HTTP: "127.0.0.1:1080", Web: "127.0.0.1:1800", Device: "127.0.0.1:1808", Cert: "/tmp/c.pem", Key: "/tmp/k.pem"}
	if _, err := rewriteNginxExample(example, r); err != nil {
		t.Fatalf("the example itself: %v", err)
	}
	tests := []struct{ name, old, new, wantErr string }{
		{"a listen the test does not know", "listen 443 ssl;", "listen 8443 ssl;\n    listen 443 ssl;", "listen 8443 ssl"},
		{"a moved certificate", "/etc/letsencrypt/live/cloud.example.org/privkey.pem", "/etc/ssl/private/cloud.key", "privkey.pem"},
		{"another upstream", "server 127.0.0.1:8000;", "server 127.0.0.1:8000;\n    server 10.0.0.2:8000;", "10.0.0.2:8000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rewriteNginxExample(strings.ReplaceAll(example, tt.old, tt.new), r)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("rewrite error = %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}
}

// nginxLocation is a location block with the server block it is in.
type nginxLocation struct {
	server, loc *nginxDirective
}

// effective returns a directive's arguments as nginx applies them in loc:
// set in the location, else in its server, else at the top of the file
// (which Debian includes inside http).
func effective(top []*nginxDirective, l nginxLocation, name string) [][]string {
	for _, level := range [][]*nginxDirective{l.loc.Block, l.server.Block, top} {
		if ds := nginxChildren(level, name); len(ds) > 0 {
			var args [][]string
			for _, d := range ds {
				args = append(args, d.Args)
			}
			return args
		}
	}
	return nil
}

func TestNginxExample(t *testing.T) {
	top := checkNginxSite(t, "deploy/nginx.conf", true)
	for _, u := range nginxChildren(top, "upstream") {
		if n := len(nginxChildren(u.Block, "server")); n != 1 {
			t.Errorf("line %d: upstream %s has %d servers; the example is one cloudcloud on this machine", u.Line, strings.Join(u.Args, " "), n)
		}
	}
}

// checkNginxSite checks what every nginx example in front of cloudcloud
// must do (file is its path from the repository root): upstreams on
// cloudcloud's default ports, the lamps' WebSocket with its upgrade headers
// and long timeouts, unbuffered Server-Sent Events, the forwarded-for
// headers, room for firmware uploads. With tls, the lamps' and the UI's
// locations must be in servers that listen with ssl. It returns the file's
// directives.
func checkNginxSite(t *testing.T, file string, tls bool) []*nginxDirective {
	t.Helper()
	top, err := parseNginx(readRepoFile(t, file))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	webPort, devicePort := defaultPorts(t)

	upstreamPort := map[string]string{} // upstream name -> cloudcloud port
	for _, u := range nginxChildren(top, "upstream") {
		servers := nginxChildren(u.Block, "server")
		if len(u.Args) != 1 || len(servers) == 0 {
			t.Fatalf("%s:%d: an upstream with one name and its servers is expected", file, u.Line)
		}
		for _, s := range servers {
			port := ""
			if len(s.Args) > 0 {
				_, port, _ = net.SplitHostPort(s.Args[0])
			}
			if (port != webPort && port != devicePort) || (upstreamPort[u.Args[0]] != "" && upstreamPort[u.Args[0]] != port) {
				t.Errorf("%s:%d: upstream %s points at %s; its servers must all be cloudcloud's web port %s or all its lamp port %s (the defaults)",
					file, s.Line, u.Args[0], strings.Join(s.Args, " "), webPort, devicePort)
			}
			upstreamPort[u.Args[0]] = port
		}
	}

	var (
		lampSocket, lampFirmware, ui, events bool
		maxBody                              = int64(config.Default().Firmware.MaxSize)
	)
	for _, server := range nginxChildren(top, "server") {
		tlsServer := !tls
		for _, l := range nginxChildren(server.Block, "listen") {
			tlsServer = tlsServer || slices.Contains(l.Args, "ssl")
		}
		for _, loc := range nginxChildren(server.Block, "location") {
			l := nginxLocation{server: server, loc: loc}
			pass := nginxChildren(loc.Block, "proxy_pass")
			if len(pass) == 0 {
				continue
			}
			where := fmt.Sprintf("%s:%d: location %s", file, loc.Line, strings.Join(loc.Args, " "))
			port := upstreamPort[strings.TrimPrefix(pass[0].Args[0], "http://")]
			if port == "" {
				t.Errorf("%s: proxy_pass %s is not one of the upstreams", where, pass[0].Args[0])
				continue
			}

			headers := map[string]string{}
			for _, h := range effective(top, l, "proxy_set_header") {
				if len(h) == 2 {
					headers[strings.ToLower(h[0])] = h[1]
				}
			}
			for name, value := range map[string]string{"host": "$host", "x-real-ip": "$remote_addr", "x-forwarded-for": "$proxy_add_x_forwarded_for"} {
				if headers[name] != value {
					t.Errorf("%s: proxy_set_header %s is %q, want %s (proxy_set_header is not inherited by a location that sets its own)", where, name, headers[name], value)
				}
			}
			timeout := func(name string) time.Duration {
				args := effective(top, l, name)
				if len(args) == 0 {
					return 60 * time.Second // nginx's default
				}
				d, err := nginxDuration(strings.Join(args[0], " "))
				if err != nil {
					t.Errorf("%s: %s: %v", where, name, err)
				}
				return d
			}
			version := effective(top, l, "proxy_http_version")
			buffering := effective(top, l, "proxy_buffering")

			switch {
			case port == devicePort && slices.Equal(loc.Args, []string{"=", "/firmware.bin"}):
				// cloudcloud checks the lamp's login: nginx must pass it on
				// and not ask for one of its own.
				if _, ok := headers["authorization"]; ok {
					t.Errorf("%s: proxy_set_header Authorization replaces the lamp's login, which cloudcloud checks", where)
				}
				if ab := effective(top, l, "auth_basic"); len(ab) > 0 && ab[0][0] != "off" {
					t.Errorf("%s: auth_basic makes nginx ask for its own login and take the lamp's; cloudcloud checks the lamp's", where)
				}
				lampFirmware = lampFirmware || tlsServer
			case port == devicePort:
				if headers["upgrade"] != "$http_upgrade" || (headers["connection"] != "$connection_upgrade" && headers["connection"] != "upgrade") {
					t.Errorf("%s: a WebSocket needs proxy_set_header Upgrade $http_upgrade and Connection $connection_upgrade", where)
				}
				if len(version) == 0 || version[0][0] != "1.1" {
					t.Errorf("%s: a WebSocket needs proxy_http_version 1.1", where)
				}
				// Lamps are pinged every 15s; nginx's 60s default would
				// leave little margin, so want more than that.
				for _, name := range []string{"proxy_read_timeout", "proxy_send_timeout"} {
					if d := timeout(name); d <= 60*time.Second {
						t.Errorf("%s: %s is %s; idle lamps need more than 60s", where, name, d)
					}
				}
				lampSocket = lampSocket || tlsServer
			case port == webPort && len(loc.Args) > 0 && strings.HasPrefix(loc.Args[len(loc.Args)-1], "/api/events"):
				if len(buffering) == 0 || buffering[0][0] != "off" {
					t.Errorf("%s: Server-Sent Events need proxy_buffering off", where)
				}
				if d := timeout("proxy_read_timeout"); d <= 60*time.Second {
					t.Errorf("%s: proxy_read_timeout is %s; a quiet event stream needs more than 60s", where, d)
				}
				events = true
			case port == webPort:
				ui = ui || tlsServer
			}
			if port == webPort {
				size := int64(1 << 20) // nginx's default client_max_body_size
				if args := nginxChildren(server.Block, "client_max_body_size"); len(args) > 0 {
					if size, err = nginxSize(args[0].Args[0]); err != nil {
						t.Errorf("%s:%d: client_max_body_size: %v", file, args[0].Line, err)
					}
				}
				if size < maxBody {
					t.Errorf("%s: client_max_body_size is %d bytes, less than firmware.max_size (%d): uploads would fail in nginx", where, size, maxBody)
				}
			}
		}
	}
	scheme := "an"
	if tls {
		scheme = "an https"
	}
	for what, ok := range map[string]bool{
		scheme + " location proxying the lamps' WebSocket": lampSocket,
		scheme + " location = /firmware.bin for the lamps": lampFirmware,
		scheme + " location for the UI":                    ui,
		"a location for /api/events (Server-Sent Events)":  events,
	} {
		if !ok {
			t.Errorf("%s has no %s", file, what)
		}
	}
	return top
}

// nginxMain is the nginx.conf the test runs: the example is included as is
// into a main configuration that keeps every file nginx writes in the test's
// directory.
var nginxMain = template.Must(template.New("nginx").Parse(`{{if .Root}}user root;
{{end}}worker_processes 1;
worker_shutdown_timeout 2s;
error_log {{.Dir}}/error.log info;
events {
    worker_connections 128;
}
http {
    access_log {{.Dir}}/access.log;
    client_body_temp_path {{.Dir}}/tmp/body;
    proxy_temp_path {{.Dir}}/tmp/proxy;
    fastcgi_temp_path {{.Dir}}/tmp/fastcgi;
    uwsgi_temp_path {{.Dir}}/tmp/uwsgi;
    scgi_temp_path {{.Dir}}/tmp/scgi;
    include {{.Site}};
}
`))

// runningNginx is an nginx started by the test.
type runningNginx struct {
	https, http string // its listen addresses
	roots       *x509.CertPool
	dir         string
}

// startNginx runs nginx with the rewritten example in front of srv until the
// test ends.
func startNginx(t *testing.T, nginxPath string, srv testServer) runningNginx {
	t.Helper()
	dir := t.TempDir()
	cert, key, roots := writeSelfSignedCert(t, dir)
	n := runningNginx{https: freeLoopbackAddr(t), http: freeLoopbackAddr(t), roots: roots, dir: dir}
	site, err := rewriteNginxExample(readRepoFile(t, "deploy/nginx.conf"), nginxRewrite{
		HTTPS: n.https, HTTP: n.http, Web: srv.addrs.Web, Device: srv.addrs.Device, Cert: cert, Key: key,
	})
	if err != nil {
		t.Fatal(err)
	}
	runNginx(t, nginxPath, dir, site, n.https, n.http)
	return n
}

// runNginx runs nginx with site (a file of server blocks, as included into
// Debian's http block) from dir until the test ends, and waits until it
// listens on every one of addrs.
func runNginx(t *testing.T, nginxPath, dir, site string, addrs ...string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	sitePath, mainPath := filepath.Join(dir, "cloudcloud.conf"), filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(sitePath, []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	var main bytes.Buffer
	// As root, nginx's workers would switch to "nobody", who cannot read
	// the test's private temporary directory.
	if err := nginxMain.Execute(&main, map[string]any{"Root": os.Geteuid() == 0, "Dir": dir, "Site": sitePath}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mainPath, main.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-p", dir, "-c", mainPath, "-g", "daemon off; pid " + filepath.Join(dir, "nginx.pid") + ";"}

	// nginx -t first: its message names the line of a broken example.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, nginxPath, append([]string{"-t"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t on the example (as %s): %v\n%s", sitePath, err, out)
	}
	if strings.Contains(string(out), "[warn]") {
		t.Errorf("nginx -t warns about the example:\n%s", out)
	}

	logFile, err := os.Create(filepath.Join(dir, "nginx.out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginxPath, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logFile.Close() }()
	logs := func() string {
		a, _ := os.ReadFile(filepath.Join(dir, "nginx.out"))
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return string(a) + string(b)
	}
	t.Cleanup(func() {
		// SIGQUIT is nginx's graceful stop; worker_shutdown_timeout bounds it.
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("nginx logs:\n%s", logs())
		}
	})

	// nginx is ready once it has written its pid file, which it does after
	// binding its ports (a port only answering may be another test's
	// server that took it meanwhile, while nginx stopped on "bind()
	// failed"), and the ports answer.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "nginx.pid")); err == nil {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("nginx exited at start: %v\n%s", err, logs())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx wrote no pid file within 10s:\n%s", logs())
		}
	}
	for _, addr := range addrs {
		for {
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				conn.Close()
				break
			}
			select {
			case err := <-exited:
				t.Fatalf("nginx exited at start: %v\n%s", err, logs())
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("nginx does not listen on %s after 10s:\n%s", addr, logs())
			}
		}
	}
}

// client is an HTTP client that reaches the example's host names through
// the test's nginx and trusts its certificate. It does not follow redirects.
func (n runningNginx) client() *http.Client {
	var d net.Dialer
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: n.roots},
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if strings.HasSuffix(addr, ":80") {
					return d.DialContext(ctx, "tcp", n.http)
				}
				return d.DialContext(ctx, "tcp", n.https)
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// testLamp is a lamp connected over wss; a goroutine reads its frames, so
// it answers the server's pings the whole time.
type testLamp struct {
	conn   *websocket.Conn
	frames chan string
	err    chan error // the read error that ended the connection
}

// dialLamp connects a lamp to wss://lamps.example.org/ through nginx from
// 127.0.0.2, so that its address differs from nginx's 127.0.0.1.
func dialLamp(t *testing.T, n runningNginx) *testLamp {
	t.Helper()
	dialer := websocket.Dialer{
		HandshakeTimeout: 10 * time.Second,
		TLSClientConfig:  &tls.Config{RootCAs: n.roots},
		NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
			return d.DialContext(ctx, "tcp", n.https)
		},
	}
	conn, resp, err := dialer.Dial("wss://"+lampHost+"/", nil)
	if err != nil {
		status := ""
		if resp != nil {
			status = resp.Status
		}
		t.Fatalf("lamp: wss handshake through nginx: %v %s", err, status)
	}
	return readLamp(t, conn)
}

// readLamp starts reading the frames of a lamp's connection, until the
// connection ends or the test does.
func readLamp(t *testing.T, conn *websocket.Conn) *testLamp {
	l := &testLamp{conn: conn, frames: make(chan string, 64), err: make(chan error, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				l.err <- err
				return
			}
			select {
			case l.frames <- string(msg):
			case <-time.After(10 * time.Second):
				l.err <- fmt.Errorf("the test did not take frame %q for 10s", msg)
				return
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return l
}

// expect waits for the frame want, skipping display packets before it
// (weather reports may produce some); anything else fails.
func (l *testLamp) expect(t *testing.T, want string, within time.Duration) {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case got := <-l.frames:
			if got == want {
				return
			}
			if !strings.HasPrefix(got, "[cc:") {
				t.Fatalf("lamp got %q, want %q", got, want)
			}
			t.Logf("lamp got %q while waiting for %q", got, want)
		case err := <-l.err:
			t.Fatalf("lamp connection ended while waiting for %q: %v", want, err)
		case <-timeout:
			t.Fatalf("lamp did not get %q within %s", want, within)
		}
	}
}

// do sends a request to nginx, with basic auth when srv is given, and
// returns the answer and its body.
func do(t *testing.T, c *http.Client, method, url, body string, srv *testServer) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if srv != nil {
		req.SetBasicAuth(srv.username, srv.password)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s through nginx: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("%s %s: read the body: %v", method, url, err)
	}
	return resp, string(b)
}

// dialFrom dials nginx from ip as a lamp reaching base (https or http) does,
// TLS included.
func (n runningNginx) dialFrom(ip, base string) firmwaretest.DialFunc {
	return func(ctx context.Context, _ string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		if strings.HasPrefix(base, "http://") {
			return d.DialContext(ctx, "tcp", n.http)
		}
		td := tls.Dialer{NetDialer: &d, Config: &tls.Config{RootCAs: n.roots, ServerName: lampHost}}
		return td.DialContext(ctx, "tcp", n.https)
	}
}

// upload posts img as the firmware field with basic auth.
func upload(t *testing.T, c *http.Client, url string, img []byte, srv *testServer) (*http.Response, string) {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	part, err := w.CreateFormFile("firmware", "firmware.bin")
	if err != nil {
		t.Fatal(err)
	}
	part.Write(img)
	w.Close()
	req, err := http.NewRequest(http.MethodPost, url, &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", w.FormDataContentType())
	req.SetBasicAuth(srv.username, srv.password)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s through nginx: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestNginxEndToEnd(t *testing.T) {
	nginxPath, err := exec.LookPath("nginx")
	if err != nil {
		t.Skip("nginx is not on PATH (apt-get install nginx); the example is then checked only by TestNginxExample")
	}
	srv := startServer(t)
	n := startNginx(t, nginxPath, srv)
	c := n.client()
	ui, lamps := "https://"+uiHost, "https://"+lampHost

	lamp := dialLamp(t, n)
	if err := lamp.conn.WriteMessage(websocket.TextMessage, []byte(srv.secret)); err != nil {
		t.Fatalf("lamp: send the secret: %v", err)
	}
	lamp.expect(t, "ok", 10*time.Second)
	lamp.expect(t, "[cc:0:?:?]", 10*time.Second) // a fresh install is off

	t.Run("a change reaches the lamp over wss", func(t *testing.T) {
		resp, body := do(t, c, http.MethodPut, ui+"/api/state", `{"mode":"manual","color":"#102030"}`, &srv)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT /api/state over https: %s %s", resp.Status, body)
		}
		lamp.expect(t, "[cc:2:16,32,48:0]", 10*time.Second)
	})

	t.Run("the UI loads over https", func(t *testing.T) {
		resp, body := do(t, c, http.MethodGet, ui+"/healthz", "", nil)
		if resp.StatusCode != http.StatusOK || strings.TrimSpace(body) != "ok" {
			t.Errorf("GET /healthz over https: %s %q", resp.Status, body)
		}
		html := func(resp *http.Response) bool {
			return resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html")
		}
		page, pageBody := do(t, c, http.MethodGet, ui+"/", "", &srv)
		if html(page) {
			return
		}
		login, loginBody := do(t, c, http.MethodGet, ui+"/login", "", nil)
		if !html(login) {
			t.Errorf("neither GET / (with basic auth) nor GET /login answers an HTML page over https:\n/: %s %.200q\n/login: %s %.200q",
				page.Status, pageBody, login.Status, loginBody)
		}
	})

	t.Run("the lamp's address is the client's, not nginx's", func(t *testing.T) {
		resp, body := do(t, c, http.MethodGet, ui+"/api/devices", "", &srv)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /api/devices over https: %s %s", resp.Status, body)
		}
		var devices []struct {
			RemoteAddr string `json:"remote_addr"`
		}
		if err := json.Unmarshal([]byte(body), &devices); err != nil {
			t.Fatalf("GET /api/devices: %v\n%s", err, body)
		}
		var seen []string
		for _, d := range devices {
			host := d.RemoteAddr
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			if host == "127.0.0.2" {
				return
			}
			seen = append(seen, d.RemoteAddr)
		}
		t.Errorf("no device has the lamp's address 127.0.0.2; remote_addr values: %q (127.0.0.1 is nginx: is X-Forwarded-For passed on and web.trusted_proxies set?)", seen)
	})

	t.Run("firmware on the lamp host name, with the lamp's login", func(t *testing.T) {
		img := firmwaretest.Build(firmwaretest.Image{Version: "9.1", Payload: 100 << 10})
		if resp, body := upload(t, c, ui+"/api/firmware", img, &srv); resp.StatusCode != http.StatusOK {
			t.Fatalf("upload through nginx: %s %s", resp.Status, body)
		}
		login := url.UserPassword("lamp", srv.secret)
		for _, base := range []string{lamps, "http://" + lampHost} {
			withLogin := func(login *url.Userinfo) string {
				u, _ := url.Parse(base + "/firmware.bin")
				u.User = login
				return u.String()
			}
			a, err := firmwaretest.IDFDownload(context.Background(), c, withLogin(login))
			if err != nil {
				t.Fatal(err)
			}
			if a.Status != http.StatusOK || !bytes.Equal(a.Body, img) || a.Requests != 2 {
				t.Errorf("ESP-IDF's updater, %s/firmware.bin: %d, %d bytes, %d requests; want the image after the 401 challenge", base, a.Status, len(a.Body), a.Requests)
			}
			a, err = firmwaretest.ArduinoDownload(context.Background(), n.dialFrom("127.0.0.1", base), withLogin(login), nil)
			if err != nil {
				t.Fatal(err)
			}
			if a.Status != http.StatusOK || !bytes.Equal(a.Body, img) {
				t.Errorf("Arduino's updater, %s/firmware.bin: %d, %d bytes", base, a.Status, len(a.Body))
			}
			a, err = firmwaretest.ArduinoDownload(context.Background(), n.dialFrom("127.0.0.1", base), withLogin(nil), nil)
			if err != nil {
				t.Fatal(err)
			}
			if a.Status != http.StatusUnauthorized || !strings.HasPrefix(a.Header.Get("WWW-Authenticate"), "Basic ") || bytes.Contains(a.Body, img[:64]) {
				t.Errorf("%s/firmware.bin without a login: %d, WWW-Authenticate %q; want cloudcloud's 401 and challenge", base, a.Status, a.Header.Get("WWW-Authenticate"))
			}
		}
		// Wrong logins slow down the lamp's address, not nginx's.
		wrong, right := url.UserPassword("lamp", "guess"), url.UserPassword("lamp", srv.secret)
		arduino := func(ip string, login *url.Userinfo) int {
			u, _ := url.Parse(lamps + "/firmware.bin")
			u.User = login
			a, err := firmwaretest.ArduinoDownload(context.Background(), n.dialFrom(ip, lamps), u.String(), nil)
			if err != nil {
				t.Fatal(err)
			}
			return a.Status
		}
		if code := arduino("127.0.0.2", wrong); code != http.StatusUnauthorized {
			t.Fatalf("a wrong login: %d", code)
		}
		if code := arduino("127.0.0.2", right); code != http.StatusTooManyRequests {
			t.Errorf("the right login at once after a wrong one, same lamp: %d, want 429", code)
		}
		if code := arduino("127.0.0.3", right); code != http.StatusOK {
			t.Errorf("another lamp right after: %d, want 200 (is X-Forwarded-For passed on?)", code)
		}

		resp, _ := do(t, c, http.MethodGet, "http://"+uiHost+"/", "", nil)
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusMovedPermanently || loc != ui+"/" {
			t.Errorf("GET http://%s/: %s to %q; want a redirect to %s/", uiHost, resp.Status, loc, ui)
		}
	})

	t.Run("events stream through unbuffered", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, ui+"/api/events", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(srv.username, srv.password)
		stream := *c
		stream.Timeout = 0 // the stream stays open; ctx ends it
		resp, err := stream.Do(req)
		if err != nil {
			t.Fatalf("GET /api/events through nginx: %v", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			t.Skip("GET /api/events answers 404: the event stream is not wired in yet")
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /api/events: %s", resp.Status)
		}
		lines := make(chan string, 64)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				select {
				case lines <- sc.Text():
				case <-ctx.Done():
					return
				}
			}
		}()
		if resp, body := do(t, c, http.MethodPut, ui+"/api/state", `{"mode":"manual","color":"#405060"}`, &srv); resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT /api/state: %s %s", resp.Status, body)
		}
		timeout := time.After(10 * time.Second)
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatal("the event stream ended before the state event")
				}
				if strings.HasPrefix(line, "data:") && strings.Contains(line, "#405060") {
					return
				}
			case <-timeout:
				t.Fatal("no state event with #405060 within 10s: is nginx buffering /api/events?")
			}
		}
	})

	t.Run("an idle lamp stays connected", func(t *testing.T) {
		// Longer than the server's keepalive timeout: the lamp only answers
		// pings, which must pass through nginx both ways, and nginx must not
		// cut the quiet connection.
		idle := srv.keepalive + time.Second
		select {
		case err := <-lamp.err:
			t.Fatalf("lamp connection ended while idle: %v", err)
		case <-time.After(idle):
		}
		if err := lamp.conn.WriteMessage(websocket.TextMessage, []byte("ping")); err != nil {
			t.Fatalf("lamp: send ping after %s idle: %v", idle, err)
		}
		lamp.expect(t, "pong", 10*time.Second)
	})
}
