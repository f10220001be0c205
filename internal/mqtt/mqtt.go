// Package mqtt publishes cloudcloud to an MQTT broker as /work/shared/MQTT.md
// (docs/mqtt.md) says: retained state topics that follow every change, Home
// Assistant discovery messages, and command topics that go through the same
// validation as the HTTP API.
//
// The client is github.com/eclipse/paho.golang's autopaho: it speaks MQTT 5
// (which mosquitto and Home Assistant's broker speak), reconnects by itself
// with a back-off we choose, sets the will on every connection, and dials
// mqtts:// with TLS; its callbacks tell connection up and down apart, which
// is what the status in the UI and /metrics shows.
//
// The bridge reads what it publishes from small interfaces (Shared, Lamps,
// Firmware, Weather) and hears about changes on the events bus. It keeps the
// payload of every retained topic it published; after any change it builds
// every payload again and publishes only those that differ, so a change
// made anywhere costs one message per topic it touches, a forgotten lamp's
// topics are cleared, and after a reconnect or Home Assistant's birth
// message everything is published again.
package mqtt

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/firmware"
	"github.com/cloudcloud/cloudcloud/internal/state"
	"github.com/cloudcloud/cloudcloud/weather"
)

// Shared is the shared display state: what "All lamps" shows and sets (as
// GET and PUT /api/state).
type Shared interface {
	Get() Light
	Apply(Command) (Light, error)
}

// Lamp is one lamp as its Home Assistant device shows it.
type Lamp struct {
	ID       string // the lamp id of API.md
	Label    string // its name for people; the device name
	Online   bool   // connected now
	Firmware string // the version it runs; "" when not known
	Updating bool   // told to flash new firmware and not back yet
	Debug    bool   // its debug log switch
	Light    Light  // what it shows
}

// Lamps is the registry of lamps (issue 13). A lamp missing from List is
// forgotten: its topics are cleared.
type Lamps interface {
	List() []Lamp
	Apply(id string, c Command) (Light, error) // as PUT /api/lamps/<id>/state
	Reboot(id string) error
	Update(id string) error
	SetDebug(id string, on bool) error
}

// Firmware is the uploaded image (firmware.Store).
type Firmware interface {
	Current() (firmware.Info, bool)
}

// Weather is the live weather (weather.Poller).
type Weather interface {
	Report() weather.Report
}

// Scene is a saved scene (issue 14), a Home Assistant scene.
type Scene struct {
	ID   string
	Name string
}

// Scenes are the saved scenes.
type Scenes interface {
	List() []Scene
	Apply(id string) error // as the API applies a scene
}

// Options configure a Bridge.
type Options struct {
	URL             string // mqtt://host[:1883] or mqtts://host[:8883]
	Username        string
	Password        string
	ClientID        string
	BaseTopic       string // "cloudcloud"
	Discovery       bool
	DiscoveryPrefix string // "homeassistant"
	PublicURL       string // configuration_url; "" leaves it out
	Version         string // cloudcloud's version, the server device's sw_version
	TLS             *tls.Config

	Bus      *events.Bus
	Shared   Shared
	Lamps    Lamps    // nil: no lamp devices
	Firmware Firmware // nil: no image is ever "latest"
	Weather  Weather  // nil: no weather sensor
	Scenes   Scenes   // nil: no scenes
	// MoreEvents are bus events that change what is published, besides
	// state, device, weather and firmware_status: the lamp registry's and
	// the scenes' events.
	MoreEvents []events.Type
	// Cluster: the nodes of a cluster share the topics. The status topic is
	// cloudcloud's as long as any node runs: a node that sees "offline"
	// there (another node's will, or its clean stop) says "online" again,
	// so it stays offline only once every node is gone. And each command
	// is taken by one node, through an MQTT shared subscription
	// ($share/cloudcloud/...); Lamps then carries it out on whichever node
	// holds the lamp.
	Cluster bool
	Logger  *slog.Logger

	// CommandInterval is the shortest time between two rounds of commands;
	// a flood is coalesced to the latest command per topic in between.
	CommandInterval time.Duration

	backoff func(attempt int) time.Duration // tests: quick reconnects
	tick    <-chan time.Time                // tests: the command rounds' clock
}

// DefaultCommandInterval lets 20 rounds of commands a second through.
const DefaultCommandInterval = 50 * time.Millisecond

