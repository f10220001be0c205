package main

import (
	"bufio"
	"bytes"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudcloud/cloudcloud/internal/loadtest"
	"github.com/cloudcloud/cloudcloud/internal/natstest"
)

func runCLI(args []string, environ []string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, environ, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		args   []string
		env    []string
		code   int
		outHas string
		errHas string
	}{
		{[]string{"version"}, nil, 0, "cloudcloud ", ""},
		{[]string{"help"}, nil, 0, "cloudcloud simulate", ""},
		{[]string{"frobnicate"}, nil, 2, "", `unknown command "frobnicate"`},
		{[]string{"serve", "-device.ping_interval", "soon"}, nil, 1, "", "device.ping_interval"},
		{[]string{"-web.listne", ":1"}, nil, 1, "", "web.listen"},
		{[]string{"serve", "-config", "/nonexistent/cloudcloud.toml"}, nil, 1, "", "/nonexistent/cloudcloud.toml"},
		{[]string{"serve"}, []string{"CLOUDCLOUD_DEVICE_PING_INTERVAL=1m", "CLOUDCLOUD_DEVICE_KEEPALIVE_TIMEOUT=30s"}, 1, "", "ping_interval"},
		{[]string{"simulate"}, nil, 1, "", "-secret is required"},
		{[]string{"simulate", "-secret", "x", "-lamp", "bed room"}, nil, 1, "", `-lamp: "bed room" may hold only a-z, 0-9`},
		{[]string{"simulate", "-secret", "x", "-count", "0"}, nil, 1, "", "-count 0: simulate 1-100 lamps"},
		{[]string{"simulate", "-secret", "x", "-lamp", "abcdefghijklmnopqrstuvwxyz012345", "-count", "2"}, nil, 1, "", "-lamp with -count"},
		{[]string{"simulate", "-secret", "x", "-url", "http://localhost/"}, nil, 1, "", "ws://"},
		{[]string{"healthcheck", "-url", "http://127.0.0.1:1/healthz"}, nil, 1, "", "not answering"},
		{[]string{"bench", "-url", "ws://a/,ws://b/", "-api", "http://a"}, nil, 1, "", "-url names 2 nodes and -api 1"},
		{[]string{"bench", "-url", "ws://a/,ws://b/", "-api", "http://a,http://b", "-secret", "s", "-password", "p", "-kill"}, nil, 1, "", "-kill needs -cluster"},
		{[]string{"bench", "-cluster", "3"}, nil, 1, "", "-cluster needs -nats"},
	}
	for _, tt := range tests {
		code, out, errOut := runCLI(tt.args, tt.env)
		if code != tt.code || !strings.Contains(out, tt.outHas) || !strings.Contains(errOut, tt.errHas) {
			t.Errorf("cloudcloud %v: code %d, stdout %q, stderr %q; want code %d, stdout with %q, stderr with %q",
				tt.args, code, out, errOut, tt.code, tt.outHas, tt.errHas)
		}
	}
}

