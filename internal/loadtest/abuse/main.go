// Command abuse measures how a cloudcloud server holds up under the abuse
// of issue 17, for BENCHMARKS.md: password guessing on the lamp port, one
// address trying to take every lamp slot, a debug-log flood, and idle
// connections on both ports. It starts the server binary itself (so the
// descriptors and memory it reads from /proc are the server's alone),
// talks to it only over 127.0.0.0/8, and every phase ends after -phase.
//
//	go build -o /tmp/cloudcloud ./cmd/cloudcloud
//	go run ./loadtest/abuse -bin /tmp/cloudcloud
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

const (
	secret   = "abuse-test-secret"
	password = "abuse-test-password"
)

func main() {
	bin := flag.String("bin", "", "the cloudcloud binary to start")
	phase := flag.Duration("phase", 10*time.Second, "length of each attack")
	only := flag.String("only", "", "run only this attack: guessing, slots, flood, idle or headers")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "abuse: -bin is required")
		os.Exit(2)
	}
	if err := run(*bin, *phase, *only); err != nil {
		fmt.Fprintln(os.Stderr, "abuse:", err)
		os.Exit(1)
	}
}

type server struct {
	cmd         *exec.Cmd
	web, device string
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs bin serve with env; nofile > 0 sets its open-file limit
// (with prlimit(1)).
func start(bin string, nofile int, env ...string) (*server, error) {
	dir, err := os.MkdirTemp("", "cloudcloud-abuse-")
	if err != nil {
		return nil, err
	}
	s := &server{web: freePort(), device: freePort()}
	s.cmd = exec.Command(bin, "serve")
	if nofile > 0 {
		s.cmd = exec.Command("prlimit", fmt.Sprintf("--nofile=%d:%d", nofile, nofile), bin, "serve")
	}
	s.cmd.Env = append(os.Environ(),
		"CLOUDCLOUD_STORAGE_DIR="+filepath.Join(dir, "data"),
		"CLOUDCLOUD_WEB_LISTEN="+s.web, "CLOUDCLOUD_DEVICE_LISTEN="+s.device,
		"CLOUDCLOUD_DEVICE_AUTH_SECRET="+secret, "CLOUDCLOUD_WEB_PASSWORD="+password)
	s.cmd.Env = append(s.cmd.Env, env...)
	s.cmd.Stderr, s.cmd.Stdout = io.Discard, io.Discard
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	for range 100 {
		if resp, err := http.Get("http://" + s.web + "/healthz"); err == nil {
			resp.Body.Close()
			return s, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.stop()
	return nil, errors.New("the server did not come up")
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// fds counts the server's open descriptors.
func (s *server) fds() int {
	entries, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.cmd.Process.Pid))
	return len(entries)
}

// rssKiB is the server's resident memory.
func (s *server) rssKiB() int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	m := regexp.MustCompile(`VmRSS:\s+(\d+)`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// metric reads one sample from /metrics ("" labels: the first sample).
func (s *server) metric(name string) float64 {
	resp, err := http.Get("http://" + s.web + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+" ") {
			v, _ := strconv.ParseFloat(strings.TrimPrefix(line, name+" "), 64)
			return v
		}
	}
	return -1
}

func dialerFrom(ip string) *websocket.Dialer {
	return &websocket.Dialer{
		NetDialContext:   (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}).DialContext,
		HandshakeTimeout: 5 * time.Second,
	}
}

// sample runs fn every 100 ms until ctx ends and returns the largest value.
func sample(ctx context.Context, fn func() int) func() int {
	var peak atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if v := int64(fn()); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() int { <-done; return int(peak.Load()) }
}

func run(bin string, phase time.Duration, only string) error {
	fmt.Printf("each attack runs %s; the server is %s\n\n", phase, bin)
	for _, a := range []struct {
		name string
		fn   func(string, time.Duration) error
	}{{"guessing", guessing}, {"slots", slots}, {"flood", flood}, {"idle", idle}, {"headers", headers}} {
		if only != "" && only != a.name {
			continue
		}
		if err := a.fn(bin, phase); err != nil {
			return fmt.Errorf("%s: %w", a.name, err)
		}
	}
	return nil
}

// guessing: 50 sockets from one address guess the secret as fast as they
// can, giving up on an answer after 100 ms.
func guessing(bin string, phase time.Duration) error {
	s, err := start(bin, 0)
	if err != nil {
		return err
	}
	defer s.stop()
	base := s.fds()
	ctx, cancel := context.WithTimeout(context.Background(), phase)
	defer cancel()
	peakFDs := sample(ctx, s.fds)
	var tries, throttled atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			d := dialerFrom("127.0.0.1")
			for ctx.Err() == nil {
				tries.Add(1)
				c, resp, err := d.Dial("ws://"+s.device+"/", nil)
				if err != nil {
					if resp != nil && resp.StatusCode == http.StatusTooManyRequests {
						throttled.Add(1)
					}
					continue
				}
				_ = c.WriteMessage(websocket.TextMessage, []byte("guess"))
				_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
				_, _, _ = c.ReadMessage()
				c.Close()
			}
		})
	}
	wg.Wait()
	checked := s.metric(`cloudcloud_lamp_handshakes_total{result="failed"}`)
	time.Sleep(2 * time.Second)
	fmt.Printf("## guessing the secret: 50 sockets from one address, %s\n", phase)
	fmt.Printf("attempts                          %d (%d answered 429)\n", tries.Load(), throttled.Load())
	fmt.Printf("guesses that reached the secret   %.0f (%.2f/s)\n", checked, checked/phase.Seconds())
	fmt.Printf("server descriptors base/peak/2s after  %d / %d / %d\n\n", base, peakFDs(), s.fds())
	return nil
}

