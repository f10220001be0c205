package server

import (
	"fmt"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/automation"
	"github.com/cloudcloud/cloudcloud/internal/lamps"
	"github.com/cloudcloud/cloudcloud/internal/mqtt"
	"github.com/cloudcloud/cloudcloud/internal/state"
	"github.com/cloudcloud/cloudcloud/protocol"
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

// mqttLamps gives the MQTT bridge the lamp registry: every known lamp, its
// own state as PUT /api/lamps/<id>/state sets it, and commands sent to its
// connections, through the node holding them in a cluster (one node's
// bridge takes each command: mqtt.Options.Cluster).
type mqttLamps struct {
	r  *lamps.Registry
	gw lampGateway
}

func (m mqttLamps) List() []mqtt.Lamp {
	list := m.r.Lamps()
	out := make([]mqtt.Lamp, len(list))
	for i, l := range list {
		ml := mqtt.Lamp{ID: l.ID, Label: l.Label, Online: l.Online, Firmware: l.FirmwareVersion,
			Light: mqtt.Light{State: l.State, Brightness: l.State.Brightness}}
		for _, d := range l.Devices {
			ml.Updating = ml.Updating || d.Phase == device.PhaseUpdating
			ml.Debug = ml.Debug || d.Debug
		}
		out[i] = ml
	}
	return out
}

func (m mqttLamps) Apply(id string, c mqtt.Command) (mqtt.Light, error) {
	ch := c.Change
	if c.Brightness != nil {
		ch.Brightness = c.Brightness
	}
	st, err := m.r.SetState(id, ch)
	return mqtt.Light{State: st, Brightness: st.Brightness}, err
}

func (m mqttLamps) Reboot(id string) error { return m.command(id, protocol.Reset()) }

func (m mqttLamps) Update(id string) error { return m.command(id, protocol.Update()) }

func (m mqttLamps) SetDebug(id string, on bool) error {
	conns, err := m.connections(id)
	if err != nil {
		return err
	}
	_, err = m.gw.SetDebug(on, conns)
	return err
}

func (m mqttLamps) command(id string, p protocol.Packet) error {
	conns, err := m.connections(id)
	if err != nil {
		return err
	}
	_, err = m.gw.Command(p, conns)
	return err
}

// connections are the open connections of lamp id, on every node.
func (m mqttLamps) connections(id string) ([]string, error) {
	l, err := m.r.Lamp(id)
	if err != nil {
		return nil, err
	}
	var conns []string
	for _, d := range l.Devices {
		if d.Authenticated {
			conns = append(conns, d.ID)
		}
	}
	if len(conns) == 0 {
		return nil, fmt.Errorf("lamp %q is not connected; nothing was sent", id)
	}
	return conns, nil
}

// mqttScenes gives the MQTT bridge the saved scenes, Home Assistant scenes.
type mqttScenes struct{ s *automation.Scenes }

func (m mqttScenes) List() []mqtt.Scene {
	list := m.s.List()
	out := make([]mqtt.Scene, len(list))
	for i, sc := range list {
		out[i] = mqtt.Scene{ID: sc.ID, Name: sc.Name}
	}
	return out
}

func (m mqttScenes) Apply(id string) error { return m.s.Apply(id) }
