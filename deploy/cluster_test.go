package deploy

import (
	"bufio"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudcloud/cloudcloud/internal/config"
	"github.com/cloudcloud/cloudcloud/internal/natstest"
)

// The cluster example: three nodes, NATS and nginx in one Compose file.
const (
	composeFile      = "deploy/cluster/compose.yaml"
	composeDir       = "deploy/cluster"
	natsClientPort   = "4222" // the nats image's client port
	nodeEnvNodeName  = "CLOUDCLOUD_CLUSTER_NODE"
	composeSecretRef = `^\$\{[A-Z_][A-Z0-9_]*:\?[^}]+\}$` // ${NAME:?message}: required, from .env
)

// composeVar is a Compose variable reference: ${NAME}, ${NAME:-default},
// ${NAME-default}, ${NAME:?error}, ${NAME?error}, or $NAME.
var composeVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?][^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// interpolate replaces Compose variable references with vars, as Compose
// does with the shell's environment and .env; $$ is a literal $.
func interpolate(s string, vars map[string]string) (string, error) {
	var missing []string
	parts := strings.Split(s, "$$")
	for i, p := range parts {
		parts[i] = composeVar.ReplaceAllStringFunc(p, func(ref string) string {
			m := composeVar.FindStringSubmatch(ref)
			name := m[1] + m[2]
			v, ok := vars[name]
			if !ok {
				missing = append(missing, name)
			}
			return v
		})
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("%q uses %v, which the test does not set", s, missing)
	}
	return strings.Join(parts, "$"), nil
}

// dockerfileEnv is the ENV of the Dockerfile's final stage, which every
// container of the image starts with.
func dockerfileEnv(t *testing.T) []string {
	t.Helper()
	ins, err := parseDockerfile(readRepoFile(t, "Dockerfile"))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	var env []string
	for _, in := range ins {
		switch in.Cmd {
		case "FROM":
			env = nil
		case "ENV":
			env = append(env, strings.Fields(in.Args)...)
		}
	}
	return env
}

// composeMount splits a short volume syntax "source:target[:mode]".
func composeMount(s string) (source, target string) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 {
		return "", s
	}
	return parts[0], parts[1]
}