// maxPending bounds the command topics waiting at once; more are dropped,
// so a client flooding made-up lamp ids cannot grow memory.
const maxPending = 10000

// Status is the connection as the UI and /metrics show it.
type Status struct {
	Enabled   bool      `json:"enabled"`
	Connected bool      `json:"connected"`
	Broker    string    `json:"broker"`          // the URL without credentials
	Error     string    `json:"error,omitempty"` // why it is not connected
	Since     time.Time `json:"since"`
}

// Bridge is the MQTT side of cloudcloud.
type Bridge struct {
	opt    Options
	url    *url.URL
	topics topics
	log    *slog.Logger

	received, published atomic.Uint64

	wake  chan struct{} // commands are pending
	dirty chan struct{} // something may have changed: sync
	reset chan struct{} // connected: subscribe, say online, publish everything
	again chan struct{} // Home Assistant came online: publish everything
	// online: another node of the cluster said offline (Options.Cluster).
	online chan struct{}

	mu      sync.Mutex
	status  Status
	cm      *autopaho.ConnectionManager
	pending map[string][]byte     // command topic → latest payload
	arrival []string              // the pending topics, in the order they first arrived
	ids     map[string]string     // topic id → lamp id
	scenes  map[string]string     // topic id → scene id
	lastOn  map[string]state.Mode // "all" or a lamp id → its mode before it was switched off

	// Owned by the sync goroutine.
	sent    map[string][]byte        // retained topic → payload as last published; nil payload: publish again
	configs map[string]cachedConfigs // topic id → that lamp's discovery messages
}

// New checks o and returns a Bridge; nothing connects before Run.
func New(o Options) (*Bridge, error) {
	u, err := BrokerURL(o.URL)
	if err != nil {
		return nil, err
	}
	if o.Shared == nil || o.Bus == nil {
		return nil, errors.New("mqtt: Shared and Bus are required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.BaseTopic == "" {
		o.BaseTopic = "cloudcloud"
	}
	if o.DiscoveryPrefix == "" {
		o.DiscoveryPrefix = "homeassistant"
	}
	if o.CommandInterval <= 0 {
		o.CommandInterval = DefaultCommandInterval
	}
	if o.backoff == nil {
		o.backoff = autopaho.NewExponentialBackoff(time.Second, time.Minute, 2*time.Second, 2)
	}
	b := &Bridge{
		opt: o, url: u, log: o.Logger,
		topics:  topics{base: o.BaseTopic, discovery: o.DiscoveryPrefix},
		wake:    make(chan struct{}, 1),
		dirty:   make(chan struct{}, 1),
		reset:   make(chan struct{}, 1),
		again:   make(chan struct{}, 1),
		online:  make(chan struct{}, 1),
		pending: make(map[string][]byte),
		ids:     make(map[string]string),
		scenes:  make(map[string]string),
		lastOn:  make(map[string]state.Mode),
		sent:    make(map[string][]byte),
	}
	b.status = Status{Enabled: true, Broker: redacted(u), Error: "not connected yet", Since: time.Now()}
	return b, nil
}

// BrokerURL parses mqtt.url: mqtt:// or mqtts://, a host, the default port
// (1883, 8883) when none is given, and nothing else.
func BrokerURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL: %w", s, err)
	}
	port := map[string]string{"mqtt": "1883", "mqtts": "8883"}[u.Scheme]
	switch {
	case port == "":
		return nil, fmt.Errorf("%q: use mqtt://host:1883, or mqtts://host:8883 for TLS", s)
	case u.Hostname() == "":
		return nil, fmt.Errorf("%q has no host; use mqtt://host:1883", s)
	case u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("%q: a broker URL is scheme://host:port and nothing after it", s)
	case u.User != nil:
		return nil, fmt.Errorf("%q: put the login in mqtt.username and mqtt.password, not in the URL", redacted(u))
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), port)
	}
	if n, err := strconv.Atoi(u.Port()); err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("%q: port %q is not a number in range 1-65535", s, u.Port())
	}
	u.Path = ""
	return u, nil
}

func redacted(u *url.URL) string { return u.Redacted() }

// Status returns the connection's status now.
func (b *Bridge) Status() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.status
}

