// Package rollout follows firmware updates lamp by lamp: told to update,
// downloading (bytes served), back online, or overdue when it has not come
// back within a few minutes. It keeps a short history per lamp on disk and
// publishes every step as a `firmware` event, so the UI can show exactly
// where each lamp stands, the way Brewblox shows each device's state.
package rollout

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/events"
	"github.com/cloudcloud/cloudcloud/firmware"
	"github.com/cloudcloud/cloudcloud/realip"
	"github.com/cloudcloud/cloudcloud/storage"
)

// States of one update.
const (
	StateAsked       = "asked"       // [cc:u:?:?] written to the lamp
	StateDownloading = "downloading" // the lamp's address is fetching /firmware.bin
	StateDownloaded  = "downloaded"  // the whole image went out
	StateBack        = "back"        // the lamp reconnected after being told to update
	StateOverdue     = "overdue"     // not back within the overdue time
)

// Update is one firmware update of one lamp.
type Update struct {
	Lamp           string     `json:"lamp"`      // the lamp's name, or its address for an anonymous lamp
	DeviceID       string     `json:"device_id"` // the connection told to update (a new one when it is back)
	Addr           string     `json:"address"`   // where its downloads come from
	State          string     `json:"state"`
	AskedAt        time.Time  `json:"asked_at"`
	Version        string     `json:"version"` // the image offered when asked
	Sent           int64      `json:"sent"`    // bytes of /firmware.bin served to the lamp's address
	Total          int64      `json:"total"`
	BackAt         *time.Time `json:"back_at"`
	RunningVersion string     `json:"running_version,omitempty"` // what the lamp's updater said it ran
}

// Bus is the event bus the tracker follows lamps on and announces each
// step of an update on (events.Bus).
type Bus interface {
	events.Publisher
	Subscribe(buffer int, types ...events.Type) *events.Subscription
}

// Tracker keeps the updates.
type Tracker struct {
	records storage.Bucket
	bus     Bus
	log     *slog.Logger
	now     func() time.Time
	overdue time.Duration
	image   func() string // the version currently offered

	mu      sync.Mutex
	history map[string][]Update // newest last, at most keep per lamp
}

const keep = 10

// Key is the history's record in the storage bucket (updates.json in the
// data directory).
const Key = "updates"

// Open loads the history from records.
func Open(records storage.Bucket, bus Bus, log *slog.Logger, overdue time.Duration, image func() string) (*Tracker, error) {
	t := &Tracker{records: records, bus: bus, log: log, now: time.Now, overdue: overdue, image: image}
	if _, _, err := storage.LoadJSON(records, Key, &t.history, nil, log, "firmware update history"); err != nil {
		return nil, err
	}
	if t.history == nil {
		t.history = map[string][]Update{}
	}
	return t, nil
}

// Run follows the bus until ctx ends. A lagging subscription is renewed.
func (t *Tracker) Run(ctx context.Context) {
	for ctx.Err() == nil {
		sub := t.bus.Subscribe(4096, events.TypeDevice)
		t.follow(ctx, sub)
		sub.Close()
	}
}

func (t *Tracker) follow(ctx context.Context, sub *events.Subscription) {
	tick := time.NewTicker(15 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			t.checkOverdue(now)
		case e, ok := <-sub.C:
			if !ok {
				return
			}
			if info, ok := e.Data.(device.Info); ok {
				t.Device(info)
			}
		}
	}
}

// Device takes a lamp event: EventUpdating starts an update,
// EventAuthenticated ends one that is under way.
func (t *Tracker) Device(info device.Info) {
	k := info.Lamp()
	t.mu.Lock()
	defer t.mu.Unlock()
	switch info.Event {
	case device.EventUpdating:
		u := Update{Lamp: k, DeviceID: info.ID, Addr: realip.IP(info.RemoteAddr), State: StateAsked, AskedAt: t.now().UTC(), Version: t.image()}
		h := append(t.history[k], u)
		if len(h) > keep {
			h = h[len(h)-keep:]
		}
		t.history[k] = h
		t.changed(u)
	case device.EventAuthenticated:
		if u := t.open(k); u != nil {
			back := t.now().UTC()
			u.BackAt, u.State, u.DeviceID = &back, StateBack, info.ID
			t.log.Info("lamp is back after a firmware update", "lamp", k, "after", back.Sub(u.AskedAt).Round(time.Second))
			t.changed(*u)
		}
	}
}

// Served takes download progress from the firmware handler.
func (t *Tracker) Served(d firmware.Download) {
	t.mu.Lock()
	defer t.mu.Unlock()
	host := realip.IP(d.RemoteAddr)
	for _, h := range t.history {
		u := &h[len(h)-1]
		if u.Addr != host {
			continue
		}
		if u.BackAt != nil {
			// The lamp can be back before the server has seen the end of its
			// own answer: record the last bytes of that download, no more.
			if d.Total == u.Total && d.Sent > u.Sent {
				u.Sent = d.Sent
				t.changed(*u)
			}
			continue
		}
		u.Sent, u.Total = d.Sent, d.Total
		if d.ClientVersion != "" {
			u.RunningVersion = d.ClientVersion
		}
		u.State = StateDownloading
		if d.Done && d.Sent == d.Total {
			u.State = StateDownloaded
		}
		t.changed(*u)
	}
}

// open returns the lamp's update still waiting for the lamp to come back.
func (t *Tracker) open(k string) *Update {
	h := t.history[k]
	if len(h) == 0 || h[len(h)-1].BackAt != nil {
		return nil
	}
	return &h[len(h)-1]
}

func (t *Tracker) checkOverdue(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.history {
		if u := t.open(k); u != nil && u.State != StateOverdue && now.Sub(u.AskedAt) > t.overdue {
			u.State = StateOverdue
			t.log.Warn("lamp has not come back after a firmware update", "lamp", k, "asked", u.AskedAt)
			t.changed(*u)
		}
	}
}

// Updates returns the newest update of every lamp, newest first.
func (t *Tracker) Updates() []Update {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Update
	for _, h := range t.history {
		out = append(out, h[len(h)-1])
	}
	slices.SortFunc(out, func(a, b Update) int { return b.AskedAt.Compare(a.AskedAt) })
	return out
}

// History returns a lamp's updates, newest last.
func (t *Tracker) History(lamp string) []Update {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.history[lamp])
}

// changed persists and publishes; t.mu is held.
func (t *Tracker) changed(u Update) {
	if _, err := storage.PutJSON(t.records, Key, t.history); err != nil {
		t.log.Error("could not save the firmware update history", "err", err)
	}
	if t.bus != nil {
		t.bus.Publish(events.Event{Type: events.TypeFirmware, Data: u})
	}
}
