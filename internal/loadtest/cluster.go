package loadtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudcloud/cloudcloud/protocol"
)

// The cluster mode spreads lamps over several nodes of one cluster (docs/
// cluster.md). One process cannot hold tens of thousands of lamps within
// an open-file limit, so the lamps of each node live in a client process
// of their own (ClientFlag); the coordinator (Cluster) makes the changes
// through the first node and merges what the clients measured. Coordinator
// and clients share the machine's clock: a client measures each lamp's
// packet against the time the coordinator stamped the change.

// ClientFlag is the hidden argument with which `cloudcloud bench`
// re-executes itself as a lamp client (Client).
const ClientFlag = "-lamp-client"

// Node is one cloudcloud node under load.
type Node struct {
	Name  string
	Lamps string       // its lamp port, ws://127.0.0.1:8080/
	API   string       // its web port, http://127.0.0.1:8000
	Kill  func() error // ends the node at once; nil when the tool did not start it
}

// ClusterOptions say what to measure on a cluster.
type ClusterOptions struct {
	Nodes              []Node
	Secret             string
	Username, Password string
	LampsPerNode       int
	InFlight           int           // handshakes in flight at once, per client
	Sources            int           // lamps per loopback source address (default 5000)
	Changes            int           // display changes, all through Nodes[0]
	Every              time.Duration // one change every ...
	Settle             time.Duration // wait after connecting
	Kill               bool          // then kill the last node and wait for its lamps to be back
	// Client starts the lamp client for node i: a process of its own
	// running Client, whose stdin and stdout it returns.
	Client func(ctx context.Context, i int) (stdin io.WriteCloser, stdout io.ReadCloser, err error)
	Log    io.Writer
}

// ClusterResult holds a cluster run's figures, durations in milliseconds.
type ClusterResult struct {
	Nodes            int          `json:"nodes"`
	LampsPerNode     int          `json:"lamps_per_node"`
	Lamps            int          `json:"lamps"`
	ConnectFailures  int          `json:"connect_failures"`
	ConnectTotalMS   float64      `json:"connect_total_ms"`
	Changes          int          `json:"changes"`
	EveryMS          float64      `json:"every_ms"`
	APIP50MS         float64      `json:"api_p50_ms"`
	FanoutP50MS      float64      `json:"fanout_p50_ms"` // a change until every lamp of every node has it
	FanoutP99MS      float64      `json:"fanout_p99_ms"`
	FanoutMaxMS      float64      `json:"fanout_max_ms"`
	LampLatencyP50MS float64      `json:"lamp_latency_p50_ms"` // a change until one lamp has it
	LampLatencyP99MS float64      `json:"lamp_latency_p99_ms"`
	MissedFinal      int          `json:"missed_final"`
	PerNode          []NodeResult `json:"per_node"`
	Kill             *KillResult  `json:"kill,omitempty"`
}

// NodeResult is what one node spent.
type NodeResult struct {
	Name        string  `json:"name"`
	Lamps       int     `json:"lamps"`
	CPUMS       float64 `json:"cpu_per_change_ms"` // beyond its idle CPU
	IdleCPUMS   float64 `json:"idle_cpu_ms_per_s"` // with its lamps connected and nothing changing
	RSSLampsKiB int64   `json:"rss_with_lamps_kib"`
}

// KillResult is the kill step: the last node is killed and its lamps
// reconnect to the others.
type KillResult struct {
	Node      string  `json:"node"`
	Lamps     int     `json:"lamps"`
	AllBackMS float64 `json:"all_back_ms"` // until the last lamp that came back is on another node with the current state
	BackP50MS float64 `json:"back_p50_ms"`
	BackP99MS float64 `json:"back_p99_ms"`
	NotBack   int     `json:"not_back"`
}

// clientJob is the coordinator's first line to a client.
type clientJob struct {
	URLs     []string `json:"urls"` // its node first; the others to reconnect to
	Secret   string   `json:"secret"`
	Lamps    int      `json:"lamps"`
	InFlight int      `json:"in_flight"`
	Sources  int      `json:"sources"`
	Subnet   int      `json:"subnet"` // the lamps dial from 127.<Subnet>.0.x
	Changes  int      `json:"changes"`
}

// clientCommand is every later line to a client.
type clientCommand struct {
	Report   []int64 `json:"report,omitempty"`    // unix ns of each change: measure against these
	KilledAt int64   `json:"killed_at,omitempty"` // unix ns: the node was killed; report when all lamps are back
}