// Counters returns the messages received from and published to the broker.
func (b *Bridge) Counters() (received, published uint64) {
	return b.received.Load(), b.published.Load()
}

func (b *Bridge) setStatus(connected bool, why string) {
	b.mu.Lock()
	if b.status.Connected == connected && b.status.Error == why {
		b.mu.Unlock()
		return
	}
	b.status.Connected, b.status.Error, b.status.Since = connected, why, time.Now()
	st := b.status
	b.mu.Unlock()
	if connected {
		b.log.Info("connected to the MQTT broker", "broker", st.Broker)
	} else {
		b.log.Warn("MQTT broker not connected; retrying with back-off", "broker", st.Broker, "err", why)
	}
	b.opt.Bus.Publish(events.Event{Type: events.TypeMQTT, Data: st})
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Run connects and serves until ctx ends, then publishes offline and
// disconnects. The broker being away is not an error: it retries.
func (b *Bridge) Run(ctx context.Context) error {
	connCtx, stop := context.WithCancel(context.Background())
	defer stop()
	status := b.topics.status()
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{b.url},
		TlsCfg:                        b.opt.TLS,
		KeepAlive:                     30,
		CleanStartOnInitialConnection: true,
		ReconnectBackoff:              b.opt.backoff,
		ConnectTimeout:                10 * time.Second,
		ConnectUsername:               b.opt.Username,
		ConnectPassword:               []byte(b.opt.Password),
		WillMessage:                   &paho.WillMessage{Topic: status, Payload: []byte("offline"), QoS: 1, Retain: true},
		OnConnectionUp: func(*autopaho.ConnectionManager, *paho.Connack) {
			b.setStatus(true, "")
			signal(b.reset)
		},
		OnConnectionDown: func() bool {
			b.setStatus(false, "connection lost")
			return true
		},
		OnConnectError: func(err error) { b.setStatus(false, err.Error()) },
		ClientConfig: paho.ClientConfig{
			ClientID:          b.opt.ClientID,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){b.receive},
		},
	}
	cm, err := autopaho.NewConnection(connCtx, cfg)
	if err != nil {
		return fmt.Errorf("mqtt: %w", err)
	}
	b.mu.Lock()
	b.cm = cm
	b.mu.Unlock()

	var wg sync.WaitGroup
	wg.Go(func() { b.follow(ctx) })
	wg.Go(func() { b.commands(ctx) })
	wg.Go(func() { b.syncLoop(ctx, cm) })
	wg.Wait()

	// A broker drops the will on a clean DISCONNECT, so say it ourselves.
	pctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if b.Status().Connected {
		if _, err := cm.Publish(pctx, &paho.Publish{Topic: status, Payload: []byte("offline"), QoS: 1, Retain: true}); err != nil {
			b.log.Warn("could not publish offline before disconnecting", "err", err)
		} else {
			b.published.Add(1)
		}
	}
	if err := cm.Disconnect(pctx); err != nil {
		b.log.Warn("MQTT disconnect did not finish", "err", err)
	}
	b.mu.Lock()
	b.status.Connected, b.status.Error, b.status.Since = false, "stopped", time.Now()
	b.mu.Unlock()
	return nil
}

// follow turns bus events into syncs, resubscribing when it lags.
func (b *Bridge) follow(ctx context.Context) {
	types := append([]events.Type{events.TypeState, events.TypeDevice, events.TypeWeather, events.TypeFirmwareStatus}, b.opt.MoreEvents...)
	for ctx.Err() == nil {
		sub := b.opt.Bus.Subscribe(256, types...)
		signal(b.dirty) // anything missed while (re)subscribing
	loop:
		for {
			select {
			case <-ctx.Done():
				sub.Close()
				return
			case _, ok := <-sub.C:
				if !ok {
					break loop // lagged: a fresh subscription and a full sync catch up
				}
				signal(b.dirty)
			}
		}
	}
}

// syncLoop is the only publisher of retained topics.
func (b *Bridge) syncLoop(ctx context.Context, cm *autopaho.ConnectionManager) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.reset:
			b.onConnect(ctx, cm)
		case <-b.again:
			b.publishAgain()
		case <-b.online:
			if b.Status().Connected {
				b.log.Info("another node said offline on the status topic; this one runs, so it says online")
				pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				b.sayOnline(pctx, cm)
				cancel()
			}
		case <-b.dirty:
		}
		if b.Status().Connected {
			b.sync(ctx, cm)
		}
	}
}

