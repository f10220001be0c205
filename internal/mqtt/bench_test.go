package mqtt

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/mqtt/mqtttest"
	"github.com/cloudcloud/cloudcloud/internal/state"
	"github.com/cloudcloud/cloudcloud/internal/storage"
	"github.com/cloudcloud/cloudcloud/protocol"
)

// manyLamps is n lamps that show the shared state, as every lamp does
// until it is set on its own; own holds the lamps set on their own.
type manyLamps struct {
	n      int
	shared Shared
	bus    *events.Bus
	mu     sync.Mutex
	own    map[string]Light
}

func lampID(i int) string { return fmt.Sprintf("lamp-%04d", i) }

func (m *manyLamps) List() []Lamp {
	all := m.shared.Get()
	out := make([]Lamp, m.n)
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range out {
		id := lampID(i)
		l, ok := m.own[id]
		if !ok {
			l = all
		}
		out[i] = Lamp{ID: id, Label: id, Online: true, Firmware: "1.4.2", Light: l}
	}
	return out
}

// set gives one lamp its own light and announces it, as the registry would.
func (m *manyLamps) set(id string, l Light) {
	m.mu.Lock()
	m.own[id] = l
	m.mu.Unlock()
	m.bus.Publish(events.Event{Type: events.TypeDevice})
}

func (m *manyLamps) Apply(string, Command) (Light, error) { return Light{}, nil }
func (m *manyLamps) Reboot(string) error                  { return nil }
func (m *manyLamps) Update(string) error                  { return nil }
func (m *manyLamps) SetDebug(string, bool) error          { return nil }

// BenchmarkChangeToStateMessage measures, with 1,000 lamps on a real
// mosquitto, the time from a change to its last state message arriving at
// a subscriber of everything (as Home Assistant), and the broker traffic
// per change: messages and topic + payload bytes that subscriber receives.
// "one lamp" changes a single lamp's own light; "all lamps" changes the
// shared state, which every lamp follows.
func BenchmarkChangeToStateMessage(b *testing.B) {
	const n = 1000
	broker := mqtttest.Start(b)
	bus := events.NewBus()
	dir, err := storage.OpenDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	store, err := state.Open(dir, bus, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	shared := StoreShared{Store: store}
	lamps := &manyLamps{n: n, shared: shared, bus: bus, own: map[string]Light{}}
	bridge, err := New(Options{
		URL: broker.URL(), ClientID: "bench", Discovery: true, Bus: bus, Shared: shared, Lamps: lamps,
		Firmware: fakeFirmware{"1.5.0"}, Weather: fakeWeather{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = bridge.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	ha := mqtttest.NewObserver(b, broker, "#")
	start := time.Now()
	ha.WaitHas("cloudcloud/lamp/"+lampID(n-1)+"/update/state", "latest_version")
	b.Logf("first publication of %d lamps (discovery and state): %v, %d messages, %d bytes", n, time.Since(start), ha.Messages(), ha.Bytes())

	// Every change differs from every earlier one, also when the testing
	// package runs a sub-benchmark again (-count, or b.N = 1 first).
	seq := 0
	colour := func(i int) protocol.RGB { return protocol.RGB{R: uint8(i), G: uint8(i >> 8), B: uint8(i >> 16)} }
	measure := func(b *testing.B, change func(i int), last func(i int) (topic, sub string)) {
		msgs, bytes := ha.Messages(), ha.Bytes()
		b.ResetTimer()
		for range b.N {
			seq++
			i := seq
			change(i)
			topic, sub := last(i)
			ha.WaitHas(topic, sub)
		}
		b.StopTimer()
		b.ReportMetric(float64(ha.Messages()-msgs)/float64(b.N), "msgs/change")
		b.ReportMetric(float64(ha.Bytes()-bytes)/float64(b.N), "B/change")
	}
	hexRGB := func(c protocol.RGB) string { return fmt.Sprintf(`"color":{"r":%d,"g":%d,"b":%d}`, c.R, c.G, c.B) }
	b.Run("one lamp", func(b *testing.B) {
		measure(b, func(i int) {
			st := store.Get()
			st.Mode, st.Color = state.ModeManual, colour(i)
			lamps.set(lampID(i%n), Light{State: st, Brightness: 100})
		}, func(i int) (string, string) { return "cloudcloud/lamp/" + lampID(i%n) + "/state", hexRGB(colour(i)) })
	})
	b.Run("all lamps", func(b *testing.B) {
		lamps.mu.Lock()
		clear(lamps.own)
		lamps.mu.Unlock()
		manual := state.ModeManual
		measure(b, func(i int) {
			c := colour(i + 7)
			if _, err := store.Apply(state.Change{Mode: &manual, Color: &c}); err != nil {
				b.Fatal(err)
			}
		}, func(i int) (string, string) {
			return "cloudcloud/lamp/" + lampID(n-1) + "/state", hexRGB(colour(i + 7))
		})
	})
}
