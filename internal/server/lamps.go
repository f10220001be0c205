package server

import (
	"github.com/cloudcloud/cloudcloud/internal/automation"
	"github.com/cloudcloud/cloudcloud/internal/lamps"
	"github.com/cloudcloud/cloudcloud/internal/state"
)

// automationLamps gives scenes and schedules the lamp registry: the shared
// state as PUT /api/state sets it (every lamp's own state replaced), and
// each lamp's own state as PUT /api/lamps/<id>/state sets it.
type automationLamps struct{ r *lamps.Registry }

func (a automationLamps) Shared() state.State { return a.r.Get() }

func (a automationLamps) ApplyShared(c state.Change) (state.State, error) { return a.r.Apply(c) }

func (a automationLamps) Lamps() []automation.LampState {
	list := a.r.Lamps()
	out := make([]automation.LampState, len(list))
	for i, l := range list {
		out[i] = automation.LampState{ID: l.ID, State: l.State, FollowsShared: l.FollowsShared}
	}
	return out
}

func (a automationLamps) Lamp(id string) (state.State, bool) {
	st, err := a.r.StateOf(id)
	return st, err == nil
}

func (a automationLamps) ApplyLamp(id string, c state.Change) (state.State, error) {
	return a.r.SetState(id, c)
}
