// Package events is the in-process event bus: state changes, lamps coming and
// going, debug lines, weather and firmware news. Producers publish without
// blocking; consumers (the web UI's SSE stream, the firmware rollout tracker,
// the MQTT bridge, a future multi-server backplane) subscribe the same way.
package events

import (
	"errors"
	"sync"
	"time"
)

// Type names an event; the SSE stream uses it as the event name.
type Type string

// The event types of API.md; each is published by the part that owns the
// fact, and the SSE stream names its events after them.
const (
	TypeState          Type = "state"           // state.Store: the display state (a state.State)
	TypeDevice         Type = "device"          // device.Gateway: a lamp connection changed (a device.Info)
	TypeDevices        Type = "devices"         // the SSE stream's snapshot of every lamp on connect
	TypeLamp           Type = "lamp"            // lamps.Registry: a lamp changed (a lamps.Changed; the SSE stream sends the lamp object)
	TypeLamps          Type = "lamps"           // the SSE stream's snapshot of every known lamp on connect
	TypeLog            Type = "log"             // device.Gateway: a debug log line
	TypeWeather        Type = "weather"         // the weather poller: a new report
	TypeFirmware       Type = "firmware"        // rollout.Tracker: one lamp's step through an update
	TypeFirmwareStatus Type = "firmware_status" // firmware.Store: the current or previous image changed
	TypeFavorites      Type = "favorites"       // favorites.Store: the favourite colours (a favorites.List)
	TypeMQTT           Type = "mqtt"            // mqtt.Bridge: the broker connection's status (an mqtt.Status)
	TypeScenes         Type = "scenes"          // a scene was saved or removed, on any node ({"id"})
	TypeSchedules      Type = "schedules"       // a schedule was saved, ran or was removed, on any node ({"id"})
	TypeCluster        Type = "cluster"         // cluster.Cluster: a node joined or left, lamp counts or the NATS link changed (a cluster.Status)
)

// Event is one thing that happened. Data is a JSON-marshalable value that
// must not be modified after publishing: subscribers share it.
type Event struct {
	Type Type
	Time time.Time
	Data any
	// Node is the cluster node the event happened on when it is another
	// one (internal/cluster puts their events on this bus); empty for
	// this node's own.
	Node string
}

// Publisher is what producers need.
type Publisher interface {
	Publish(Event)
}

// ErrLagged ends a subscription whose consumer fell behind. Dropping a whole
// subscription, instead of single events, means a consumer never silently
// misses one: it sees the end and resynchronises from the current state.
var ErrLagged = errors.New("events: subscriber fell behind and was dropped; resynchronise")

// Bus fans events out to subscribers. The zero value is not usable; use NewBus.
type Bus struct {
	mu        sync.RWMutex
	subs      map[*Subscription]struct{}
	coalesced map[*Coalesced]struct{}
}

// NewBus returns an empty bus.
func NewBus() *Bus {
	return &Bus{subs: make(map[*Subscription]struct{}), coalesced: make(map[*Coalesced]struct{})}
}

// Subscription receives events on C until Close, or until it lags.
type Subscription struct {
	C     <-chan Event
	c     chan Event
	bus   *Bus
	types map[Type]bool
	once  sync.Once
	err   error
}

// Subscribe starts a subscription with room for buffer pending events. With
// no types it receives every type.
func (b *Bus) Subscribe(buffer int, types ...Type) *Subscription {
	if buffer < 1 {
		buffer = 1
	}
	c := make(chan Event, buffer)
	s := &Subscription{C: c, c: c, bus: b}
	if len(types) > 0 {
		s.types = make(map[Type]bool, len(types))
		for _, t := range types {
			s.types[t] = true
		}
	}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// Publish hands e to every interested subscriber without blocking. A
// subscriber whose buffer is full is dropped with ErrLagged.
func (b *Bus) Publish(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	var lagged []*Subscription
	b.mu.RLock()
	for s := range b.subs {
		if s.types != nil && !s.types[e.Type] {
			continue
		}
		select {
		case s.c <- e:
		default:
			lagged = append(lagged, s)
		}
	}
	for c := range b.coalesced {
		if c.types[e.Type] {
			c.add(e)
		}
	}
	b.mu.RUnlock()
	for _, s := range lagged {
		s.end(ErrLagged)
	}
}

// Coalesced receives only the newest pending event per key of its types:
// for facts that come in bursts, one per lamp (thousands of lamps
// connecting), where the latest state of each is all a consumer needs. It
// holds at most one event per key, so it never lags and is never dropped.
type Coalesced struct {
	// Ready has a value when events are pending; Take them.
	Ready <-chan struct{}
	ready chan struct{}
	bus   *Bus
	types map[Type]bool
	key   func(Event) string

	mu      sync.Mutex
	pending []Event
	index   map[string]int // key → position in pending
}

// SubscribeCoalesced starts a coalesced subscription to types; key names
// what an event is about (events with the same key replace each other).
func (b *Bus) SubscribeCoalesced(key func(Event) string, types ...Type) *Coalesced {
	ready := make(chan struct{}, 1)
	c := &Coalesced{Ready: ready, ready: ready, bus: b, key: key, types: map[Type]bool{}, index: map[string]int{}}
	for _, t := range types {
		c.types[t] = true
	}
	b.mu.Lock()
	b.coalesced[c] = struct{}{}
	b.mu.Unlock()
	return c
}

func (c *Coalesced) add(e Event) {
	k := c.key(e)
	c.mu.Lock()
	if i, ok := c.index[k]; ok {
		c.pending[i] = e
	} else {
		c.index[k] = len(c.pending)
		c.pending = append(c.pending, e)
	}
	c.mu.Unlock()
	select {
	case c.ready <- struct{}{}:
	default:
	}
}

// Take returns the pending events, the newest per key, in the order their
// keys first became pending, and empties the subscription.
func (c *Coalesced) Take() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.pending
	c.pending = nil
	clear(c.index)
	return out
}

// Close ends the subscription.
func (c *Coalesced) Close() {
	c.bus.mu.Lock()
	delete(c.bus.coalesced, c)
	c.bus.mu.Unlock()
}

// Subscribers counts the live subscriptions, coalesced ones included.
func (b *Bus) Subscribers() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.subs) + len(b.coalesced)
}

// Close ends the subscription; C is closed. Safe to call more than once.
func (s *Subscription) Close() { s.end(nil) }

// Err says why C was closed: nil after Close, ErrLagged after falling behind.
// Only meaningful once C is closed.
func (s *Subscription) Err() error {
	s.bus.mu.RLock()
	defer s.bus.mu.RUnlock()
	return s.err
}

func (s *Subscription) end(err error) {
	s.once.Do(func() {
		s.bus.mu.Lock()
		delete(s.bus.subs, s)
		s.err = err
		close(s.c)
		s.bus.mu.Unlock()
	})
}
