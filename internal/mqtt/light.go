package mqtt

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"github.com/cloudcloud/cloudcloud/internal/invalid"
	"github.com/cloudcloud/cloudcloud/internal/state"
	"github.com/cloudcloud/cloudcloud/protocol"
)

// Light is what a light entity shows: a display state and its brightness.
type Light struct {
	State      state.State
	Brightness int // percent, 0-100; the colour the lamp is sent is State.Color times this
}

// Command is a light command as cloudcloud applies it: a change of the
// display state plus a brightness, which state.Change does not carry yet
// (issue 13 adds it).
type Command struct {
	Change     state.Change
	Brightness *int // percent 0-100; nil: unchanged
}

// The effects of MQTT.md, in Home Assistant's effect list order.
const (
	effectSteady  = "Steady"
	effectWeather = "Weather"
	effectPulse   = "Pulse " // + 1-9
)

// effectList is the light's effect_list.
func effectList() []string {
	list := []string{effectSteady}
	for i := 1; i <= 9; i++ {
		list = append(list, effectPulse+strconv.Itoa(i))
	}
	return append(list, effectWeather)
}

// rgb is Home Assistant's colour object.
type rgb struct {
	R int `json:"r"`
	G int `json:"g"`
	B int `json:"b"`
}

// lightState is the light state JSON of MQTT.md.
type lightState struct {
	State      string `json:"state"`
	ColorMode  string `json:"color_mode"`
	Color      rgb    `json:"color"`
	Brightness int    `json:"brightness,omitempty"` // absent when OFF: Home Assistant ignores 0
	Effect     string `json:"effect"`
}

// stateJSON is l as Home Assistant's JSON schema light reads it.
func stateJSON(l Light) []byte {
	s := l.State
	out := lightState{State: "ON", ColorMode: "rgb", Color: rgb{int(s.Color.R), int(s.Color.G), int(s.Color.B)}, Effect: effectSteady}
	switch {
	case s.Mode == state.ModeWeather:
		out.Effect = effectWeather
	case s.Pulse > 0:
		out.Effect = effectPulse + strconv.Itoa(s.Pulse)
	}
	if s.Mode == state.ModeOff || l.Brightness <= 0 {
		out.State = "OFF"
	} else {
		out.Brightness = scaleTo255(l.Brightness)
	}
	b, _ := json.Marshal(out) // plain strings and ints: cannot fail
	return b
}

// scaleTo255 maps a percentage to Home Assistant's 0-255 brightness.
func scaleTo255(pct int) int { return int(math.Round(float64(min(max(pct, 0), 100)) * 255 / 100)) }

// lightCommand is the light command JSON; pointers tell absent from zero.
type lightCommand struct {
	State      *string         `json:"state"`
	Color      json.RawMessage `json:"color"`
	Brightness *int            `json:"brightness"`
	Effect     *string         `json:"effect"`
}

// parseCommand turns a light command into a Command. lastOn is the mode the
// light showed before it was switched off, for a bare {"state": "ON"}. The
// command is checked completely here and then by the same validation as
// PUT /api/state, so a bad one changes nothing.
func parseCommand(payload []byte, cur state.Mode, lastOn state.Mode) (Command, error) {
	var c lightCommand
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Command{}, invalid.Field("payload", "not a light command (%v); send JSON such as {\"state\": \"ON\", \"color\": {\"r\": 255, \"g\": 65, \"b\": 174}}", err)
	}
	if dec.More() {
		return Command{}, invalid.Field("payload", "more than one JSON value; send one light command")
	}
	var out Command
	manual := false
	if c.Color != nil {
		col, err := parseColor(c.Color)
		if err != nil {
			return Command{}, err
		}
		out.Change.Color = &col
		manual = true
	}
	if c.Brightness != nil {
		if *c.Brightness < 0 || *c.Brightness > 255 {
			return Command{}, invalid.Field("brightness", "%d is out of range 0-255", *c.Brightness)
		}
		pct := int(math.Round(float64(*c.Brightness) * 100 / 255))
		out.Brightness = &pct
		manual = true
	}
	var mode state.Mode
	if c.Effect != nil {
		switch e := *c.Effect; {
		case e == effectWeather:
			if manual {
				return Command{}, invalid.Field("effect", "Weather shows the weather's own colours; send it without color or brightness")
			}
			mode = state.ModeWeather
		case e == effectSteady:
			p := 0
			out.Change.Pulse, manual = &p, true
		case strings.HasPrefix(e, effectPulse):
			p, err := strconv.Atoi(strings.TrimPrefix(e, effectPulse))
			if err != nil || p < 1 || p > 9 {
				return Command{}, invalid.Field("effect", "%q is not an effect; use one of %s", e, strings.Join(effectList(), ", "))
			}
			out.Change.Pulse, manual = &p, true
		default:
			return Command{}, invalid.Field("effect", "%q is not an effect; use one of %s", e, strings.Join(effectList(), ", "))
		}
	}
	if manual {
		mode = state.ModeManual
	}
	switch {
	case c.State == nil || *c.State == "ON":
		if mode == "" && c.State != nil {
			// A bare ON brings back what was shown before OFF, and keeps
			// what is shown when already on.
			mode = cur
			if mode == state.ModeOff {
				mode = lastOn
			}
			if mode == "" || mode == state.ModeOff {
				mode = state.ModeManual
			}
		}
	case *c.State == "OFF":
		mode = state.ModeOff
	default:
		return Command{}, invalid.Field("state", "%q is neither ON nor OFF", *c.State)
	}
	if mode != "" {
		out.Change.Mode = &mode
	}
	if out.Change.Empty() && out.Brightness == nil {
		return Command{}, invalid.Field("payload", "the command changes nothing; send state, color, brightness or effect")
	}
	return out, nil
}

// parseColor reads {"r": 0-255, "g": 0-255, "b": 0-255}.
func parseColor(raw json.RawMessage) (protocol.RGB, error) {
	var c struct{ R, G, B *int }
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&c); err != nil {
		return protocol.RGB{}, invalid.Field("color", "must be {\"r\": 0-255, \"g\": 0-255, \"b\": 0-255}: %v", err)
	}
	var out [3]uint8
	for i, v := range []struct {
		name string
		v    *int
	}{{"r", c.R}, {"g", c.G}, {"b", c.B}} {
		if v.v == nil {
			return protocol.RGB{}, invalid.Field("color."+v.name, "is missing; send r, g and b")
		}
		if *v.v < 0 || *v.v > 255 {
			return protocol.RGB{}, invalid.Field("color."+v.name, "%d is out of range 0-255", *v.v)
		}
		out[i] = uint8(*v.v)
	}
	return protocol.RGB{R: out[0], G: out[1], B: out[2]}, nil
}

// topicID writes id as MQTT topics and Home Assistant object ids can carry
// it: letters, digits, '-' and '_' stay, anything else becomes '_'.
func topicID(id string) string {
	var b strings.Builder
	for _, r := range id {
		if r < 128 && (r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "_"
	}
	return b.String()
}