// clientAnswer is a client's line to the coordinator.
type clientAnswer struct {
	Error string `json:"error,omitempty"`
	// After connecting.
	Connected int   `json:"connected,omitempty"`
	Failures  int   `json:"failures,omitempty"`
	ConnectNS int64 `json:"connect_ns,omitempty"`
	// After Report.
	LatenciesUS []int64 `json:"latencies_us,omitempty"` // per lamp per change
	CompleteNS  []int64 `json:"complete_ns,omitempty"`  // per change: when its last lamp had it, 0 if not all did
	MissedFinal int     `json:"missed_final,omitempty"`
	// After KilledAt.
	BackUS  []int64 `json:"back_us,omitempty"` // per lamp back on another node
	NotBack int     `json:"not_back,omitempty"`
}

// Cluster connects LampsPerNode lamps to every node, makes the changes
// through the first, and measures; with Kill it then kills the last node.
func Cluster(ctx context.Context, o ClusterOptions) (ClusterResult, error) {
	if o.InFlight <= 0 {
		o.InFlight = 200
	}
	if o.Sources <= 0 {
		o.Sources = 5000
	}
	if o.Every <= 0 {
		o.Every = 200 * time.Millisecond
	}
	if o.Settle <= 0 {
		o.Settle = 2 * time.Second
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	res := ClusterResult{Nodes: len(o.Nodes), LampsPerNode: o.LampsPerNode, Changes: o.Changes, EveryMS: ms(o.Every)}
	if len(o.Nodes) == 0 || o.Changes <= 0 {
		return res, errors.New("the cluster mode needs nodes and at least one change")
	}
	if o.Kill && (len(o.Nodes) < 2 || o.Nodes[len(o.Nodes)-1].Kill == nil) {
		return res, errors.New("the kill step needs two nodes or more, started by the tool")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	api := &run{o: Options{API: o.Nodes[0].API, Username: o.Username, Password: o.Password}, starts: make([]time.Time, o.Changes)}
	// A known state first, so no lamp's first packet is a change.
	if _, err := api.put(-1); err != nil {
		return res, err
	}

	clients := make([]*client, len(o.Nodes))
	for i, n := range o.Nodes {
		in, out, err := o.Client(ctx, i)
		if err != nil {
			return res, fmt.Errorf("lamp client for %s: %w", n.Name, err)
		}
		c := &client{in: json.NewEncoder(in), closeIn: in, out: bufio.NewScanner(out)}
		c.out.Buffer(nil, 256<<20)
		defer in.Close()
		urls := []string{n.Lamps}
		for j := range o.Nodes {
			if j != i {
				urls = append(urls, o.Nodes[j].Lamps)
			}
		}
		if err := c.in.Encode(clientJob{URLs: urls, Secret: o.Secret, Lamps: o.LampsPerNode, InFlight: o.InFlight, Sources: o.Sources, Subnet: 10 + i, Changes: o.Changes}); err != nil {
			return res, fmt.Errorf("lamp client for %s: %w", n.Name, err)
		}
		clients[i] = c
	}
	fmt.Fprintf(o.Log, "connecting %d lamps to each of %d nodes...\n", o.LampsPerNode, len(o.Nodes))
	for i, c := range clients {
		a, err := c.answer()
		if err != nil {
			return res, fmt.Errorf("lamp client for %s: %w", o.Nodes[i].Name, err)
		}
		res.Lamps += a.Connected
		res.ConnectFailures += a.Failures
		res.ConnectTotalMS = max(res.ConnectTotalMS, ms(time.Duration(a.ConnectNS)))
		res.PerNode = append(res.PerNode, NodeResult{Name: o.Nodes[i].Name, Lamps: a.Connected})
	}
	fmt.Fprintf(o.Log, "%d lamps connected, %d failures\n", res.Lamps, res.ConnectFailures)
	// CPU time while nothing changes (pings, pongs, timers) is measured
	// over the settle time and taken off the changes' share.
	cpu := func() ([]float64, time.Time, error) {
		at := time.Now()
		out := make([]float64, len(o.Nodes))
		for i, n := range o.Nodes {
			m, err := nodeMetrics(n.API)
			if err != nil {
				return nil, at, fmt.Errorf("%s: %w", n.Name, err)
			}
			out[i] = m["process_cpu_seconds_total"]
			res.PerNode[i].RSSLampsKiB = int64(m["process_resident_memory_bytes"] / 1024)
		}
		return out, at, nil
	}
	idle0, idleAt, err := cpu()
	if err != nil {
		return res, err
	}
	time.Sleep(o.Settle)
	cpu0, at0, err := cpu()
	if err != nil {
		return res, err
	}
	var apiTimes []time.Duration
	tick := time.NewTicker(o.Every)
	defer tick.Stop()
	for k := range o.Changes {
		if k > 0 {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return res, ctx.Err()
			}
		}
		d, err := api.put(k)
		if err != nil {
			return res, err
		}
		apiTimes = append(apiTimes, d)
	}
	res.APIP50MS = ms(pct(apiTimes, 50))
	starts := make([]int64, o.Changes)
	for k, s := range api.starts {
		starts[k] = s.UnixNano()
	}
	complete := make([]int64, o.Changes)
	var lat []time.Duration
	for i, c := range clients {
		if err := c.in.Encode(clientCommand{Report: starts}); err != nil {
			return res, fmt.Errorf("lamp client for %s: %w", o.Nodes[i].Name, err)
		}
		a, err := c.answer()
		if err != nil {
			return res, fmt.Errorf("lamp client for %s: %w", o.Nodes[i].Name, err)
		}
		for _, us := range a.LatenciesUS {
			lat = append(lat, time.Duration(us)*time.Microsecond)
		}
		for k, at := range a.CompleteNS {
			if at == 0 || complete[k] < 0 {
				complete[k] = -1 // a lamp never had it
			} else {
				complete[k] = max(complete[k], at)
			}
		}
		res.MissedFinal += a.MissedFinal
	}
	cpu1, at1, err := cpu()
	if err != nil {
		return res, err
	}
	for i := range o.Nodes {
		idle := (cpu0[i] - idle0[i]) / at0.Sub(idleAt).Seconds()
		res.PerNode[i].IdleCPUMS = 1000 * idle
		res.PerNode[i].CPUMS = 1000 * (cpu1[i] - cpu0[i] - idle*at1.Sub(at0).Seconds()) / float64(o.Changes)
	}
	var fan []time.Duration
	for k, at := range complete {
		if at > 0 {
			fan = append(fan, time.Duration(at-starts[k]))
		}
	}
	if len(fan) < o.Changes {
		fmt.Fprintf(o.Log, "%d of %d changes never reached every lamp\n", o.Changes-len(fan), o.Changes)
	}
	res.FanoutP50MS, res.FanoutP99MS, res.FanoutMaxMS = ms(pct(fan, 50)), ms(pct(fan, 99)), ms(pct(fan, 100))
	res.LampLatencyP50MS, res.LampLatencyP99MS = ms(pct(lat, 50)), ms(pct(lat, 99))

	if o.Kill {
		last := len(o.Nodes) - 1
		n, c := o.Nodes[last], clients[last]
		fmt.Fprintf(o.Log, "killing %s...\n", n.Name)
		killedAt := time.Now()
		if err := n.Kill(); err != nil {
			return res, fmt.Errorf("kill %s: %w", n.Name, err)
		}
		if err := c.in.Encode(clientCommand{KilledAt: killedAt.UnixNano()}); err != nil {
			return res, fmt.Errorf("lamp client for %s: %w", n.Name, err)
		}
		a, err := c.answer()
		if err != nil {
			return res, fmt.Errorf("lamp client for %s: %w", n.Name, err)
		}
		var back []time.Duration
		for _, us := range a.BackUS {
			back = append(back, time.Duration(us)*time.Microsecond)
		}
		res.Kill = &KillResult{Node: n.Name, Lamps: res.PerNode[last].Lamps, NotBack: a.NotBack,
			AllBackMS: ms(pct(back, 100)), BackP50MS: ms(pct(back, 50)), BackP99MS: ms(pct(back, 99))}
	}
	return res, nil
}

// client is the coordinator's end of a lamp client.
type client struct {
	in      *json.Encoder
	closeIn io.Closer
	out     *bufio.Scanner
}

func (c *client) answer() (clientAnswer, error) {
	if !c.out.Scan() {
		if err := c.out.Err(); err != nil {
			return clientAnswer{}, err
		}
		return clientAnswer{}, errors.New("it ended without an answer (see its log above)")
	}
	var a clientAnswer
	if err := json.Unmarshal(c.out.Bytes(), &a); err != nil {
		return a, fmt.Errorf("its answer %.100q: %w", c.out.Bytes(), err)
	}
	if a.Error != "" {
		return a, errors.New(a.Error)
	}
	return a, nil
}

// nodeMetrics reads the unlabelled samples of a node's /metrics.
func nodeMetrics(api string) (map[string]float64, error) {
	resp, err := http.Get(strings.TrimRight(api, "/") + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("GET /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			m[name] = v
		}
	}
	for _, want := range []string{"process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if _, ok := m[want]; !ok {
			return nil, fmt.Errorf("/metrics has no %s", want)
		}
	}
	return m, sc.Err()
}

