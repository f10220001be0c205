package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/lamps"
)

// sseBuffer is how many events a stream may have pending before the bus
// drops it as lagging. A phone on a bad link catches up by reconnecting
// and resyncing instead of receiving a stale backlog.
const sseBuffer = 256

// sseCoalesce is how often a stream sends the lamp and device events that
// came meanwhile: the newest per lamp and per connection, so a thousand
// lamps connecting cost a page a few writes a second, not three events per
// lamp into its buffer.
const sseCoalesce = 250 * time.Millisecond

// streamedTypes are the events a stream takes from the bus one by one.
// Device and lamp events come coalesced (burstKey); an event type added
// to the bus must be added to one of the two.
var streamedTypes = []events.Type{
	events.TypeState, events.TypeLog, events.TypeWeather,
	events.TypeFirmware, events.TypeFirmwareStatus, events.TypeFavorites, events.TypeMQTT,
	events.TypeScenes, events.TypeSchedules, events.TypeCluster,
}

// burstKey names what a device or lamp event is about.
func burstKey(e events.Event) string {
	switch d := e.Data.(type) {
	case device.Info:
		return "device/" + d.ID
	case lamps.Changed:
		return "lamp/" + d.ID
	}
	return string(e.Type)
}

// sseWriteTimeout bounds one write to a stream, so a vanished client is
// noticed instead of holding a goroutine forever.
const sseWriteTimeout = 30 * time.Second

// sseRetry tells browsers how soon to reconnect after the stream ends.
const sseRetry = 2 * time.Second

