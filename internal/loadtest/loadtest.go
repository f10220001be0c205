// Package loadtest is the load tool behind `cloudcloud bench`: it opens many
// simulated lamps against a running server, changes the display state
// through the HTTP API, and measures what a maker running thousands of lamps
// cares about: handshake latency, server memory per lamp, the time until a
// change has reached every lamp, lamps that missed the final state, and the
// server's CPU time per broadcast.
package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sys/unix"

	"github.com/cloudcloud/cloudcloud/protocol"
)

// Options say what to measure.
type Options struct {
	URL      string        // lamp port, ws://127.0.0.1:8080/
	Secret   string        // lamp secret
	API      string        // web port base URL, http://127.0.0.1:8000
	Username string        // basic auth for the API
	Password string        //
	PID      int           // the server's process id, for RSS and CPU (0: not measured)
	Lamps    int           // how many lamps
	InFlight int           // handshakes in flight at once
	Changes  int           // display changes to make
	Every    time.Duration // one change every ...
	Stuck    int           // lamps that authenticate and then never read again
	Settle   time.Duration // wait before reading memory (default 2s)
	Sources  int           // lamps per loopback source address (default 5000)
	// Named gives lamp i the id bench-<i> (?lamp=), so the server keeps
	// each as a lamp of its own; without it the lamps of one source
	// address are one lamp.
	Named bool
	Log   io.Writer // progress lines; nil = none
}

// Result holds the figures; durations are in milliseconds for JSON readers.
type Result struct {
	Lamps            int     `json:"lamps"`
	Stuck            int     `json:"stuck"`
	ConnectFailures  int     `json:"connect_failures"`
	ConnectTotalMS   float64 `json:"connect_total_ms"`
	HandshakeP50MS   float64 `json:"handshake_p50_ms"`
	HandshakeP99MS   float64 `json:"handshake_p99_ms"`
	RSSBaseKiB       int64   `json:"rss_base_kib"`
	RSSLampsKiB      int64   `json:"rss_lamps_kib"`
	RSSPerLampKiB    float64 `json:"rss_per_lamp_kib"`
	RSSAfterKiB      int64   `json:"rss_after_changes_kib"`
	Changes          int     `json:"changes"`
	EveryMS          float64 `json:"every_ms"`
	APIP50MS         float64 `json:"api_p50_ms"`
	FanoutP50MS      float64 `json:"fanout_p50_ms"`
	FanoutP99MS      float64 `json:"fanout_p99_ms"`
	FanoutMaxMS      float64 `json:"fanout_max_ms"`
	LampLatencyP50MS float64 `json:"lamp_latency_p50_ms"`
	LampLatencyP99MS float64 `json:"lamp_latency_p99_ms"`
	MissedFinal      int     `json:"missed_final"`
	Disconnected     int     `json:"disconnected"`
	ServerCPUMS      float64 `json:"server_cpu_per_change_ms"`
}

// lamp is one simulated lamp; it records the newest change it has seen.
type lamp struct {
	conn  *websocket.Conn
	seen  atomic.Int64 // newest change number received (-1 none)
	alive atomic.Bool
}

type run struct {
	o       Options
	starts  []time.Time    // when each change was asked for
	reached []atomic.Int64 // lamps that have change k or a newer one
	doneAt  []atomic.Int64 // unix ns when change k reached every lamp
	latMu   sync.Mutex
	lat     []time.Duration // per lamp per change latency (sampled)
	target  int64
	readErr sync.Once
}