// clientLamp is one lamp of a client: when each change reached it, and,
// after its node is killed, when it was back on another.
type clientLamp struct {
	conn    atomic.Pointer[websocket.Conn]
	arrived []atomic.Int64 // unix ns of each change, 0 until it came
	backAt  atomic.Int64   // unix ns back on another node with the current state
}

// Client is a lamp client: it reads a job from in, connects the lamps,
// answers on out, and then follows the coordinator's commands until in
// ends. A lamp whose connection ends reconnects to the job's other URLs in
// turn, as a lamp behind a load balancer lands on another node. Progress
// and the first error go to log.
func Client(ctx context.Context, in io.Reader, out, log io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dec, enc := json.NewDecoder(in), json.NewEncoder(out)
	fail := func(err error) error {
		_ = enc.Encode(clientAnswer{Error: err.Error()})
		return err
	}
	var job clientJob
	if err := dec.Decode(&job); err != nil {
		return fail(fmt.Errorf("read the job: %w", err))
	}
	if job.Lamps <= 0 || job.Changes <= 0 || len(job.URLs) == 0 || job.Sources <= 0 || job.InFlight <= 0 {
		return fail(fmt.Errorf("job %+v: lamps, changes, sources, in_flight and urls are needed", job))
	}
	lamps := make([]*clientLamp, job.Lamps)
	sem := make(chan struct{}, job.InFlight)
	var (
		wg       sync.WaitGroup
		failures atomic.Int64
		settled  atomic.Int64 // lamps that lost their node and are back, or gave up
		firstErr sync.Once
	)
	src := func(i int) net.IP {
		n := i / job.Sources
		return net.IPv4(127, byte(job.Subnet), byte(n/250), byte(1+n%250))
	}
	// reconnect moves lamp i to the other nodes in turn, until one takes it.
	reconnect := func(i int, l *clientLamp) bool {
		defer settled.Add(1)
		for attempt := range 200 {
			if ctx.Err() != nil {
				return false
			}
			sem <- struct{}{}
			conn, first, _, err := dial(ctx, job.URLs[1+(i+attempt)%(len(job.URLs)-1)], job.Secret, src(i), nil)
			<-sem
			if err != nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			l.conn.Store(conn)
			if k, ok := changeOf(first); ok && k == job.Changes-1 {
				l.backAt.Store(time.Now().UnixNano())
			}
			return true
		}
		firstErr.Do(func() { fmt.Fprintf(log, "lamp %d found no other node to connect to\n", i) })
		return false
	}
	follow := func(i int, l *clientLamp) {
		for {
			_, b, err := l.conn.Load().ReadMessage()
			if err != nil {
				l.conn.Load().Close()
				if ctx.Err() != nil || len(job.URLs) < 2 || !reconnect(i, l) {
					return
				}
				continue
			}
			now := time.Now().UnixNano()
			k, ok := changeOf(b)
			// A newer change supersedes the ones it skipped.
			for j := min(k, len(l.arrived)-1); ok && j >= 0 && l.arrived[j].Load() == 0; j-- {
				l.arrived[j].Store(now)
			}
		}
	}
	start := time.Now()
	for i := range lamps {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			conn, _, _, err := dial(ctx, job.URLs[0], job.Secret, src(i), nil)
			if err != nil {
				failures.Add(1)
				firstErr.Do(func() { fmt.Fprintf(log, "lamp %d: %v\n", i, err) })
				return
			}
			l := &clientLamp{arrived: make([]atomic.Int64, job.Changes)}
			l.conn.Store(conn)
			lamps[i] = l
			go follow(i, l)
		})
	}
	wg.Wait()
	connected := slices.DeleteFunc(slices.Clone(lamps), func(l *clientLamp) bool { return l == nil })
	defer func() {
		cancel()
		for _, l := range connected {
			l.conn.Load().Close()
		}
	}()
	fmt.Fprintf(log, "%d lamps connected to %s in %s\n", len(connected), job.URLs[0], time.Since(start).Round(time.Millisecond))
	if err := enc.Encode(clientAnswer{Connected: len(connected), Failures: int(failures.Load()), ConnectNS: int64(time.Since(start))}); err != nil {
		return err
	}

	missing := func(k int) bool {
		return slices.ContainsFunc(connected, func(l *clientLamp) bool { return l.arrived[k].Load() == 0 })
	}
	for {
		var cmd clientCommand
		if err := dec.Decode(&cmd); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fail(fmt.Errorf("read a command: %w", err))
		}
		var a clientAnswer
		switch {
		case len(cmd.Report) == job.Changes:
			// The final change reaches every lamp within 10 s, or it is missed.
			last := job.Changes - 1
			for i := 0; i < 200 && missing(last); i++ {
				time.Sleep(50 * time.Millisecond)
			}
			a.CompleteNS = make([]int64, job.Changes)
			for k, at := range cmd.Report {
				for _, l := range connected {
					if got := l.arrived[k].Load(); got > 0 {
						a.LatenciesUS = append(a.LatenciesUS, (got-at)/1000)
						a.CompleteNS[k] = max(a.CompleteNS[k], got)
					} else if k == last {
						a.MissedFinal++
					}
				}
				if missing(k) {
					a.CompleteNS[k] = 0
				}
			}
		case cmd.KilledAt > 0:
			// Every lamp is back, or has given up, within two minutes.
			for i := 0; i < 12000 && settled.Load() < int64(len(connected)); i++ {
				time.Sleep(10 * time.Millisecond)
			}
			for _, l := range connected {
				if at := l.backAt.Load(); at > 0 {
					a.BackUS = append(a.BackUS, (at-cmd.KilledAt)/1000)
				} else {
					a.NotBack++
				}
			}
		default:
			return fail(fmt.Errorf("a command with %d change times for %d changes, and no kill", len(cmd.Report), job.Changes))
		}
		if err := enc.Encode(a); err != nil {
			return err
		}
	}
}