func TestComposeCluster(t *testing.T) {
	doc, err := parseYAML(readRepoFile(t, composeFile))
	if err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	services := doc.get("services")
	if services == nil || services.Kind != yamlMap {
		t.Fatalf("%s has no services mapping", composeFile)
	}
	declared := doc.get("volumes")
	webPort, devicePort := defaultPorts(t)
	// Values for the variables the file takes from .env.
	vars := map[string]string{"CLOUDCLOUD_WEB_PASSWORD": "compose-test-password", "CLOUDCLOUD_DEVICE_AUTH_SECRET": "compose-test-secret"}

	var natsName, nginxName string
	var nodes []string
	for _, name := range services.Keys {
		s := services.Map[name]
		image := s.get("image")
		switch {
		case s.get("build") != nil:
			nodes = append(nodes, name)
		case image != nil && strings.HasPrefix(image.Scalar, "nats:"):
			natsName = name
		case image != nil && strings.HasPrefix(image.Scalar, "nginx:"):
			nginxName = name
		default:
			t.Errorf("%s:%d: service %s is neither a cloudcloud node (build:), nats: nor nginx:", composeFile, s.Line, name)
		}
		for _, v := range s.get("volumes").strings() {
			if src, _ := composeMount(v); src != "" && !strings.HasPrefix(src, ".") && !strings.HasPrefix(src, "/") && declared.get(src) == nil {
				t.Errorf("%s: service %s mounts the volume %s, which the top-level volumes do not declare", composeFile, name, src)
			}
		}
	}
	if natsName == "" || nginxName == "" || len(nodes) < 2 {
		t.Fatalf("%s: want a nats service, an nginx service and at least two cloudcloud nodes; have nats %q, nginx %q, nodes %q", composeFile, natsName, nginxName, nodes)
	}

	t.Run("NATS with JetStream on a volume", func(t *testing.T) {
		cmd := services.Map[natsName].get("command").strings()
		if !slices.Contains(cmd, "-js") && !slices.Contains(cmd, "--jetstream") {
			t.Errorf("service %s: command %q has no -js: cloudcloud keeps everything in JetStream", natsName, cmd)
		}
		store := ""
		for i, a := range cmd {
			if (a == "-sd" || a == "--store_dir") && i+1 < len(cmd) {
				store = cmd[i+1]
			}
		}
		var targets []string
		for _, v := range services.Map[natsName].get("volumes").strings() {
			_, target := composeMount(v)
			targets = append(targets, target)
		}
		if store == "" || !slices.Contains(targets, store) {
			t.Errorf("service %s: the JetStream store (-sd %q) is not on one of its volumes %q: the state would die with the container", natsName, store, targets)
		}
	})

	// The nodes' environments by name, as written and as configuration.
	raw := map[string]map[string]string{}
	cfgs := map[string]config.Config{}
	t.Run("nodes", func(t *testing.T) {
		base := dockerfileEnv(t)
		nodeNames := map[string]string{}
		volumes := map[string]string{}
		for _, name := range nodes {
			s := services.Map[name]
			where := fmt.Sprintf("%s: service %s", composeFile, name)
			context := s.get("build", "context")
			if context == nil {
				context = s.get("build") // build: <context>
			}
			if dir := filepath.Join(repoRoot, composeDir, context.Scalar); dir != repoRoot {
				t.Errorf("%s: builds %s, not the repository root with the Dockerfile", where, dir)
			}
			env := s.get("environment")
			if env == nil || env.Kind != yamlMap {
				t.Errorf("%s: environment must be a mapping NAME: value", where)
				continue
			}
			raw[name] = map[string]string{}
			var assignments []string
			for _, k := range env.Keys {
				raw[name][k] = env.Map[k].Scalar
				v, err := interpolate(env.Map[k].Scalar, vars)
				if err != nil {
					t.Errorf("%s: %s: %v", where, k, err)
				}
				assignments = append(assignments, k+"="+v)
			}
			cfg := checkEnv(t, where+" environment (after the Dockerfile's ENV)", append(slices.Clone(base), assignments...))
			cfgs[name] = cfg

			if cfg.Cluster.Node == "" {
				t.Errorf("%s: no %s: the node would be named after its container's random host name", where, nodeEnvNodeName)
			} else if other, dup := nodeNames[cfg.Cluster.Node]; dup {
				t.Errorf("%s: cluster.node %q is also %s's: node names must be unique", where, cfg.Cluster.Node, other)
			}
			nodeNames[cfg.Cluster.Node] = name
			u, err := url.Parse(cfg.Cluster.NATSURL)
			if err != nil || u.Hostname() != natsName || u.Port() != natsClientPort {
				t.Errorf("%s: cluster.nats_url %q; want nats://%s:%s, the NATS service", where, cfg.Cluster.NATSURL, natsName, natsClientPort)
			}
			for _, k := range []string{"CLOUDCLOUD_WEB_PASSWORD", "CLOUDCLOUD_DEVICE_AUTH_SECRET"} {
				if !regexp.MustCompile(composeSecretRef).MatchString(raw[name][k]) {
					t.Errorf("%s: %s is %q; every node needs the same one, from .env as ${NAME:?message}, and no secret belongs in the file", where, k, raw[name][k])
				}
			}
			if len(cfg.Web.TrustedProxies) == 0 {
				t.Errorf("%s: web.trusted_proxies is empty: every lamp and login would appear to come from nginx", where)
			}
			var storage bool
			for _, v := range s.get("volumes").strings() {
				src, target := composeMount(v)
				if target != cfg.Storage.Dir {
					continue
				}
				storage = true
				if other, dup := volumes[src]; dup {
					t.Errorf("%s: the volume %s at storage.dir is also %s's", where, src, other)
				}
				volumes[src] = name
			}
			if !storage {
				t.Errorf("%s: no volume at storage.dir %s", where, cfg.Storage.Dir)
			}
			if p := s.get("ports"); p != nil {
				t.Errorf("%s: publishes ports %q; the nodes are reached through nginx only", where, p.strings())
			}
			if !slices.Contains(s.get("depends_on").strings(), natsName) {
				t.Errorf("%s: does not depend on %s", where, natsName)
			}
			for _, limit := range []string{"soft", "hard"} {
				if n, err := strconv.Atoi(s.get("ulimits", "nofile", limit).strings()[0]); err != nil || n < 4096 {
					t.Errorf("%s: ulimits nofile %s must be at least 4096: every lamp is an open file", where, limit)
				}
			}
		}
		// The nodes are one server: the same settings but their names.
		for _, name := range nodes[1:] {
			a, b := maps.Clone(raw[nodes[0]]), maps.Clone(raw[name])
			delete(a, nodeEnvNodeName)
			delete(b, nodeEnvNodeName)
			if !maps.Equal(a, b) {
				t.Errorf("%s: services %s and %s have different environments (apart from %s):\n%v\n%v", composeFile, nodes[0], name, nodeEnvNodeName, a, b)
			}
		}
	})

	t.Run("nginx in front of every node", func(t *testing.T) {
		s := services.Map[nginxName]
		var site string
		for _, v := range s.get("volumes").strings() {
			src, target := composeMount(v)
			if strings.HasPrefix(target, "/etc/nginx/conf.d/") && strings.HasSuffix(target, ".conf") {
				site = path.Join(composeDir, src)
			}
		}
		if site == "" {
			t.Fatalf("service %s mounts no site configuration into /etc/nginx/conf.d/", nginxName)
		}
		top := checkNginxSite(t, site, false)

		for _, name := range nodes {
			if !slices.Contains(s.get("depends_on").strings(), name) {
				t.Errorf("service %s does not depend on %s: it resolves the node names when it starts", nginxName, name)
			}
		}
		ports := map[string]bool{} // the upstreams' cloudcloud ports
		for _, u := range nginxChildren(top, "upstream") {
			var hosts []string
			for _, srv := range nginxChildren(u.Block, "server") {
				host, port, _ := net.SplitHostPort(srv.Args[0])
				hosts = append(hosts, host)
				ports[port] = true
				params := strings.Join(srv.Args[1:], " ")
				if !strings.Contains(params, "max_fails=") || !strings.Contains(params, "fail_timeout=") {
					t.Errorf("%s:%d: server %s without max_fails= and fail_timeout=: a stopped node would be asked again at once", site, srv.Line, srv.Args[0])
				}
			}
			if got, want := slices.Sorted(slices.Values(hosts)), slices.Sorted(slices.Values(nodes)); !slices.Equal(got, want) {
				t.Errorf("%s: upstream %s has the servers %q; want each node of %s once: %q", site, u.Args[0], hosts, composeFile, want)
			}
		}
		if !ports[webPort] || !ports[devicePort] {
			t.Errorf("%s: want an upstream of the nodes' web port %s and one of their lamp port %s; have %v", site, webPort, devicePort, slices.Collect(maps.Keys(ports)))
		}

		var listens []string
		for _, srv := range nginxChildren(top, "server") {
			for _, l := range nginxChildren(srv.Block, "listen") {
				listens = append(listens, l.Args[0])
			}
			next := nginxChildren(srv.Block, "proxy_next_upstream")
			if len(next) == 0 || !slices.Contains(next[0].Args, "error") || !slices.Contains(next[0].Args, "timeout") {
				t.Errorf("%s:%d: a server without proxy_next_upstream error timeout: a request to a stopped node would fail instead of going to another", site, srv.Line)
			}
		}
		var published []string
		for _, p := range s.get("ports").strings() {
			i := strings.LastIndexByte(p, ':')
			published = append(published, p[i+1:])
		}
		slices.Sort(listens)
		slices.Sort(published)
		if !slices.Equal(listens, published) {
			t.Errorf("service %s publishes the ports %q, but %s listens on %q", nginxName, published, site, listens)
		}
	})
}