// Run connects the lamps, makes the changes, and measures.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.InFlight <= 0 {
		o.InFlight = 200
	}
	if o.Settle <= 0 {
		o.Settle = 2 * time.Second
	}
	if o.Sources <= 0 {
		o.Sources = 5000
	}
	if o.Every <= 0 {
		o.Every = 200 * time.Millisecond
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	res := Result{Lamps: o.Lamps, Stuck: o.Stuck, Changes: o.Changes, EveryMS: ms(o.Every)}
	r := &run{o: o, starts: make([]time.Time, o.Changes), reached: make([]atomic.Int64, o.Changes), doneAt: make([]atomic.Int64, o.Changes)}
	r.target = int64(o.Lamps - o.Stuck)

	time.Sleep(o.Settle / 2)
	res.RSSBaseKiB, _ = rssKiB(o.PID)

	// Start from a known state so every lamp's first packet is not a change.
	if o.Changes > 0 {
		if _, err := r.put(-1); err != nil {
			return res, err
		}
	}
	fmt.Fprintf(o.Log, "connecting %d lamps (%d handshakes in flight)...\n", o.Lamps, o.InFlight)
	lamps, hs, failures, total := r.connect(ctx)
	defer func() {
		for _, l := range lamps {
			if l != nil {
				l.conn.Close()
			}
		}
	}()
	res.ConnectFailures, res.ConnectTotalMS = failures, ms(total)
	res.HandshakeP50MS, res.HandshakeP99MS = ms(pct(hs, 50)), ms(pct(hs, 99))
	fmt.Fprintf(o.Log, "connected in %s, %d failures\n", total.Round(time.Millisecond), failures)

	time.Sleep(o.Settle)
	res.RSSLampsKiB, _ = rssKiB(o.PID)
	if o.Lamps > 0 && res.RSSLampsKiB > 0 {
		res.RSSPerLampKiB = float64(res.RSSLampsKiB-res.RSSBaseKiB) / float64(o.Lamps-failures)
	}
	if o.Changes == 0 {
		return res, nil
	}

	cpu0, _ := cpuTime(o.PID)
	var api []time.Duration
	tick := time.NewTicker(o.Every)
	for k := 0; k < o.Changes; k++ {
		if k > 0 {
			select {
			case <-tick.C:
			case <-ctx.Done():
				tick.Stop()
				return res, ctx.Err()
			}
		}
		d, err := r.put(k)
		if err != nil {
			tick.Stop()
			return res, err
		}
		api = append(api, d)
	}
	tick.Stop()
	// Wait (bounded) for the final change to reach everyone.
	last := o.Changes - 1
	for i := 0; i < 200 && r.reached[last].Load() < r.target; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	cpu1, _ := cpuTime(o.PID)
	res.ServerCPUMS = ms(cpu1-cpu0) / float64(o.Changes)
	res.RSSAfterKiB, _ = rssKiB(o.PID)
	res.APIP50MS = ms(pct(api, 50))

	var fan []time.Duration
	for k := range o.Changes {
		if at := r.doneAt[k].Load(); at > 0 {
			fan = append(fan, time.Unix(0, at).Sub(r.starts[k]))
		}
	}
	res.FanoutP50MS, res.FanoutP99MS, res.FanoutMaxMS = ms(pct(fan, 50)), ms(pct(fan, 99)), ms(pct(fan, 100))
	r.latMu.Lock()
	res.LampLatencyP50MS, res.LampLatencyP99MS = ms(pct(r.lat, 50)), ms(pct(r.lat, 99))
	r.latMu.Unlock()
	for i, l := range lamps {
		if l == nil || i < o.Stuck {
			continue
		}
		if !l.alive.Load() {
			res.Disconnected++
		}
		if l.seen.Load() != int64(last) {
			res.MissedFinal++
		}
	}
	if len(fan) < o.Changes {
		fmt.Fprintf(o.Log, "%d of %d changes never reached every lamp\n", o.Changes-len(fan), o.Changes)
	}
	return res, nil
}

// colorOf encodes change k in a colour so a lamp can tell which change a
// packet belongs to; k = -1 is the starting state.
func colorOf(k int) string {
	v := k + 1
	return fmt.Sprintf("#%02x%02x%02x", (v>>16)&255, (v>>8)&255, v&255)
}

// put asks the server for change k through PUT /api/state.
func (r *run) put(k int) (time.Duration, error) {
	body := fmt.Sprintf(`{"mode":"manual","pulse":0,"color":%q}`, colorOf(k))
	req, err := http.NewRequest(http.MethodPut, strings.TrimRight(r.o.API, "/")+"/api/state", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(r.o.Username, r.o.Password)
	start := time.Now()
	if k >= 0 {
		r.starts[k] = start
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("PUT /api/state: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("PUT /api/state: %s %s", resp.Status, bytes.TrimSpace(b))
	}
	return time.Since(start), nil
}

func (r *run) connect(ctx context.Context) ([]*lamp, []time.Duration, int, time.Duration) {
	lamps := make([]*lamp, r.o.Lamps)
	hs := make([]time.Duration, r.o.Lamps)
	var failures atomic.Int64
	sem := make(chan struct{}, r.o.InFlight)
	var wg sync.WaitGroup
	start := time.Now()
	var firstErr sync.Once
	for i := range r.o.Lamps {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			l, d, err := r.dialLamp(ctx, i)
			if err != nil {
				failures.Add(1)
				firstErr.Do(func() { fmt.Fprintf(r.o.Log, "lamp %d: %v\n", i, err) })
				return
			}
			lamps[i], hs[i] = l, d
		})
	}
	wg.Wait()
	total := time.Since(start)
	ok := hs[:0]
	for i, d := range hs {
		if lamps[i] != nil {
			ok = append(ok, d)
		}
	}
	return lamps, ok, int(failures.Load()), total
}

func (r *run) dialLamp(ctx context.Context, i int) (*lamp, time.Duration, error) {
	var control func(_, _ string, rc syscall.RawConn) error
	if i < r.o.Stuck {
		// A stuck lamp's socket fills after a few packets, as a lamp that
		// hangs on a weak link would: the server's writes to it then block.
		control = func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 1024) })
		}
	}
	url := r.o.URL
	if r.o.Named {
		url += fmt.Sprintf("?lamp=bench-%d", i)
	}
	conn, _, took, err := dial(ctx, url, r.o.Secret, net.IPv4(127, 0, 1, byte(1+i/r.o.Sources)), control)
	if err != nil {
		return nil, 0, err
	}
	l := &lamp{conn: conn}
	l.seen.Store(-1)
	l.alive.Store(true)
	if i >= r.o.Stuck {
		go r.read(l)
	}
	return l, took, nil
}