// changeOf is the change number a display packet carries in its colour
// (colorOf); ok is false for other packets and the starting state.
func changeOf(packet []byte) (k int, ok bool) {
	p, err := protocol.Parse(string(packet))
	if err != nil || p.Kind != protocol.KindManual {
		return 0, false
	}
	k = int(p.Color.R)<<16 | int(p.Color.G)<<8 | int(p.Color.B) - 1
	return k, k >= 0
}

// Table writes the result for people.
func (res ClusterResult) Table(w io.Writer) {
	rows := [][2]string{
		{"nodes × lamps", fmt.Sprintf("%d × %d = %d connected, %d failures", res.Nodes, res.LampsPerNode, res.Lamps, res.ConnectFailures)},
		{"connect: slowest node", fmt.Sprintf("%.0f ms", res.ConnectTotalMS)},
		{"changes, every", fmt.Sprintf("%d, %.0f ms, through the first node", res.Changes, res.EveryMS)},
		{"API call p50", fmt.Sprintf("%.2f ms", res.APIP50MS)},
		{"fan-out to every lamp p50 / p99 / max", fmt.Sprintf("%.1f / %.1f / %.1f ms", res.FanoutP50MS, res.FanoutP99MS, res.FanoutMaxMS)},
		{"per-lamp latency p50 / p99", fmt.Sprintf("%.1f / %.1f ms", res.LampLatencyP50MS, res.LampLatencyP99MS)},
		{"missed final state", fmt.Sprint(res.MissedFinal)},
	}
	for _, n := range res.PerNode {
		rows = append(rows, [2]string{n.Name + ": lamps, CPU per change (idle), RSS", fmt.Sprintf("%d, %.1f ms (%.0f ms/s), %d KiB", n.Lamps, n.CPUMS, n.IdleCPUMS, n.RSSLampsKiB)})
	}
	if k := res.Kill; k != nil {
		rows = append(rows, [2]string{k.Node + " killed: its lamps back on others", fmt.Sprintf("%d of %d, the last after %.0f ms (p50 %.0f, p99 %.0f ms)", k.Lamps-k.NotBack, k.Lamps, k.AllBackMS, k.BackP50MS, k.BackP99MS)})
	}
	for _, r := range rows {
		fmt.Fprintf(w, "%-46s %s\n", r[0], r[1])
	}
}

// JSON writes the result as one JSON object.
func (res ClusterResult) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}