// rewriteClusterNginx returns the cluster example with its listen ports
// moved to the test's (listen: port -> address) and the nodes' names to
// the test's nodes (upstream: node:port -> address). As with
// rewriteNginxExample, whatever the test does not move is an error.
func rewriteClusterNginx(example string, listen, upstream map[string]string) (string, error) {
	out := example
	for old, new := range listen {
		if !strings.Contains(out, "listen "+old+";") {
			return "", fmt.Errorf("the cluster's nginx.conf does not listen on %s", old)
		}
		out = strings.ReplaceAll(out, "listen "+old+";", "listen "+new+";")
	}
	for old, new := range upstream {
		out = strings.ReplaceAll(out, "server "+old+" ", "server "+new+" ")
		out = strings.ReplaceAll(out, "server "+old+";", "server "+new+";")
	}
	ds, err := parseNginx(out)
	if err != nil {
		return "", err
	}
	moved := slices.Concat(slices.Collect(maps.Values(listen)), slices.Collect(maps.Values(upstream)))
	var problems []string
	for _, srv := range nginxChildren(ds, "server") {
		for _, l := range nginxChildren(srv.Block, "listen") {
			if !slices.Contains(moved, l.Args[0]) {
				problems = append(problems, fmt.Sprintf("line %d: listen %s", l.Line, l.Args[0]))
			}
		}
	}
	for _, u := range nginxChildren(ds, "upstream") {
		for _, srv := range nginxChildren(u.Block, "server") {
			if !slices.Contains(moved, srv.Args[0]) {
				problems = append(problems, fmt.Sprintf("line %d: server %s", srv.Line, srv.Args[0]))
			}
		}
	}
	if len(problems) > 0 {
		return "", fmt.Errorf("the cluster's nginx.conf has addresses the test does not move:\n%s", strings.Join(problems, "\n"))
	}
	return out, nil
}

// lampsConnected reads cloudcloud_lamps_connected from a node's /metrics.
func lampsConnected(t *testing.T, srv testServer) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+srv.addrs.Web+"/metrics", nil)
	req.SetBasicAuth(srv.username, srv.password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "cloudcloud_lamps_connected "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("/metrics: cloudcloud_lamps_connected %q", v)
			}
			return int(n)
		}
	}
	t.Fatalf("/metrics (%s) has no cloudcloud_lamps_connected", resp.Status)
	return 0
}

