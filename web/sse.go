package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/cloudcloud/cloudcloud/internal/events"
)

// sseBuffer is how many events a stream may have pending before the bus
// drops it as lagging. A phone on a bad link catches up by reconnecting
// and resyncing instead of receiving a stale backlog.
const sseBuffer = 256

// sseWriteTimeout bounds one write to a stream, so a vanished client is
// noticed instead of holding a goroutine forever.
const sseWriteTimeout = 30 * time.Second

// sseRetry tells browsers how soon to reconnect after the stream ends.
const sseRetry = 2 * time.Second

// events is GET /api/events: Server-Sent Events whose event name is the
// bus type and whose data is the JSON object. A new stream starts with
// snapshots (state, devices including the offline ones, weather, favorites and, when firmware updates
// are set up, firmware_status), so a page that reconnects is in sync again
// at once; then it streams every bus event, including each lamp's
// `firmware` update step (a rollout.Update), and a devices snapshot every
// heartbeat (15 s). It ends when the client goes,
// or when the subscription lags (the browser reconnects by itself).
func (s *Server) events(c echo.Context) error {
	// Subscribe before taking the snapshots: a change in between is then
	// both in the snapshot and in the stream, never in neither.
	sub := s.deps.Events.Subscribe(sseBuffer)
	defer sub.Close()

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
		{string(events.TypePreview), s.previewStatus()},
	}
	if s.deps.Firmware != nil {
		snapshot = append(snapshot, snapshotEvent{string(events.TypeFirmwareStatus), s.firmwareStatus()})
	}
	if s.deps.MQTT != nil {
		snapshot = append(snapshot, snapshotEvent{string(events.TypeMQTT), s.deps.MQTT.Status()})
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
			if err := writeEvent(&buf, "devices", s.lamps()); err != nil {
				return err
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
