package mqtt

import (
	"errors"
	"strings"
	"testing"

	"github.com/cloudcloud/cloudcloud/internal/invalid"
	"github.com/cloudcloud/cloudcloud/internal/state"
	"github.com/cloudcloud/cloudcloud/protocol"
)

func TestStateJSON(t *testing.T) {
	manual := state.Default()
	manual.Mode, manual.Color, manual.Pulse = state.ModeManual, protocol.RGB{R: 255, G: 65, B: 174}, 0
	pulsing := manual
	pulsing.Pulse = 4
	weatherMode := manual
	weatherMode.Mode = state.ModeWeather
	for _, c := range []struct {
		name string
		l    Light
		want string
	}{
		{"manual at full", Light{manual, 100}, `{"state":"ON","color_mode":"rgb","color":{"r":255,"g":65,"b":174},"brightness":255,"effect":"Steady"}`},
		{"half", Light{manual, 50}, `{"state":"ON","color_mode":"rgb","color":{"r":255,"g":65,"b":174},"brightness":128,"effect":"Steady"}`},
		{"0 % is OFF", Light{manual, 0}, `{"state":"OFF","color_mode":"rgb","color":{"r":255,"g":65,"b":174},"effect":"Steady"}`},
		{"pulse", Light{pulsing, 100}, `{"state":"ON","color_mode":"rgb","color":{"r":255,"g":65,"b":174},"brightness":255,"effect":"Pulse 4"}`},
		{"weather", Light{weatherMode, 100}, `{"state":"ON","color_mode":"rgb","color":{"r":255,"g":65,"b":174},"brightness":255,"effect":"Weather"}`},
		{"off", Light{state.Default(), 100}, `{"state":"OFF","color_mode":"rgb","color":{"r":255,"g":65,"b":174},"effect":"Steady"}`},
	} {
		if got := string(stateJSON(c.l)); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
}

func TestParseCommand(t *testing.T) {
	str := func(c Command) string {
		var b strings.Builder
		if m := c.Change.Mode; m != nil {
			b.WriteString("mode=" + string(*m) + " ")
		}
		if col := c.Change.Color; col != nil {
			b.WriteString("color=" + col.Hex() + " ")
		}
		if p := c.Change.Pulse; p != nil {
			b.WriteString("pulse=" + itoa(*p) + " ")
		}
		if br := c.Brightness; br != nil {
			b.WriteString("brightness=" + itoa(*br) + " ")
		}
		return strings.TrimSpace(b.String())
	}
	for _, c := range []struct {
		payload    string
		cur, last  state.Mode
		want, fail string // fail: the invalid field
	}{
		{payload: `{"state":"OFF"}`, cur: state.ModeManual, want: "mode=off"},
		{payload: `{"state":"ON"}`, cur: state.ModeOff, last: state.ModeWeather, want: "mode=weather"},
		{payload: `{"state":"ON"}`, cur: state.ModeOff, want: "mode=manual"},
		{payload: `{"state":"ON"}`, cur: state.ModeWeather, want: "mode=weather"},
		{payload: `{"state":"ON","color":{"r":1,"g":2,"b":3}}`, cur: state.ModeOff, want: "mode=manual color=#010203"},
		{payload: `{"brightness":255}`, want: "mode=manual brightness=100"},
		{payload: `{"brightness":0}`, want: "mode=manual brightness=0"},
		{payload: `{"effect":"Pulse 9"}`, want: "mode=manual pulse=9"},
		{payload: `{"effect":"Steady"}`, want: "mode=manual pulse=0"},
		{payload: `{"state":"ON","effect":"Weather"}`, want: "mode=weather"},
		{payload: `{"state":"OFF","color":{"r":1,"g":2,"b":3}}`, want: "mode=off color=#010203"},
		{payload: `{"color":{"r":256,"g":0,"b":0}}`, fail: "color.r"},
		{payload: `{"color":{"r":1,"g":2}}`, fail: "color.b"},
		{payload: `{"color":"red"}`, fail: "color"},
		{payload: `{"brightness":256}`, fail: "brightness"},
		{payload: `{"brightness":-1}`, fail: "brightness"},
		{payload: `{"effect":"Pulse 0"}`, fail: "effect"},
		{payload: `{"effect":"Rainbow"}`, fail: "effect"},
		{payload: `{"effect":"Weather","brightness":3}`, fail: "effect"},
		{payload: `{"state":"on"}`, fail: "state"},
		{payload: `{"transition":2}`, fail: "payload"},
		{payload: `{}`, fail: "payload"},
		{payload: `{"state":"OFF"} {"state":"ON"}`, fail: "payload"},
		{payload: ``, fail: "payload"},
	} {
		got, err := parseCommand([]byte(c.payload), c.cur, c.last)
		if c.fail != "" {
			var inv *invalid.Error
			if !errors.As(err, &inv) || inv.Field != c.fail {
				t.Errorf("%s: err %v, want an invalid %s", c.payload, err, c.fail)
			}
			continue
		}
		if err != nil || str(got) != c.want {
			t.Errorf("%s (now %s, before off %s): %q, %v; want %q", c.payload, c.cur, c.last, str(got), err, c.want)
		}
	}
}

func TestTopicID(t *testing.T) {
	for in, want := range map[string]string{"kitchen": "kitchen", "a/b+c#": "a_b_c_", "Küche 2": "K_che_2", "": "_", "10.0.0.7": "10_0_0_7"} {
		if got := topicID(in); got != want {
			t.Errorf("topicID(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParseCommand: any payload is a valid Command or an *invalid.Error,
// and a valid one passes the state's own validation.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{`{"state":"ON","color":{"r":1,"g":2,"b":3},"brightness":9,"effect":"Pulse 3"}`, `{"state":"OFF"}`, `{"effect":"Weather"}`, `[]`, `{"color":{}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		c, err := parseCommand(payload, state.ModeOff, state.ModeManual)
		if err != nil {
			var inv *invalid.Error
			if !errors.As(err, &inv) {
				t.Fatalf("error %v is not an *invalid.Error", err)
			}
			return
		}
		if c.Brightness != nil && (*c.Brightness < 0 || *c.Brightness > 100) {
			t.Fatalf("brightness %d%%", *c.Brightness)
		}
		if p := c.Change.Pulse; p != nil && (*p < 0 || *p > 9) {
			t.Fatalf("pulse %d", *p)
		}
	})
}

// FuzzBrokerURL: mqtt.url either parses to mqtt(s)://host:port or is
// refused with a message; it never panics.
func FuzzBrokerURL(f *testing.F) {
	for _, s := range []string{"mqtt://broker", "mqtts://[::1]:8883", "tcp://x", "mqtt://u:p@h", "mqtt://h/path"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := BrokerURL(s)
		if err != nil {
			return
		}
		if (u.Scheme != "mqtt" && u.Scheme != "mqtts") || u.Hostname() == "" || u.Port() == "" || u.User != nil {
			t.Fatalf("BrokerURL(%q) = %v", s, u)
		}
	})
}