// dial connects a lamp from the address src to url and authenticates it
// with secret; it returns the connection, the first packet (the current
// state) and how long the handshake took. control, when not nil, is the
// socket's net.Dialer.Control.
func dial(ctx context.Context, url, secret string, src net.IP, control func(_, _ string, rc syscall.RawConn) error) (*websocket.Conn, []byte, time.Duration, error) {
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 10 * time.Second, Control: control}
	d := websocket.Dialer{
		NetDialContext:   nd.DialContext,
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   256,
		WriteBufferSize:  256,
	}
	start := time.Now()
	conn, _, err := d.DialContext(ctx, url, nil)
	if err != nil {
		return nil, nil, 0, err
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if err := conn.WriteMessage(websocket.TextMessage, []byte(secret)); err != nil {
		conn.Close()
		return nil, nil, 0, err
	}
	var first []byte
	for _, want := range []string{"ok", "packet"} {
		_, b, err := conn.ReadMessage()
		if err != nil {
			conn.Close()
			return nil, nil, 0, fmt.Errorf("handshake: %w", err)
		}
		if want == "ok" && string(b) != "ok" {
			conn.Close()
			return nil, nil, 0, fmt.Errorf("handshake: got %q, want ok", b)
		}
		first = b
	}
	took := time.Since(start)
	conn.SetReadDeadline(time.Time{})
	return conn, first, took, nil
}

// read records every change the lamp receives.
func (r *run) read(l *lamp) {
	defer l.alive.Store(false)
	for {
		_, b, err := l.conn.ReadMessage()
		if err != nil {
			r.readErr.Do(func() { fmt.Fprintf(r.o.Log, "a lamp's connection ended: %v\n", err) })
			return
		}
		now := time.Now()
		p, err := protocol.Parse(string(b))
		if err != nil || p.Kind != protocol.KindManual {
			continue
		}
		k := int64(p.Color.R)<<16 | int64(p.Color.G)<<8 | int64(p.Color.B) - 1
		if k < 0 || k >= int64(len(r.starts)) {
			continue
		}
		prev := l.seen.Swap(k)
		for j := prev + 1; j <= k; j++ {
			if r.reached[j].Add(1) == r.target {
				r.doneAt[j].Store(now.UnixNano())
			}
		}
		if k%4 == 0 || k == int64(len(r.starts))-1 { // sample a quarter of the latencies
			r.latMu.Lock()
			r.lat = append(r.lat, now.Sub(r.starts[k]))
			r.latMu.Unlock()
		}
	}
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// rssKiB reads VmRSS of pid from /proc.
func rssKiB(pid int) (int64, error) {
	if pid <= 0 {
		return 0, errors.New("no pid")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS")
}

// cpuTime reads utime+stime of pid (clock ticks of 10 ms on Linux).
func cpuTime(pid int) (time.Duration, error) {
	if pid <= 0 {
		return 0, errors.New("no pid")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// Table writes the result for people.
func (res Result) Table(w io.Writer) {
	rows := [][2]string{
		{"lamps (stuck)", fmt.Sprintf("%d (%d)", res.Lamps, res.Stuck)},
		{"connect: total, failures", fmt.Sprintf("%.0f ms, %d", res.ConnectTotalMS, res.ConnectFailures)},
		{"handshake p50 / p99", fmt.Sprintf("%.1f / %.1f ms", res.HandshakeP50MS, res.HandshakeP99MS)},
		{"server RSS base → with lamps", fmt.Sprintf("%d → %d KiB", res.RSSBaseKiB, res.RSSLampsKiB)},
		{"RSS per lamp", fmt.Sprintf("%.2f KiB", res.RSSPerLampKiB)},
		{"changes, every", fmt.Sprintf("%d, %.0f ms", res.Changes, res.EveryMS)},
		{"API call p50", fmt.Sprintf("%.2f ms", res.APIP50MS)},
		{"fan-out complete p50 / p99 / max", fmt.Sprintf("%.1f / %.1f / %.1f ms", res.FanoutP50MS, res.FanoutP99MS, res.FanoutMaxMS)},
		{"per-lamp latency p50 / p99", fmt.Sprintf("%.1f / %.1f ms", res.LampLatencyP50MS, res.LampLatencyP99MS)},
		{"server CPU per change", fmt.Sprintf("%.1f ms", res.ServerCPUMS)},
		{"missed final state, disconnected", fmt.Sprintf("%d, %d", res.MissedFinal, res.Disconnected)},
		{"RSS after changes", fmt.Sprintf("%d KiB", res.RSSAfterKiB)},
	}
	for _, r := range rows {
		fmt.Fprintf(w, "%-34s %s\n", r[0], r[1])
	}
}

// JSON writes the result as one JSON object.
func (res Result) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}