// events is GET /api/events: Server-Sent Events whose event name is the
// bus type and whose data is the JSON object. A new stream starts with
// snapshots (state, devices including the offline ones, weather, favorites,
// lamps and, when firmware updates are set up, firmware_status), so a page
// that reconnects is in sync again at once; then it streams every bus
// event, including each lamp's `firmware` update step (a rollout.Update),
// and a devices snapshot every heartbeat (15 s).
// Device and lamp events come coalesced, the newest per connection and per
// lamp, at most every sseCoalesce, so no burst of lamps can make the stream
// lag. It ends when the client goes, or when the subscription of the other
// events lags (the browser reconnects by itself).
func (s *Server) events(c echo.Context) error {
	// Subscribe before taking the snapshots: a change in between is then
	// both in the snapshot and in the stream, never in neither.
	sub := s.deps.Events.Subscribe(sseBuffer, streamedTypes...)
	defer sub.Close()
	burst := s.deps.Events.SubscribeCoalesced(burstKey, events.TypeDevice, events.TypeLamp)
	defer burst.Close()

	w := c.Response()
	rc := http.NewResponseController(w)
	// A stream outlives the server's read timeout; its request has no body,
	// and each write below has its own deadline.
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: pass events through at once
	w.WriteHeader(http.StatusOK)

	var buf bytes.Buffer
	fmt.Fprintf(&buf, "retry: %d\n\n", sseRetry.Milliseconds())
	type snapshotEvent struct {
		name string
		data any
	}
	snapshot := []snapshotEvent{
		{string(events.TypeState), s.deps.State.Get()},
		{string(events.TypeDevices), s.lamps()}, // offline lamps too: a page that reconnects shows them
		{string(events.TypeWeather), s.weatherData(nil)},
		{string(events.TypeFavorites), s.deps.Favorites.Get()},
	}
	if s.deps.Lamps != nil {
		snapshot = append(snapshot, snapshotEvent{string(events.TypeLamps), s.deps.Lamps.Lamps()})
	}
	if s.deps.Firmware != nil {
		snapshot = append(snapshot, snapshotEvent{string(events.TypeFirmwareStatus), s.firmwareStatus()})
	}
	if s.deps.MQTT != nil {
		snapshot = append(snapshot, snapshotEvent{string(events.TypeMQTT), s.deps.MQTT.Status()})
	}
	if s.deps.Cluster != nil {
		snapshot = append(snapshot, snapshotEvent{string(events.TypeCluster), s.deps.Cluster.Status()})
	}
	for _, e := range snapshot {
		if err := writeEvent(&buf, e.name, e.data); err != nil {
			return err
		}
	}
	flush := func() error {
		_ = rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
		if _, err := w.Write(buf.Bytes()); err != nil {
			return err
		}
		buf.Reset()
		return rc.Flush()
	}
	if err := flush(); err != nil {
		return nil // the client is gone; nothing to answer
	}

	heartbeat := time.NewTicker(s.heartbeat)
	defer heartbeat.Stop()
	ctx := c.Request().Context()
	// due fires when the coalesced events waiting are to be sent: at most
	// every sseCoalesce. It is nil while none wait.
	var due <-chan time.Time
	var lastBurst time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-heartbeat.C:
			if a, ok := c.Get(ctxAuth).(authInfo); ok && a.viaCookie {
				// Signed out meanwhile (here or from another device): the
				// stream ends with the session, and its reconnect is refused.
				if _, live := s.sessions.Lookup(a.sess.id, s.now()); !live {
					return nil
				}
			}
			// A fresh snapshot of the lamps keeps proxies from closing an
			// idle stream and keeps "last seen" and the packet counters
			// true: the gateway refreshes them on every ping but announces
			// only connects, handshakes and departures.
			if err := writeEvent(&buf, string(events.TypeDevices), s.lamps()); err != nil {
				return err
			}
		case <-burst.Ready:
			if due == nil {
				due = time.After(time.Until(lastBurst.Add(sseCoalesce)))
			}
			continue
		case <-due:
			due, lastBurst = nil, time.Now()
			for _, e := range burst.Take() {
				if err := writeEvent(&buf, string(e.Type), s.burstData(e)); err != nil {
					s.log.Error("event could not be encoded; skipped", "type", e.Type, "err", err)
				}
			}
		case e, ok := <-sub.C:
			if !ok {
				if errors.Is(sub.Err(), events.ErrLagged) {
					s.log.Info("event stream fell behind; ending it so the page resyncs", "client", s.opt.Proxies.ClientAddr(c.Request()))
				}
				return nil
			}
			data := e.Data
			switch e.Type {
			case events.TypeWeather:
				data = s.weatherData(data)
			case events.TypeFirmwareStatus:
				// The store announces its images; the page wants them with
				// every lamp's progress, as GET /api/firmware answers.
				data = s.firmwareStatus()
			}
			if err := writeEvent(&buf, string(e.Type), data); err != nil {
				s.log.Error("event could not be encoded; skipped", "type", e.Type, "err", err)
				buf.Reset()
				continue
			}
		}
		if err := flush(); err != nil {
			return nil
		}
	}
}

// burstData is what a coalesced event carries: a device event its device
// object; a lamp event the lamp object as it is now (or, for a lamp that
// is gone, its id with "forgotten": true).
func (s *Server) burstData(e events.Event) any {
	c, ok := e.Data.(lamps.Changed)
	if !ok || s.deps.Lamps == nil {
		return e.Data
	}
	if !c.Forgotten {
		if l, err := s.deps.Lamps.Lamp(c.ID); err == nil {
			return l
		}
	}
	return struct {
		ID        string `json:"id"`
		Forgotten bool   `json:"forgotten"`
	}{c.ID, true}
}

// weatherData is what a weather event carries: the poller's current Report,
// the same object GET /api/weather answers, whatever the publisher put on
// the bus. Without a weather service the bus's data passes through.
func (s *Server) weatherData(published any) any {
	if s.deps.Weather != nil {
		return s.deps.Weather.Report()
	}
	return published
}

// writeEvent appends one event. JSON has no raw newlines, so one data line
// always suffices.
func writeEvent(buf *bytes.Buffer, name string, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encode %s event: %w", name, err)
	}
	buf.WriteString("event: ")
	buf.WriteString(name)
	buf.WriteString("\ndata: ")
	buf.Write(b)
	buf.WriteString("\n\n")
	return nil
}
