package state

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/invalid"
	"github.com/cloudcloud/cloudcloud/internal/natstest"
	"github.com/cloudcloud/cloudcloud/internal/storage"
	"github.com/cloudcloud/cloudcloud/protocol"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func ptr[T any](v T) *T { return &v }

func bucket(t *testing.T, dir string) storage.Bucket {
	t.Helper()
	d, err := storage.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func open(t *testing.T, dir string) (*Store, *events.Bus) {
	t.Helper()
	bus := events.NewBus()
	s, err := Open(bucket(t, dir), bus, quiet)
	if err != nil {
		t.Fatal(err)
	}
	return s, bus
}

// brokenDisk is a bucket whose writes fail, as on a full or read-only disk.
type brokenDisk struct{ storage.Bucket }

func (brokenDisk) Put(string, []byte) (uint64, error) {
	return 0, errors.New("write state.json: no space left on device")
}

func (brokenDisk) Update(string, []byte, uint64) (uint64, error) {
	return 0, errors.New("write state.json: no space left on device")
}

func TestApplyValidatesAndKeepsStateIntact(t *testing.T) {
	tests := []struct {
		name  string
		c     string // JSON as the API would receive it
		field string
	}{
		{"pulse too high", `{"pulse": 12}`, "pulse"},
		{"pulse negative", `{"pulse": -1}`, "pulse"},
		{"brightness too high", `{"brightness": 101}`, "brightness"},
		{"brightness negative", `{"brightness": -5}`, "brightness"},
		{"mode unknown", `{"mode": "disco"}`, "mode"},
		{"override code", `{"weather_override": {"code": 10, "intensity": 5}}`, "weather_override.code"},
		{"override intensity", `{"weather_override": {"code": 3, "intensity": 10.5}}`, "weather_override.intensity"},
		{"override decimals", `{"weather_override": {"code": 3, "intensity": 4.125}}`, "weather_override.intensity"},
		// Codes 3 and 5-9 carry 1-9, as the original server sent.
		{"storm at 10", `{"weather_override": {"code": 6, "intensity": 10}}`, "weather_override.intensity"},
		{"rain at 0", `{"weather_override": {"code": 5, "intensity": 0}}`, "weather_override.intensity"},
		{"windy at 9.5", `{"weather_override": {"code": 9, "intensity": 9.5}}`, "weather_override.intensity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := open(t, t.TempDir())
			before := s.Get()
			var c Change
			if err := json.Unmarshal([]byte(tt.c), &c); err != nil {
				t.Fatal(err)
			}
			_, err := s.Apply(c)
			var ve *invalid.Error
			if !errors.As(err, &ve) || ve.Field != tt.field {
				t.Fatalf("Apply(%s) err = %v, want a ValidationError on %s", tt.c, err, tt.field)
			}
			if s.Get() != before {
				t.Errorf("state changed after a refused change")
			}
		})
	}
}

func TestApplyDerivesPacket(t *testing.T) {
	s, bus := open(t, t.TempDir())
	sub := bus.Subscribe(10, events.TypeState)
	tests := []struct {
		c    string
		want string
	}{
		{`{"mode": "manual", "color": "#FF41AE", "pulse": 0}`, "[cc:2:255,65,174:0]"},
		{`{"color": "rgb(255,162,174)"}`, "[cc:2:255,162,174:0]"},
		{`{"pulse": 3}`, "[cc:2:255,162,174:3]"},
		{`{"mode": "weather"}`, "[cc:1:3:9]"},
		{`{"weather_override": {"code": 1, "intensity": 4.37}}`, "[cc:1:1:4.37]"},
		{`{"weather_override": {"code": 4, "intensity": 10}}`, "[cc:1:4:10]"},
		{`{"weather_override": {"code": 2, "intensity": 0}}`, "[cc:1:2:0]"},
		{`{"weather_override": {"code": 6, "intensity": 9}}`, "[cc:1:6:9]"},
		{`{"weather_override": null}`, "[cc:1:3:9]"},
		{`{"mode": "off"}`, "[cc:0:?:?]"},
	}
	for _, tt := range tests {
		var c Change
		if err := json.Unmarshal([]byte(tt.c), &c); err != nil {
			t.Fatalf("%s: %v", tt.c, err)
		}
		got, err := s.Apply(c)
		if err != nil {
			t.Fatalf("Apply(%s): %v", tt.c, err)
		}
		if got.Packet != tt.want {
			t.Errorf("after %s packet = %s, want %s", tt.c, got.Packet, tt.want)
		}
		e := <-sub.C
		if e.Data.(State).Packet != tt.want {
			t.Errorf("event after %s carries %s", tt.c, e.Data.(State).Packet)
		}
	}
}

