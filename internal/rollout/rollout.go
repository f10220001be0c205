// Package rollout follows firmware updates lamp by lamp: told to update,
// downloading (bytes served), back online, or overdue when it has not come
// back within a few minutes. It keeps a short history per lamp on disk and
// publishes every step as a `firmware` event, so the UI can show exactly
// where each lamp stands, the way Brewblox shows each device's state.
//
// Download progress (every 64 KiB) lives in memory and goes to the event
// bus only; the file is written when an update changes state or a download
// ends, and never while a download's Write waits on the tracker's lock.
package rollout

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/firmware"
	"github.com/cloudcloud/cloudcloud/internal/realip"
	"github.com/cloudcloud/cloudcloud/internal/storage"
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
	changes uint64              // bumped by every change the file must keep

	saveMu sync.Mutex
	saved  uint64                  // the changes count the file holds; saveMu
	write  func(data []byte) error // replaces the file; tests count the writes
}

const keep = 10

// Key is the history's record in the storage bucket (updates.json in the
// data directory).
const Key = "updates"

// Open loads the history from records.
func Open(records storage.Bucket, bus Bus, log *slog.Logger, overdue time.Duration, image func() string) (*Tracker, error) {
	t := &Tracker{records: records, bus: bus, log: log, now: time.Now, overdue: overdue, image: image}
	t.write = func(data []byte) error {
		_, err := records.Put(Key, data)
		return err
	}
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
		sub := t.bus.Subscribe(4096, events.TypeDevice, events.TypeFirmware)
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
			// In a cluster each node follows the lamps it holds and the
			// downloads it serves, and takes the other nodes' steps as
			// they are: so every node keeps the same history, whichever
			// node a lamp was told on, downloads from or comes back to.
			switch d := e.Data.(type) {
			case device.Info:
				if e.Node == "" {
					t.Device(d)
				}
			case Update:
				if e.Node != "" {
					t.Remote(d)
				}
			}
		}
	}
}

// Device takes a lamp event: EventUpdating starts an update,
// EventAuthenticated ends one that is under way.
func (t *Tracker) Device(info device.Info) {
	k := info.Lamp()
	defer t.persist()
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
		t.transition(u)
	case device.EventAuthenticated:
		if u := t.open(k); u != nil {
			back := t.now().UTC()
			u.BackAt, u.State, u.DeviceID = &back, StateBack, info.ID
			t.log.Info("lamp is back after a firmware update", "lamp", k, "after", back.Sub(u.AskedAt).Round(time.Second))
			t.transition(*u)
		}
	}
}

// Served takes download progress from the firmware handler. It runs inside
// the download's Write: progress is only published; the file is written
// (after the lock is released) when the update changes state or the
// download ends.
func (t *Tracker) Served(d firmware.Download) {
	defer t.persist()
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
				t.progress(*u, d.Done)
			}
			continue
		}
		u.Sent, u.Total = d.Sent, d.Total
		if d.ClientVersion != "" {
			u.RunningVersion = d.ClientVersion
		}
		state := StateDownloading
		if d.Done && d.Sent == d.Total {
			state = StateDownloaded
		}
		if state != u.State {
			u.State = state
			t.transition(*u)
		} else {
			t.progress(*u, d.Done)
		}
	}
}

// Remote takes a step of an update from another node: the update of that
// lamp asked at the same time is replaced, else it is added.
func (t *Tracker) Remote(u Update) {
	defer t.persist()
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.history[u.Lamp]
	i := slices.IndexFunc(h, func(o Update) bool { return o.AskedAt.Equal(u.AskedAt) })
	if i >= 0 {
		h[i] = u
	} else {
		h = append(h, u)
		slices.SortStableFunc(h, func(a, b Update) int { return a.AskedAt.Compare(b.AskedAt) })
		if len(h) > keep {
			h = h[len(h)-keep:]
		}
		t.history[u.Lamp] = h
	}
	t.changes++
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
	defer t.persist()
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.history {
		if u := t.open(k); u != nil && u.State != StateOverdue && now.Sub(u.AskedAt) > t.overdue {
			u.State = StateOverdue
			t.log.Warn("lamp has not come back after a firmware update", "lamp", k, "asked", u.AskedAt)
			t.transition(*u)
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

// transition publishes a change of state and marks the history for the
// file; t.mu is held, and the caller persists once it is released.
func (t *Tracker) transition(u Update) {
	t.changes++
	t.publish(u)
}

// progress publishes bytes served; the end of a download (done) is kept in
// the file too, so the count on disk is final. t.mu is held.
func (t *Tracker) progress(u Update, done bool) {
	if done {
		t.changes++
	}
	t.publish(u)
}

func (t *Tracker) publish(u Update) {
	if t.bus != nil {
		t.bus.Publish(events.Event{Type: events.TypeFirmware, Data: u})
	}
}

// persist writes the history if it changed since the last write. It is
// called without t.mu, so progress reports never wait on the disk; saveMu
// keeps writes in order, and a caller that finds its change already written
// by another returns at once.
func (t *Tracker) persist() {
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	t.mu.Lock()
	changes := t.changes
	if changes == t.saved {
		t.mu.Unlock()
		return
	}
	data, err := json.MarshalIndent(t.history, "", "  ")
	t.mu.Unlock()
	if err == nil {
		err = t.write(append(data, '\n'))
	}
	if err != nil {
		t.log.Error("could not save the firmware update history", "err", err)
		return
	}
	t.saved = changes
}