// slots: one address opens as many silent connections as it can (the
// issue's attack on max_connections = 2000) while good lamps from other
// addresses connect.
func slots(bin string, phase time.Duration) error {
	s, err := start(bin, 0, "CLOUDCLOUD_DEVICE_MAX_CONNECTIONS=2000")
	if err != nil {
		return err
	}
	defer s.stop()
	ctx, cancel := context.WithTimeout(context.Background(), phase)
	defer cancel()
	var held []*websocket.Conn
	var mu sync.Mutex
	var attempts, refused atomic.Int64
	var wg sync.WaitGroup
	for range 30 {
		wg.Go(func() {
			d := dialerFrom("127.0.0.1")
			for ctx.Err() == nil {
				attempts.Add(1)
				c, _, err := d.Dial("ws://"+s.device+"/", nil)
				if err != nil {
					refused.Add(1)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				mu.Lock()
				held = append(held, c)
				mu.Unlock()
			}
		})
	}
	time.Sleep(phase / 4) // the attack is under way
	var times []time.Duration
	failures := 0
	for i := range 20 {
		ip := fmt.Sprintf("127.0.0.%d", 10+i)
		began := time.Now()
		c, _, err := dialerFrom(ip).Dial("ws://"+s.device+"/", nil)
		if err == nil {
			_ = c.WriteMessage(websocket.TextMessage, []byte(secret))
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, msg, rerr := c.ReadMessage()
			if rerr == nil && string(msg) == "ok" {
				times = append(times, time.Since(began))
			} else {
				failures++
			}
			defer c.Close()
		} else {
			failures++
		}
	}
	wg.Wait()
	mu.Lock()
	n := len(held)
	for _, c := range held {
		c.Close()
	}
	mu.Unlock()
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	fmt.Printf("## taking the lamp slots: 30 sockets from one address, max_connections 2000, %s\n", phase)
	fmt.Printf("attacker's connections attempted / held / refused  %d / %d / %d\n", attempts.Load(), n, refused.Load())
	if len(times) > 0 {
		fmt.Printf("20 good lamps from other addresses: ok %d, failed %d, time to ok p50 %s max %s\n\n",
			len(times), failures, times[len(times)/2].Round(100*time.Microsecond), times[len(times)-1].Round(100*time.Microsecond))
	} else {
		fmt.Printf("20 good lamps from other addresses: all %d failed\n\n", failures)
	}
	return nil
}

// flood: one lamp with the shared secret reconnects and sends 4 KiB debug
// lines as fast as it can, while one page listens to the event stream.
func flood(bin string, phase time.Duration) error {
	s, err := start(bin, 0)
	if err != nil {
		return err
	}
	defer s.stop()
	base := s.rssKiB()
	ctx, cancel := context.WithTimeout(context.Background(), phase)
	defer cancel()
	peakRSS := sample(ctx, s.rssKiB)
	var sseBytes, logBytes atomic.Int64
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+s.web+"/api/events", nil)
		req.SetBasicAuth("admin", password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		inLog := false
		for sc.Scan() {
			n := int64(len(sc.Bytes()) + 1)
			sseBytes.Add(n)
			switch line := sc.Text(); {
			case strings.HasPrefix(line, "event: "):
				inLog = line == "event: log"
			case line == "":
				inLog = false
			}
			if inLog {
				logBytes.Add(n)
			}
		}
	}()
	line := []byte("d:" + strings.Repeat("x", 4000))
	for ctx.Err() == nil {
		c, _, err := dialerFrom("127.0.0.3").Dial("ws://"+s.device+"/", nil)
		if err != nil {
			continue
		}
		_ = c.WriteMessage(websocket.TextMessage, []byte(secret))
		for i := 0; i < 1000 && ctx.Err() == nil; i++ {
			if c.WriteMessage(websocket.TextMessage, line) != nil {
				break
			}
		}
		c.Close()
	}
	req, _ := http.NewRequest("GET", "http://"+s.web+"/api/logs?limit=1000", nil)
	req.SetBasicAuth("admin", password)
	logsSize := int64(-1)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		logsSize, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	fmt.Printf("## debug flood: one lamp reconnecting, 4 KiB lines, %s\n", phase)
	received := s.metric("cloudcloud_lamp_packets_received_total")
	fmt.Printf("lines the server read             %.0f (%.0f/s, %.0f MB)\n", received, received/phase.Seconds(), received*4002/1e6)
	fmt.Printf("server RSS base / peak            %d / %d KiB\n", base, peakRSS())
	fmt.Printf("event stream to one page          %.1f KB/s, of it log lines %.1f KB/s\n", float64(sseBytes.Load())/phase.Seconds()/1e3, float64(logBytes.Load())/phase.Seconds()/1e3)
	fmt.Printf("/api/logs?limit=1000              %.2f MB\n\n", float64(logsSize)/1e6)
	return nil
}

