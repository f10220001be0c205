package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudcloud/cloudcloud/internal/config"
	"github.com/cloudcloud/cloudcloud/internal/lamps"
)

// TestBurstOfLampsKeepsThePageStream connects thousands of lamps while a
// page's event stream is open: three device events and a lamp event per
// lamp, far more than the stream's buffer of 256, used to end the stream
// ("event stream fell behind"). Coalesced, the stream stays open, learns of
// every lamp, and goes on streaming.
func TestBurstOfLampsKeepsThePageStream(t *testing.T) {
	const n = 2000
	r := start(t, t.TempDir(), func(c *config.Config) { c.Device.MaxHandshakes = 64 })
	req, _ := http.NewRequest(http.MethodGet, "http://"+r.addrs.Web+"/api/events", nil)
	req.SetBasicAuth("admin", r.creds.WebPassword)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/events: %v %v", res, err)
	}
	defer res.Body.Close()
	type event struct{ name, data string }
	stream := make(chan event, 64)
	go func() {
		defer close(stream)
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 4<<20), 4<<20)
		var ev event
		for sc.Scan() {
			switch line := sc.Text(); {
			case line == "":
				stream <- ev
				ev = event{}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()

	// The lamps connect from 8 goroutines, each keeping its connections.
	var wg sync.WaitGroup
	conns := make(chan *websocket.Conn, n)
	errs := make(chan error, n)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				c, _, err := websocket.DefaultDialer.Dial(fmt.Sprintf("ws://%s/?lamp=l%d", r.addrs.Device, i), nil)
				if err != nil {
					errs <- err
					return
				}
				conns <- c
				c.WriteMessage(websocket.TextMessage, []byte(r.creds.DeviceSecret))
				c.SetReadDeadline(time.Now().Add(30 * time.Second))
				for range 2 { // ok, then the packet
					if _, _, err := c.ReadMessage(); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	online := map[string]bool{}
	lampEvents, deviceEvents := 0, 0
	deadline := time.After(2 * time.Minute)
	for len(online) < n {
		select {
		case ev, ok := <-stream:
			if !ok {
				t.Fatalf("the event stream ended during the burst, after %d lamp and %d device events", lampEvents, deviceEvents)
			}
			switch ev.name {
			case "lamp":
				lampEvents++
				var l lamps.Lamp
				if err := json.Unmarshal([]byte(ev.data), &l); err != nil {
					t.Fatal(err)
				}
				if l.Online {
					online[l.ID] = true
				}
			case "device":
				deviceEvents++
			}
		case err := <-errs:
			t.Fatalf("a lamp could not connect: %v", err)
		case <-deadline:
			t.Fatalf("after 2 minutes the stream had shown %d of %d lamps online", len(online), n)
		}
	}
	wg.Wait()
	close(conns)
	defer func() {
		for c := range conns {
			c.Close()
		}
	}()
	// Coalesced: at most one lamp event per lamp per flush, so never more
	// than the three-plus events per lamp the bus carried.
	if lampEvents > n || deviceEvents > 3*n {
		t.Errorf("%d lamp and %d device events for %d lamps", lampEvents, deviceEvents, n)
	}
	// The stream is still live.
	if status, body := r.call(t, http.MethodPut, "/api/state", `{"mode": "manual"}`); status != http.StatusOK {
		t.Fatalf("PUT /api/state: %d %s", status, body)
	}
	for ev := range stream {
		if ev.name == "state" {
			return
		}
	}
	t.Fatal("the event stream ended after the burst")
}