// onConnect subscribes to the command topics and Home Assistant's status
// and marks everything to be published again.
func (b *Bridge) onConnect(ctx context.Context, cm *autopaho.ConnectionManager) {
	t := b.topics
	// QoS 1: a command sent while the connection blinks is not lost.
	subs := []paho.SubscribeOptions{
		{Topic: t.allSet(), QoS: 1},
		{Topic: t.lamp("+", "set"), QoS: 1},
		{Topic: t.lamp("+", "reboot"), QoS: 1},
		{Topic: t.lamp("+", "debug/set"), QoS: 1},
		{Topic: t.lamp("+", "update/install"), QoS: 1},
		{Topic: t.scene("+"), QoS: 1},
	}
	if b.opt.Cluster {
		for i := range subs {
			subs[i].Topic = sharedGroup + subs[i].Topic
		}
		subs = append(subs, paho.SubscribeOptions{Topic: t.status(), QoS: 1})
	}
	if b.opt.Discovery {
		subs = append(subs, paho.SubscribeOptions{Topic: t.haStatus(), QoS: 1})
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cm.Subscribe(sctx, &paho.Subscribe{Subscriptions: subs}); err != nil {
		b.log.Warn("could not subscribe to the command topics; commands from MQTT are ignored until the next connection", "err", err)
	}
	b.sayOnline(sctx, cm)
	b.publishAgain()
}

// sayOnline publishes online on the status topic.
func (b *Bridge) sayOnline(ctx context.Context, cm *autopaho.ConnectionManager) {
	if _, err := cm.Publish(ctx, &paho.Publish{Topic: b.topics.status(), Payload: []byte("online"), QoS: 1, Retain: true}); err != nil {
		b.log.Warn("could not publish online", "err", err)
		return
	}
	b.published.Add(1)
}

// sharedGroup prefixes the command topics of a cluster's bridges: the
// broker hands each command to one of them (MQTT 5 shared subscriptions).
const sharedGroup = "$share/cloudcloud/"

// publishAgain makes the next sync publish every retained topic.
func (b *Bridge) publishAgain() {
	for k := range b.sent {
		b.sent[k] = nil
	}
}

// receive is paho's callback for every message: Home Assistant's birth
// message, or a command to apply at the next round.
func (b *Bridge) receive(p paho.PublishReceived) (bool, error) {
	b.received.Add(1)
	topic, payload := p.Packet.Topic, p.Packet.Payload
	if topic == b.topics.status() {
		if b.opt.Cluster && string(payload) == "offline" {
			signal(b.online)
		}
		return true, nil
	}
	if topic == b.topics.haStatus() {
		if string(payload) == "online" {
			b.log.Info("Home Assistant came online; publishing discovery and state again")
			signal(b.again)
		}
		return true, nil
	}
	if p.Packet.Retain {
		// A command someone published retained would otherwise run again
		// at every connection (a reboot at every restart).
		b.log.Warn("MQTT command ignored: it is a retained message; publish commands without retain", "topic", topic)
		return true, nil
	}
	b.mu.Lock()
	if _, ok := b.pending[topic]; !ok && len(b.pending) >= maxPending {
		b.mu.Unlock()
		b.log.Warn("MQTT command dropped: too many commands waiting", "topic", topic)
		return true, nil
	}
	if _, ok := b.pending[topic]; !ok {
		b.arrival = append(b.arrival, topic)
	}
	b.pending[topic] = bytes.Clone(payload)
	b.mu.Unlock()
	signal(b.wake)
	return true, nil
}

// commands applies the pending commands in rounds at most
// CommandInterval apart; between rounds only the latest per topic is kept,
// and a round applies its topics in the order they first arrived.
func (b *Bridge) commands(ctx context.Context) {
	tick := b.opt.tick
	if tick == nil {
		t := time.NewTicker(b.opt.CommandInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.wake:
		}
		b.mu.Lock()
		round, topics := b.pending, b.arrival
		b.pending, b.arrival = make(map[string][]byte), nil
		b.mu.Unlock()
		for _, topic := range topics {
			if err := b.apply(topic, round[topic]); err != nil {
				b.log.Warn("MQTT command dropped; nothing was changed", "topic", topic, "payload", clip(round[topic]), "err", err)
			}
		}
		signal(b.dirty)
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
	}
}

// clip keeps a logged payload short.
func clip(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// apply runs one command.
func (b *Bridge) apply(topic string, payload []byte) error {
	t := b.topics
	if topic == t.allSet() {
		cur := b.opt.Shared.Get()
		c, err := parseCommand(payload, cur.State.Mode, b.lastMode("all"))
		if err != nil {
			return err
		}
		_, err = b.opt.Shared.Apply(c)
		return err
	}
	if rest, ok := strings.CutPrefix(topic, t.base+"/scene/"); ok {
		tid, _, _ := strings.Cut(rest, "/")
		b.mu.Lock()
		id, known := b.scenes[tid]
		b.mu.Unlock()
		switch {
		case !known || b.opt.Scenes == nil:
			return fmt.Errorf("no scene %q", tid)
		case string(payload) != "ON":
			return fmt.Errorf("payload %q: send ON", clip(payload))
		}
		return b.opt.Scenes.Apply(id)
	}
	rest, ok := strings.CutPrefix(topic, t.base+"/lamp/")
	if !ok {
		return fmt.Errorf("not a command topic")
	}
	tid, action, _ := strings.Cut(rest, "/")
	b.mu.Lock()
	id, known := b.ids[tid]
	b.mu.Unlock()
	if !known || b.opt.Lamps == nil {
		return fmt.Errorf("no lamp %q", tid)
	}
	lamps := b.opt.Lamps
	switch action {
	case "set":
		var cur state.Mode
		for _, l := range lamps.List() {
			if l.ID == id {
				cur = l.Light.State.Mode
			}
		}
		c, err := parseCommand(payload, cur, b.lastMode(id))
		if err != nil {
			return err
		}
		_, err = lamps.Apply(id, c)
		return err
	case "reboot":
		if string(payload) != "PRESS" {
			return fmt.Errorf("payload %q: send PRESS", clip(payload))
		}
		return lamps.Reboot(id)
	case "debug/set":
		switch string(payload) {
		case "ON":
			return lamps.SetDebug(id, true)
		case "OFF":
			return lamps.SetDebug(id, false)
		}
		return fmt.Errorf("payload %q: send ON or OFF", clip(payload))
	case "update/install":
		if string(payload) != "install" {
			return fmt.Errorf("payload %q: send install", clip(payload))
		}
		if b.latest() == "" {
			return errors.New("no firmware image has been uploaded; upload one in the UI first")
		}
		return lamps.Update(id)
	}
	return fmt.Errorf("not a command topic")
}

func (b *Bridge) lastMode(key string) state.Mode {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastOn[key]
}

// latest is the uploaded image's version, "" when there is none.
func (b *Bridge) latest() string {
	if b.opt.Firmware == nil {
		return ""
	}
	info, ok := b.opt.Firmware.Current()
	if !ok {
		return ""
	}
	return info.Version
}

// sync publishes every retained topic whose payload changed and clears the
// topics nothing publishes any more.
func (b *Bridge) sync(ctx context.Context, cm *autopaho.ConnectionManager) {
	want := b.desired()
	var changed []string
	for topic, p := range want {
		if old, ok := b.sent[topic]; !ok || old == nil || !bytes.Equal(old, p) {
			changed = append(changed, topic)
		}
	}
	slices.SortFunc(changed, b.topics.order)
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	publish := func(topic string, payload []byte) bool {
		if _, err := cm.Publish(pctx, &paho.Publish{Topic: topic, Payload: payload, Retain: true}); err != nil {
			b.log.Warn("MQTT publish failed; it is retried on the next change or connection", "topic", topic, "err", err)
			return false
		}
		b.published.Add(1)
		return true
	}
	// Forgotten first, so a lamp's entities are gone before anything new.
	for topic := range b.sent {
		if _, ok := want[topic]; !ok && publish(topic, nil) {
			delete(b.sent, topic)
		}
	}
	for _, topic := range changed {
		p := want[topic]
		if !publish(topic, p) {
			return
		}
		b.sent[topic] = p
	}
}

// Connected reports whether the broker connection is up.
func (b *Bridge) Connected() bool { return b.Status().Connected }
