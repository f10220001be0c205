// Package state owns the shared display state: what every lamp shows that
// has no state of its own (internal/lamps keeps those, as State values
// too). One Store holds it; a change is validated, applied, written to
// disk, and only then announced, so a 2xx answer means the change survives
// a crash.
package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/invalid"
	"github.com/cloudcloud/cloudcloud/protocol"
)

// Mode is what the lamps show.
type Mode string

// The modes of API.md.
const (
	ModeOff     Mode = "off"
	ModeWeather Mode = "weather"
	ModeManual  Mode = "manual"
)

func (m Mode) valid() bool { return m == ModeOff || m == ModeWeather || m == ModeManual }

// Weather is the live weather as the lamps would show it.
type Weather struct {
	Code        int     `json:"code"`
	Intensity   float64 `json:"intensity"`
	Description string  `json:"description"`
	Source      string  `json:"source"`
}

// DefaultWeather is what weather mode shows with no weather key: clear sky.
var DefaultWeather = Weather{Code: int(protocol.WeatherClear), Intensity: 9, Description: "clear sky (no weather key configured)", Source: "default"}

// Override is a person previewing a weather animation on the lamps.
type Override struct {
	Code      int     `json:"code"`
	Intensity float64 `json:"intensity"`
}

// State is the display state as the API shows it.
type State struct {
	Mode            Mode         `json:"mode"`
	Color           protocol.RGB `json:"color"`
	Brightness      int          `json:"brightness"` // 0-100 %; manual mode sends Color scaled by it
	Pulse           int          `json:"pulse"`
	Weather         Weather      `json:"weather"`
	WeatherOverride *Override    `json:"weather_override"`
	// PreviewEndsAt is when the weather preview ends by itself and the
	// lamps go back to the live weather; nil without a preview.
	PreviewEndsAt *time.Time `json:"preview_ends_at,omitempty"`
	Packet        string     `json:"packet"`
	UpdatedAt     time.Time  `json:"updated_at"`
}

// Default is the state after a fresh install: off, a warm pink ready for
// manual mode, clear sky until the weather says otherwise.
func Default() State {
	s := State{Mode: ModeOff, Color: protocol.RGB{R: 255, G: 65, B: 174}, Brightness: DefaultBrightness, Weather: DefaultWeather}
	s.Packet = s.packet().String()
	return s
}

// DefaultBrightness is full brightness, also what a state saved before
// brightness existed is read with.
const DefaultBrightness = 100

// Dimmed is c at brightness percent, each channel rounded to the nearest
// step. Color itself is never dimmed, so the hue survives any dimming.
func Dimmed(c protocol.RGB, brightness int) protocol.RGB {
	scale := func(v uint8) uint8 { return uint8((int(v)*brightness + 50) / 100) }
	return protocol.RGB{R: scale(c.R), G: scale(c.G), B: scale(c.B)}
}

// DisplayPacket is what a lamp shows in this state.
func (s State) DisplayPacket() protocol.Packet { return s.packet() }

// packet derives the display packet. The state is validated before it is
// stored, so the constructors cannot fail here; a failure would be a bug and
// falls back to off rather than sending a lamp garbage.
func (s State) packet() protocol.Packet {
	switch s.Mode {
	case ModeManual:
		if p, err := protocol.Manual(Dimmed(s.Color, s.Brightness), s.Pulse); err == nil {
			return p
		}
	case ModeWeather:
		w := Override{Code: s.Weather.Code, Intensity: s.Weather.Intensity}
		if s.WeatherOverride != nil {
			w = *s.WeatherOverride
		}
		code := protocol.WeatherCode(w.Code)
		// Clamped: a state written before intensities were capped at 9
		// for codes 3 and 5-9 may still hold a 10.
		if p, err := protocol.Weather(code, protocol.ClampIntensity(code, protocol.RoundIntensity(w.Intensity))); err == nil {
			return p
		}
	}
	return protocol.Off()
}

