package device

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudcloud/cloudcloud/protocol"
)

// benchLamps connects n authenticated lamps that keep reading.
func benchLamps(b *testing.B, gw *Gateway, url string, n int) []*websocket.Conn {
	return benchNamedLamps(b, gw, func(int) string { return url }, n)
}

// benchNamedLamps connects n lamps, lamp i at urlOf(i).
func benchNamedLamps(b *testing.B, gw *Gateway, urlOf func(int) string, n int) []*websocket.Conn {
	b.Helper()
	conns := make([]*websocket.Conn, n)
	d := websocket.Dialer{ReadBufferSize: 256, WriteBufferSize: 256}
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := range conns {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, _, err := d.Dial(urlOf(i), nil)
			if err != nil {
				b.Error(err)
				return
			}
			c.WriteMessage(websocket.TextMessage, []byte(secret))
			c.ReadMessage()
			c.ReadMessage()
			conns[i] = c
		})
	}
	wg.Wait()
	for gw.Stats().Lamps.Load() < int64(n) {
		time.Sleep(time.Millisecond)
	}
	return conns
}

func newBenchGateway(b *testing.B, opt Options) (*Gateway, string, func()) {
	opt.Secret, opt.Logger = secret, quiet
	if opt.MaxHandshakes == 0 {
		// Every bench lamp dials from one address, many at once.
		opt.MaxHandshakes = 1000
	}
	gw, err := New(opt, protocol.Off())
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	return gw, "ws" + strings.TrimPrefix(srv.URL, "http") + "/", func() {
		gw.Shutdown(context.Background())
		srv.Close()
	}
}

// BenchmarkIdleLampMemory reports what one idle authenticated lamp costs the
// server in heap and goroutine stack (the client side is in the same process
// here, so it is measured on its own and subtracted).
func BenchmarkIdleLampMemory(b *testing.B) {
	const n = 2000
	for b.Loop() {
		gw, url, stop := newBenchGateway(b, Options{})
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		conns := benchLamps(b, gw, url, n)
		runtime.GC()
		runtime.ReadMemStats(&after)
		// Client side: same dialer, measured against a plain echo-less server.
		b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/n, "heap-B/lamp+client")
		b.ReportMetric(float64(int64(after.StackInuse)-int64(before.StackInuse))/n, "stack-B/lamp+client")
		for _, c := range conns {
			c.Close()
		}
		stop()
	}
}

// BenchmarkBroadcast measures one display change handed to 1,000 lamps and
// written to all of them. The lamps read raw bytes, so the allocations are
// the server's: any per-lamp cost shows as 1,000 allocations per op.
func BenchmarkBroadcast(b *testing.B) {
	const n = 1000
	var done sync.WaitGroup
	gw, url, stop := newBenchGateway(b, Options{OnFanout: func(int, time.Duration) { done.Done() }})
	defer stop()
	conns := benchLamps(b, gw, url, n)
	for _, c := range conns {
		go func() {
			buf := make([]byte, 512)
			for {
				if _, err := c.UnderlyingConn().Read(buf); err != nil {
					return
				}
			}
		}()
	}
	p, _ := protocol.Manual(protocol.RGB{R: 1}, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		p.Color.G = uint8(i)
		done.Add(1)
		gw.SetDisplay(p)
		done.Wait()
	}
}

// BenchmarkHandshake measures one lamp connecting, authenticating and
// receiving its first packet, end to end over loopback.
func BenchmarkHandshake(b *testing.B) {
	gw, url, stop := newBenchGateway(b, Options{})
	defer stop()
	d := websocket.Dialer{ReadBufferSize: 256, WriteBufferSize: 256}
	b.ReportAllocs()
	for b.Loop() {
		c, _, err := d.Dial(url, nil)
		if err != nil {
			b.Fatal(err)
		}
		c.WriteMessage(websocket.TextMessage, []byte(secret))
		c.ReadMessage()
		c.ReadMessage()
		c.Close()
	}
	_ = gw
}

// ownStateLamps is how many lamps BenchmarkOwnStateChange connects:
// BENCH_OWN_LAMPS, else 1,000. With 10,000 the process needs
// 20,000 descriptors (both ends of each connection are here).
func ownStateLamps() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_OWN_LAMPS")); err == nil && n > 0 {
		return n
	}
	return 1000
}

// BenchmarkOwnStateChange: every lamp has a state of its own; one op
// changes one lamp's state and waits until that lamp has read its packet.
// It reports the p99 of that time and the packets the server wrote per
// change (1: no other lamp got one).
func BenchmarkOwnStateChange(b *testing.B) {
	n := ownStateLamps()
	gw, url, stop := newBenchGateway(b, Options{})
	defer stop()
	conns := benchNamedLamps(b, gw, func(i int) string { return fmt.Sprintf("%s?lamp=l%d", url, i) }, n)
	got := make([]chan struct{}, n)
	for i, c := range conns {
		got[i] = make(chan struct{}, 1)
		p, _ := protocol.Manual(protocol.RGB{R: uint8(i)}, 1)
		gw.SetLampDisplay(fmt.Sprintf("l%d", i), p)
		c.ReadMessage() // its own packet
		go func() {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
				got[i] <- struct{}{}
			}
		}()
	}
	var took []time.Duration
	sent := gw.Stats().PacketsSent.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		lamp := i * 7919 % n // spread over the lamps
		p, _ := protocol.Manual(protocol.RGB{R: uint8(i), G: 9}, 2)
		start := time.Now()
		gw.SetLampDisplay(fmt.Sprintf("l%d", lamp), p)
		<-got[lamp]
		took = append(took, time.Since(start))
	}
	b.StopTimer()
	// The counter moves just after the write the lamp has already read.
	for i := 0; i < 1000 && gw.Stats().PacketsSent.Load()-sent < uint64(len(took)); i++ {
		time.Sleep(time.Millisecond)
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(gw.Stats().PacketsSent.Load()-sent)/float64(len(took)), "packets/op")
	for _, c := range conns {
		c.Close()
	}
}