func TestStateJSONShape(t *testing.T) {
	s := Default()
	s.Mode = ModeManual
	s.Packet = s.packet().String()
	b, _ := json.Marshal(s)
	for _, want := range []string{`"mode":"manual"`, `"color":"#ff41ae"`, `"pulse":0`, `"brightness":100`, `"weather_override":null`,
		`"packet":"[cc:2:255,65,174:0]"`, `"weather":{"code":3,"intensity":9,`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("state JSON %s lacks %s", b, want)
		}
	}
}

func TestPersistsAcrossOpen(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir)
	if _, err := s.Apply(Change{Mode: ptr(ModeManual), Color: &protocol.RGB{R: 1, G: 2, B: 3}, Pulse: ptr(5)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetWeather(Weather{Code: 5, Intensity: 6.5, Description: "rain", Source: "openweathermap"}); err != nil {
		t.Fatal(err)
	}
	again, _ := open(t, dir)
	got := again.Get()
	if got.Packet != "[cc:2:1,2,3:5]" || got.Weather.Code != 5 || got.UpdatedAt.IsZero() {
		t.Errorf("reopened state = %+v", got)
	}
}

func TestCorruptFileIsKeptAsideAndDefaultsUsed(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, Key+".json"), []byte("{not json"), 0o600)
	s, _ := open(t, dir)
	if s.Get().Packet != "[cc:0:?:?]" {
		t.Errorf("packet = %s, want defaults", s.Get().Packet)
	}
	matches, _ := filepath.Glob(filepath.Join(dir, Key+".json.corrupt-*"))
	if len(matches) != 1 {
		t.Errorf("corrupt file not kept aside: %v", matches)
	}
	// An out-of-range value in an otherwise valid file also falls back.
	os.WriteFile(filepath.Join(dir, Key+".json"), []byte(`{"mode":"manual","color":"#000000","pulse":42}`), 0o600)
	s, _ = open(t, dir)
	if s.Get().Mode != ModeOff {
		t.Errorf("invalid saved pulse accepted: %+v", s.Get())
	}
}

func TestWatchSeesEveryChangeInOrder(t *testing.T) {
	s, _ := open(t, t.TempDir())
	var seen []string
	s.Watch(func(st State) { seen = append(seen, st.Packet) })
	s.Apply(Change{Mode: ptr(ModeManual)})
	s.Apply(Change{Pulse: ptr(12)}) // refused: no call
	s.Apply(Change{Pulse: ptr(2)})
	want := []string{"[cc:0:?:?]", "[cc:2:255,65,174:0]", "[cc:2:255,65,174:2]"}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("watch saw %v, want %v", seen, want)
	}
}

func TestSaveFailureChangesNothing(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir)
	s.records = brokenDisk{s.records}
	if _, err := s.Apply(Change{Mode: ptr(ModeManual)}); err == nil || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("Apply with an unwritable dir: %v", err)
	}
	if s.Get().Mode != ModeOff {
		t.Errorf("state changed although saving failed")
	}
}