// Change is a partial update, as PUT /api/state and the UI's forms send it.
// Nil fields stay as they are.
type Change struct {
	Mode            *Mode          `json:"mode,omitempty"`
	Color           *protocol.RGB  `json:"color,omitempty"`
	Brightness      *int           `json:"brightness,omitempty"`
	Pulse           *int           `json:"pulse,omitempty"`
	WeatherOverride OverrideChange `json:"weather_override"`
}

// OverrideChange tells "set the override to this", "clear it" (JSON null)
// and "leave it" (absent) apart.
type OverrideChange struct {
	Set   bool
	Value *Override // nil with Set: back to the live weather
}

// UnmarshalJSON is called for null too, which is what makes "clear" visible.
func (o *OverrideChange) UnmarshalJSON(b []byte) error {
	o.Set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		o.Value = nil
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var v Override
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("weather_override must be null or {\"code\": 1-9, \"intensity\": 0-10}: %w", err)
	}
	o.Value = &v
	return nil
}

// MarshalJSON writes the override or null.
func (o OverrideChange) MarshalJSON() ([]byte, error) { return json.Marshal(o.Value) }

// Empty reports whether the change changes nothing.
func (c Change) Empty() bool {
	return c.Mode == nil && c.Color == nil && c.Brightness == nil && c.Pulse == nil && !c.WeatherOverride.Set
}

// With returns s with c applied and its packet derived, or the first
// validation error (an *invalid.Error); s itself is never modified: what a
// store in state s would hold after Apply(c). The lamp registry keeps each
// lamp's own state with it, and a fade computes where it goes.
func (s State) With(c Change) (State, error) {
	next, err := s.apply(c)
	if err != nil {
		return s, err
	}
	next.Packet = next.packet().String()
	return next, nil
}

// apply returns s with c applied, or the first validation error; s itself is
// never modified, so a bad change leaves the state intact.
func (s State) apply(c Change) (State, error) {
	if c.Mode != nil {
		if !c.Mode.valid() {
			return s, invalid.Field("mode", "%q is not a mode; use off, weather or manual", *c.Mode)
		}
		s.Mode = *c.Mode
	}
	if c.Color != nil {
		s.Color = *c.Color
	}
	if c.Brightness != nil {
		if *c.Brightness < 0 || *c.Brightness > 100 {
			return s, invalid.Field("brightness", "%d is out of range 0-100 (percent; 100 = full)", *c.Brightness)
		}
		s.Brightness = *c.Brightness
	}
	if c.Pulse != nil {
		if *c.Pulse < 0 || *c.Pulse > 9 {
			return s, invalid.Field("pulse", "%d is out of range 0-9 (0 = steady)", *c.Pulse)
		}
		s.Pulse = *c.Pulse
	}
	if c.WeatherOverride.Set {
		if v := c.WeatherOverride.Value; v != nil {
			if err := validateOverride(*v); err != nil {
				return s, err
			}
			o := *v
			s.WeatherOverride = &o
		} else {
			s.WeatherOverride = nil
		}
	}
	return s, nil
}

func validateOverride(o Override) error {
	if o.Code < 1 || o.Code > 9 {
		return invalid.Field("weather_override.code", "%d is out of range 1-9", o.Code)
	}
	in, err := protocol.IntensityFromFloat(o.Intensity)
	if err != nil {
		return invalid.Field("weather_override.intensity", "%v (0-10, two decimals at most)", err)
	}
	if _, err := protocol.Weather(protocol.WeatherCode(o.Code), in); err != nil {
		return invalid.Field("weather_override.intensity", "%v", err)
	}
	return nil
}

// Validate checks c as Apply would, without applying it anywhere: scenes
// and schedules keep changes to apply later and refuse a bad one when it is
// saved, not when it is due.
func Validate(c Change) error {
	_, err := Default().apply(c)
	return err
}