func TestStampedVersion(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	tests := []struct {
		name string
		info *debug.BuildInfo
		want string
	}{
		{"go build in a git checkout", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261201115640-86de437a1b2c"}, Settings: vcs("86de437a1b2c3d4e", "false")}, "v0.0.0-20261201115640-86de437a1b2c"},
		{"go install of a tag", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}}, "v1.2.0"},
		{"changed tree", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261201115640-86de437a1b2c+dirty"}, Settings: vcs("86de437a1b2c3d4e", "true")}, "v0.0.0-20261201115640-86de437a1b2c+dirty"},
		{"devel with a revision, modified", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("86de437a1b2c3d4e", "true")}, "(devel) 86de437, modified"},
		{"devel with a revision", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("86de437a1b2c3d4e", "false")}, "(devel) 86de437"},
		{"go run, no VCS information", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "(devel)"},
		{"no build information", nil, "dev"},
	}
	for _, tt := range tests {
		if got := stampedVersion(tt.info); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestBinaryVersion builds the binary twice: plainly, it prints what Go
// stamped into it (never "dev"); with -ldflags -X, the given version.
func TestBinaryVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	plain, stamped := filepath.Join(dir, "plain"), filepath.Join(dir, "stamped")
	for _, build := range [][]string{{"build", "-o", plain, "."}, {"build", "-ldflags", "-X main.version=v9.9.9-test", "-o", stamped, "."}} {
		if out, err := exec.Command("go", build...).CombinedOutput(); err != nil {
			t.Fatalf("go %v: %v\n%s", build, err, out)
		}
	}
	info, err := buildinfo.ReadFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	for bin, want := range map[string]string{plain: "cloudcloud " + stampedVersion(info) + "\n", stamped: "cloudcloud v9.9.9-test\n"} {
		out, err := exec.Command(bin, "version").Output()
		if err != nil {
			t.Fatalf("%s version: %v", bin, err)
		}
		if string(out) != want || string(out) == "cloudcloud dev\n" {
			t.Errorf("%s version printed %q, want %q", filepath.Base(bin), out, want)
		}
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestBinarySIGTERM runs the real binary: first start prints the generated
// secrets, a lamp connects, SIGTERM sends it close 1001 and the process
// exits 0 within a few seconds; healthcheck answers while it runs.
func TestBinarySIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "cloudcloud")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	webAddr, devAddr := freePort(t), freePort(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "serve", "-web.listen", webAddr, "-device.listen", devAddr, "-storage.dir", dir)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	secretRE := regexp.MustCompile(`generated the lamp secret.* secret=(\S+)`)
	passwordRE := regexp.MustCompile(`generated a UI password.* password=(\S+)`)
	var secret, password string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		if m := secretRE.FindStringSubmatch(line); m != nil {
			secret = m[1]
		}
		if m := passwordRE.FindStringSubmatch(line); m != nil {
			password = m[1]
		}
		if strings.Contains(line, "cloudcloud is running") {
			break
		}
	}
	if secret == "" || password == "" {
		t.Fatal("the first start did not print the generated secret and password")
	}
	go func() {
		for sc.Scan() {
		}
	}()

	if code, _, errOut := runCLI([]string{"healthcheck", "-url", "http://" + webAddr + "/healthz"}, nil); code != 0 {
		t.Errorf("healthcheck: %d %s", code, errOut)
	}

	c, _, err := websocket.DefaultDialer.Dial("ws://"+devAddr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.WriteMessage(websocket.TextMessage, []byte(secret))
	for _, want := range []string{"ok", "[cc:0:?:?]"} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, b, err := c.ReadMessage(); err != nil || string(b) != want {
			t.Fatalf("handshake: %q %v", b, err)
		}
	}

	cmd.Process.Signal(syscall.SIGTERM)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Errorf("lamp got %v on SIGTERM, want close 1001", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10s after SIGTERM")
	}
}

func TestSimulatedLamps(t *testing.T) {
	for _, tt := range []struct {
		lamp  string
		count int
		want  string
	}{
		{"", 1, ""},
		{"Bedroom", 1, "bedroom"},
		{"", 3, "sim-1 sim-2 sim-3"},
		{"bed", 2, "bed-1 bed-2"},
	} {
		ids, err := simulatedLamps(tt.lamp, tt.count)
		if err != nil || strings.Join(ids, " ") != tt.want {
			t.Errorf("simulatedLamps(%q, %d) = %v, %v; want %s", tt.lamp, tt.count, ids, err, tt.want)
		}
	}
}

// TestBinaryBenchCluster runs the cluster mode of the real binary at a
// small scale: on a NATS server run here, it starts two nodes and two lamp
// clients as children of itself, kills one node, and writes real figures.
func TestBinaryBenchCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "cloudcloud")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ns := natstest.Start(t, 0, t.TempDir())
	out := filepath.Join(t.TempDir(), "cluster.json")
	cmd := exec.Command(bin, "bench", "-cluster", "2", "-nats", ns.ClientURL(), "-lamps", "10", "-changes", "3", "-every", "20ms", "-settle", "50ms", "-inflight", "5", "-kill", "-json", out)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	done := make(chan []byte, 1)
	go func() { b, _ := cmd.CombinedOutput(); done <- b }()
	var log []byte
	select {
	case log = <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("bench -cluster still runs after 60s:\n%s", <-done)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("no JSON result (%v):\n%s", err, log)
	}
	var res loadtest.ClusterResult
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if res.Nodes != 2 || res.Lamps != 10 || res.MissedFinal != 0 || res.FanoutP50MS <= 0 || len(res.PerNode) != 2 {
		t.Errorf("figures: %s\n%s", b, log)
	}
	if k := res.Kill; k == nil || k.Lamps != 5 || k.NotBack != 0 || k.AllBackMS <= 0 {
		t.Errorf("kill step: %+v\n%s", res.Kill, log)
	}
}