// TestSIGKILLLeavesOldOrNewState runs a child process that changes the pulse
// as fast as it can and prints each acknowledged value, kills it with SIGKILL
// mid-stream, and checks the file holds the last acknowledged value or the
// one being written: never a broken file.
func TestSIGKILLLeavesOldOrNewState(t *testing.T) {
	if os.Getenv("CLOUDCLOUD_STATE_CHILD") != "" {
		return
	}
	for round := range 5 {
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^TestChildWriter$")
		cmd.Env = append(os.Environ(), "CLOUDCLOUD_STATE_CHILD="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		last := -1
		for n := 0; n < 30+round*17 && sc.Scan(); n++ {
			if v, err := strconv.Atoi(sc.Text()); err == nil {
				last = v
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		// The child may have acknowledged more changes before the kill
		// landed; what it printed is in the pipe still (a line cut by the
		// kill reads as a smaller number, hence max).
		for sc.Scan() {
			if v, err := strconv.Atoi(sc.Text()); err == nil {
				last = max(last, v)
			}
		}
		io.Copy(io.Discard, out)
		cmd.Wait()
		if last < 0 {
			t.Fatal("child acknowledged no change")
		}
		s, _ := open(t, dir)
		got := s.Get().Pulse
		if got != last%10 && got != (last+1)%10 {
			t.Errorf("round %d: after SIGKILL pulse = %d, last acknowledged %d", round, got, last%10)
		}
		if matches, _ := filepath.Glob(filepath.Join(dir, "*.corrupt-*")); len(matches) > 0 {
			t.Errorf("round %d: state file was corrupt after SIGKILL", round)
		}
	}
}

// TestChildWriter is the child half of the SIGKILL test.
func TestChildWriter(t *testing.T) {
	dir := os.Getenv("CLOUDCLOUD_STATE_CHILD")
	if dir == "" {
		t.Skip("only runs as the child of TestSIGKILLLeavesOldOrNewState")
	}
	s, err := Open(bucket(t, dir), nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	s.Apply(Change{Mode: ptr(ModeManual)})
	for i := 0; i < 100000; i++ {
		if _, err := s.Apply(Change{Pulse: ptr(i % 10)}); err != nil {
			t.Fatal(err)
		}
		fmt.Println(i)
	}
}

// TestStoredIntensityAboveNine: the live weather may hold a 10 for codes 3
// and 5-9 (a state.json written before they were capped at 9); lamps get
// 9, never 10 and never off, now and after a restart.
func TestStoredIntensityAboveNine(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir)
	mode := ModeWeather
	if _, err := s.Apply(Change{Mode: &mode}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetWeather(Weather{Code: 6, Intensity: 10, Description: "heavy thunderstorm", Source: "openweathermap"}); err != nil {
		t.Fatal(err)
	}
	if got := s.Get().Packet; got != "[cc:1:6:9]" {
		t.Errorf("storm at 10 is sent as %s, want [cc:1:6:9]", got)
	}
	again, _ := open(t, dir)
	if got := again.Get().DisplayPacket().String(); got != "[cc:1:6:9]" {
		t.Errorf("after a restart the lamps get %s", got)
	}
}

// TestPreviewEndsByItself: a weather preview, however it was set, ends a
// PreviewFor after its last change and the lamps show the live weather; a
// preview found on disk at start gets its full time again.
func TestPreviewEndsByItself(t *testing.T) {
	dir := t.TempDir()
	s, bus := open(t, dir)
	s.mu.Lock()
	s.previewFor = 200 * time.Millisecond
	s.mu.Unlock()
	sub := bus.Subscribe(16, events.TypeState)
	ov := func(code int) Change {
		return Change{Mode: ptr(ModeWeather), WeatherOverride: OverrideChange{Set: true, Value: &Override{Code: code, Intensity: 5}}}
	}
	st, err := s.Apply(ov(5))
	if err != nil || st.PreviewEndsAt == nil {
		t.Fatalf("a preview without an end: %+v %v", st, err)
	}
	if _, err := s.Apply(Change{Pulse: ptr(3)}); err != nil {
		t.Fatal(err)
	}
	if got := s.Get().PreviewEndsAt; got == nil || !got.Equal(*st.PreviewEndsAt) {
		t.Errorf("a change that is not the preview's moved its end: %v, was %v", got, st.PreviewEndsAt)
	}
	deadline := time.After(5 * time.Second)
	for ended := false; !ended; {
		select {
		case e := <-sub.C:
			got := e.Data.(State)
			ended = got.WeatherOverride == nil
			if ended && (got.PreviewEndsAt != nil || got.Mode != ModeWeather || got.Packet != "[cc:1:3:9]") {
				t.Errorf("after the preview: %+v", got)
			}
		case <-deadline:
			t.Fatal("the preview did not end")
		}
	}

	// A preview on disk when the server stopped.
	if _, err := s.Apply(ov(7)); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.previewTimer.Stop() // this store keeps it; a restarted one must not
	s.mu.Unlock()
	again, _ := open(t, dir)
	ends := again.Get().PreviewEndsAt
	if again.Get().WeatherOverride == nil || ends == nil || time.Until(*ends) > PreviewFor || time.Until(*ends) < PreviewFor-time.Minute/2 {
		t.Errorf("a restarted store gives the preview on disk no fresh end: %v", ends)
	}
	again.mu.Lock()
	again.previewTimer.Stop()
	again.mu.Unlock()
}

// TestAnotherWritersChangeBecomesCurrent: two stores on one bucket (two
// nodes on shared storage): a change through one becomes the other's
// state, reaches its watchers (its lamps) and its bus; its own writes are
// not taken twice.
func TestAnotherWritersChangeBecomesCurrent(t *testing.T) {
	records := bucket(t, t.TempDir())
	one, err := Open(records, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	busTwo := events.NewBus()
	two, err := Open(records, busTwo, quiet)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan string, 8)
	two.Watch(func(st State) { seen <- st.Packet })
	<-seen // the current state, at once
	sub := busTwo.Subscribe(8, events.TypeState)
	if _, err := one.Apply(Change{Mode: ptr(ModeManual), Pulse: ptr(4)}); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-seen:
		if p != "[cc:2:255,65,174:4]" {
			t.Errorf("the other store's lamps got %s", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the change through one store never reached the other")
	}
	if e := <-sub.C; e.Data.(State).Pulse != 4 {
		t.Errorf("the other store announced %+v", e.Data)
	}
	if _, err := two.Apply(Change{Pulse: ptr(5)}); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-seen:
		if p != "[cc:2:255,65,174:5]" {
			t.Errorf("its own change: %s", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("its own change did not reach its watchers")
	}
	select {
	case p := <-seen:
		t.Errorf("its own write came back through the watch: %s", p)
	case <-time.After(100 * time.Millisecond):
	}
	if got := one.Get().Pulse; got != 5 {
		waitPulse := time.After(5 * time.Second)
		for one.Get().Pulse != 5 {
			select {
			case <-waitPulse:
				t.Fatalf("the first store did not follow: pulse %d", one.Get().Pulse)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

// TestBrightnessKeepsTheColour: dimming to 2 % and back gives the chosen
// colour again (it used to give #ff3399 for #ff41ae), the packet carries the
// dimmed colour, and brightness in weather mode leaves the mode alone.
func TestBrightnessKeepsTheColour(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir)
	steps := []struct {
		c          string
		wantColor  string
		wantPacket string
		wantMode   Mode
	}{
		{`{"mode": "manual", "color": "#ff41ae"}`, "#ff41ae", "[cc:2:255,65,174:0]", ModeManual},
		{`{"brightness": 2}`, "#ff41ae", "[cc:2:5,1,3:0]", ModeManual},
		{`{"brightness": 50}`, "#ff41ae", "[cc:2:128,33,87:0]", ModeManual},
		{`{"brightness": 0}`, "#ff41ae", "[cc:2:0,0,0:0]", ModeManual},
		{`{"brightness": 100}`, "#ff41ae", "[cc:2:255,65,174:0]", ModeManual},
		{`{"mode": "weather"}`, "#ff41ae", "[cc:1:3:9]", ModeWeather},
		{`{"brightness": 30}`, "#ff41ae", "[cc:1:3:9]", ModeWeather},
		{`{"mode": "manual"}`, "#ff41ae", "[cc:2:77,20,52:0]", ModeManual},
	}
	for _, st := range steps {
		var c Change
		if err := json.Unmarshal([]byte(st.c), &c); err != nil {
			t.Fatal(err)
		}
		got, err := s.Apply(c)
		if err != nil {
			t.Fatalf("Apply(%s): %v", st.c, err)
		}
		if got.Color.Hex() != st.wantColor || got.Packet != st.wantPacket || got.Mode != st.wantMode {
			t.Errorf("after %s: color %s packet %s mode %s; want %s %s %s", st.c, got.Color.Hex(), got.Packet, got.Mode, st.wantColor, st.wantPacket, st.wantMode)
		}
	}
	again, _ := open(t, dir)
	if got := again.Get(); got.Brightness != 30 || got.Packet != "[cc:2:77,20,52:0]" {
		t.Errorf("after a restart brightness %d packet %s", got.Brightness, got.Packet)
	}
}

// TestStateWithoutBrightnessIsFull: a state.json written before brightness
// existed is read at full brightness.
func TestStateWithoutBrightnessIsFull(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, Key+".json"), []byte(`{"mode":"manual","color":"#ff41ae","pulse":0}`), 0o600)
	s, _ := open(t, dir)
	if got := s.Get(); got.Brightness != 100 || got.Packet != "[cc:2:255,65,174:0]" {
		t.Errorf("old state read as brightness %d packet %s", got.Brightness, got.Packet)
	}
}

// lagging is a node whose watch of the shared record has not delivered yet.
type lagging struct{ storage.Bucket }

func (lagging) Watch(string, func(storage.Entry)) func() { return func() {} }

// TestAChangeOnAStaleNodeKeepsTheOthers: two nodes on a real NATS server.
// Node b, which has not yet seen node a's change, changes the state too
// (its weather poller, say): a's change is kept and b's applies on top.
func TestAChangeOnAStaleNodeKeepsTheOthers(t *testing.T) {
	buckets := natstest.SharedBuckets(t, 2)
	a, err := Open(buckets[0], events.NewBus(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(lagging{buckets[1]}, events.NewBus(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Apply(Change{Mode: ptr(ModeManual), Pulse: ptr(3)}); err != nil {
		t.Fatal(err)
	}
	rain := Weather{Code: int(protocol.WeatherRain), Intensity: 6, Source: "test"}
	got, err := b.SetWeather(rain)
	if err != nil {
		t.Fatal(err)
	}
	if got.Mode != ModeManual || got.Pulse != 3 || got.Weather != rain {
		t.Errorf("b's state after its change: mode %s pulse %d weather %+v; want a's manual pulse 3 with b's rain", got.Mode, got.Pulse, got.Weather)
	}
	e, err := buckets[0].Get(Key)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := decode(e.Value)
	if err != nil || stored.Mode != ModeManual || stored.Weather != rain {
		t.Errorf("the stored state: %+v %v", stored, err)
	}
}