// TestClusterNginxEndToEnd runs the cluster's nginx.conf in front of as
// many real nodes as it names, on one NATS server: a lamp connects through
// nginx, a change through nginx's UI port reaches it, a browser signed in
// there is let in by every node round robin sends it to; when the node it is
// on stops, the UI keeps answering, and the lamp reconnects through nginx
// to another node and gets the state changed meanwhile.
func TestClusterNginxEndToEnd(t *testing.T) {
	nginxPath, err := exec.LookPath("nginx")
	if err != nil {
		t.Skip("nginx is not on PATH (apt-get install nginx); the cluster example is then checked only by TestComposeCluster")
	}
	example := readRepoFile(t, composeDir+"/nginx.conf")
	top, err := parseNginx(example)
	if err != nil {
		t.Fatal(err)
	}
	webPort, devicePort := defaultPorts(t)
	ns := natstest.Start(t, 0, t.TempDir())

	// One test node per name in the upstreams, in order.
	var names []string
	nodes := map[string]testServer{}
	upstream := map[string]string{}
	for _, u := range nginxChildren(top, "upstream") {
		for _, srv := range nginxChildren(u.Block, "server") {
			name, port, _ := net.SplitHostPort(srv.Args[0])
			if _, ok := nodes[name]; !ok {
				names = append(names, name)
				nodes[name] = startServerWith(t, func(c *config.Config) {
					c.Cluster.NATSURL, c.Cluster.Node = ns.ClientURL(), name
				})
			}
			switch port {
			case webPort:
				upstream[srv.Args[0]] = nodes[name].addrs.Web
			case devicePort:
				upstream[srv.Args[0]] = nodes[name].addrs.Device
			}
		}
	}
	ui, lampPort := freeLoopbackAddr(t), freeLoopbackAddr(t)
	site, err := rewriteClusterNginx(example, map[string]string{webPort: ui, devicePort: lampPort}, upstream)
	if err != nil {
		t.Fatal(err)
	}
	runNginx(t, nginxPath, t.TempDir(), site, ui, lampPort)
	any := nodes[names[0]] // for the login, which every node shares

	put := func(color string) {
		t.Helper()
		resp, body := do(t, http.DefaultClient, http.MethodPut, "http://"+ui+"/api/state", `{"mode":"manual","color":"`+color+`"}`, &any)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT /api/state through nginx: %s %s", resp.Status, body)
		}
	}
	connect := func() *testLamp {
		t.Helper()
		dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second, NetDialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}
		conn, _, err := dialer.Dial("ws://"+lampPort+"/", nil)
		if err != nil {
			t.Fatalf("lamp: handshake through nginx: %v", err)
		}
		l := readLamp(t, conn)
		if err := conn.WriteMessage(websocket.TextMessage, []byte(any.secret)); err != nil {
			t.Fatal(err)
		}
		l.expect(t, "ok", 10*time.Second)
		return l
	}
	// holder is the one node the lamp is on, of those not stopped.
	holder := func(stopped string) string {
		t.Helper()
		for range 100 {
			var on []string
			for _, name := range names {
				if name != stopped && lampsConnected(t, nodes[name]) > 0 {
					on = append(on, name)
				}
			}
			if len(on) == 1 {
				return on[0]
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatal("no single node holds the lamp")
		return ""
	}

	lamp := connect()
	lamp.expect(t, "[cc:0:?:?]", 10*time.Second) // a fresh cluster is off
	put("#102030")
	lamp.expect(t, "[cc:2:16,32,48:0]", 10*time.Second)

	// A browser signs in through nginx's UI port; round robin sends its
	// next requests to every node, and each lets it in.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	form := url.Values{"username": {any.username}, "password": {any.password}, "next": {"/"}}
	req, _ := http.NewRequest(http.MethodPost, "http://"+ui+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin") // as a browser sends it
	resp, err := browser.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in through nginx: %s", resp.Status)
	}
	for i := range 2 * len(names) {
		if resp, body := do(t, browser, http.MethodGet, "http://"+ui+"/api/state", "", nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d of a browser signed in through nginx: %s %s", i+1, resp.Status, body)
		}
	}

	first := holder("")
	nodes[first].stop()
	select {
	case <-lamp.err:
	case <-time.After(10 * time.Second):
		t.Fatalf("the lamp's connection through nginx stays open after its node %s stopped", first)
	}

	// More requests than nodes: round robin sends some to the stopped one,
	// which nginx must pass on to the next.
	for range 2 * len(names) {
		if resp, body := do(t, http.DefaultClient, http.MethodGet, "http://"+ui+"/healthz", "", nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /healthz through nginx with %s stopped: %s %s", first, resp.Status, body)
		}
	}
	put("#405060")
	lamp = connect()
	lamp.expect(t, "[cc:2:64,80,96:0]", 10*time.Second)
	holder(first)
}
