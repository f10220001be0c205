// Package automation runs the lamps by themselves: scenes (named set-ups
// applied with one tap), schedules (at a time of day or a sun event, on
// some weekdays) and one-off timers, each optionally fading there, with
// the clock injectable so tests never wait for it.
package automation

import (
	"encoding/json"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/state"
)

// Lamps is what scenes and schedules change: the shared display state and
// each lamp's own. The per-lamp half comes with lamps as individuals; until
// then SharedOnly serves the shared half.
type Lamps interface {
	Shared() state.State
	ApplyShared(state.Change) (state.State, error)
	// Lamps lists every known lamp, with FollowsShared true while it shows
	// the shared state.
	Lamps() []LampState
	// Lamp is one known lamp's state; ok is false for an unknown id.
	Lamp(id string) (st state.State, ok bool)
	ApplyLamp(id string, c state.Change) (state.State, error)
}

// LampState is one lamp as scenes see it.
type LampState struct {
	ID            string
	State         state.State
	FollowsShared bool
}

// Subset is a state subset as scenes and schedules keep it: a state.Change
// whose JSON has only the members it sets (a Change always writes
// weather_override, which would clear a preview when read back).
type Subset struct{ state.Change }

// MarshalJSON writes only the members that are set.
func (s Subset) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(s.Change)
	if err != nil || s.WeatherOverride.Set {
		return b, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	delete(m, "weather_override")
	return json.Marshal(m)
}

// FromState is the subset that sets everything a person can set in st.
func FromState(st state.State) Subset {
	mode, color, brightness, pulse := st.Mode, st.Color, st.Brightness, st.Pulse
	c := state.Change{Mode: &mode, Color: &color, Brightness: &brightness, Pulse: &pulse, WeatherOverride: state.OverrideChange{Set: true}}
	if st.WeatherOverride != nil {
		o := *st.WeatherOverride
		c.WeatherOverride.Value = &o
	}
	return Subset{c}
}

// Clock is the scheduler's source of time, so tests drive it.
type Clock interface {
	Now() time.Time
	// After is time.After with a way to stop the timer.
	After(d time.Duration) (c <-chan time.Time, stop func() bool)
}

// WallClock is the real clock.
type WallClock struct{}

func (WallClock) Now() time.Time { return time.Now() }

func (WallClock) After(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}