// idle: 320 connections that send nothing to each port (the issue's
// attack with the open-file limit at 300), then whether /healthz and a
// lamp get in, and how many connections the server still holds later.
func idle(bin string, phase time.Duration) error {
	s, err := start(bin, 300)
	if err != nil {
		return err
	}
	defer s.stop()
	base := s.fds()
	var conns []net.Conn
	for _, addr := range []string{s.web, s.device} {
		for range 320 {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				break
			}
			conns = append(conns, c)
		}
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	time.Sleep(200 * time.Millisecond)
	during := s.fds()
	health := "unreachable"
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + s.web + "/healthz"); err == nil {
		health = resp.Status
		resp.Body.Close()
	}
	lamp := "refused"
	if c, _, err := dialerFrom("127.0.0.4").Dial("ws://"+s.device+"/", nil); err == nil {
		_ = c.WriteMessage(websocket.TextMessage, []byte(secret))
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, msg, err := c.ReadMessage(); err == nil {
			lamp = string(msg)
		}
		c.Close()
	}
	wait := max(phase, 12*time.Second) // past the 10 s header timeout
	time.Sleep(wait)
	fmt.Printf("## idle connections: 320 to each port, sending nothing, server's open-file limit 300\n")
	fmt.Printf("server descriptors base / with them / %s later  %d / %d / %d\n", wait, base, during, s.fds())
	fmt.Printf("during: /healthz %s, a lamp from another address got %q\n", health, lamp)
	return nil
}

// headers: 300 connections each send a request with 1 MiB of headers.
func headers(bin string, _ time.Duration) error {
	s, err := start(bin, 0)
	if err != nil {
		return err
	}
	defer s.stop()
	base := s.rssKiB()
	ctx, cancel := context.WithCancel(context.Background())
	peak := sample(ctx, s.rssKiB)
	pad := strings.Repeat("a", 1<<20)
	statuses := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 300 {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", s.web, 5*time.Second)
			if err != nil {
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			go fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n", pad)
			status := "no answer"
			if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
				status = resp.Status
				resp.Body.Close()
			}
			mu.Lock()
			statuses[status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	cancel()
	fmt.Printf("## 1 MiB of request headers on 300 connections at once\n")
	fmt.Printf("answers %v; server RSS base / peak %d / %d KiB\n\n", statuses, base, peak())
	return nil
}
