package mqtt

import (
	"fmt"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/invalid"
	"github.com/cloudcloud/cloudcloud/internal/state"
	"github.com/cloudcloud/cloudcloud/protocol"
)

// What exists on main before lamps are individuals (issue 13): the shared
// display state without a brightness, and the gateway's connections. When
// the lamp registry lands, it implements Lamps and these two go.

// StoreShared is the shared display state of a state.Store, always at
// 100 %: state.State has no brightness yet.
type StoreShared struct{ Store *state.Store }

// Get implements Shared.
func (s StoreShared) Get() Light { return Light{State: s.Store.Get(), Brightness: 100} }

// Apply implements Shared: the change goes through the Store's validation
// like PUT /api/state. A brightness other than 100 % is refused whole.
func (s StoreShared) Apply(c Command) (Light, error) {
	if c.Brightness != nil && *c.Brightness != 100 {
		return s.Get(), invalid.Field("brightness", "all lamps run at full brightness until per-lamp brightness exists; send 255 or leave it out")
	}
	if c.Change.Empty() {
		return s.Get(), nil
	}
	st, err := s.Store.Apply(c.Change)
	return Light{State: st, Brightness: 100}, err
}

// GatewayLamps lists the gateway's lamps by Info.Lamp (the name of a named
// secret, else the address), all showing the shared state.
type GatewayLamps struct {
	Gateway *device.Gateway
	Shared  Shared
}

// List implements Lamps: the connected lamps and those that left.
func (g GatewayLamps) List() []Lamp {
	light := g.Shared.Get()
	var out []Lamp
	seen := map[string]int{}
	add := func(i device.Info, online bool) {
		id := i.Lamp()
		if n, ok := seen[id]; ok {
			out[n].Online = out[n].Online || online
			out[n].Updating = out[n].Updating || i.Phase == device.PhaseUpdating
			return
		}
		seen[id] = len(out)
		out = append(out, Lamp{ID: id, Label: id, Online: online, Debug: i.Debug, Updating: i.Phase == device.PhaseUpdating, Light: light})
	}
	for _, i := range g.Gateway.Devices() {
		if i.Authenticated {
			add(i, true)
		}
	}
	for _, i := range g.Gateway.Offline() {
		add(i, false)
	}
	return out
}

// connections are the open connections of lamp id.
func (g GatewayLamps) connections(id string) ([]string, error) {
	var conns []string
	for _, i := range g.Gateway.Devices() {
		if i.Authenticated && i.Lamp() == id {
			conns = append(conns, i.ID)
		}
	}
	if len(conns) == 0 {
		return nil, fmt.Errorf("lamp %q is not connected; nothing was sent", id)
	}
	return conns, nil
}

// Apply implements Lamps. Lamps have no state of their own yet.
func (g GatewayLamps) Apply(id string, c Command) (Light, error) {
	return g.Shared.Get(), invalid.Field("lamp", "lamp %q follows the shared state until lamps have their own; use the All lamps light", id)
}

// Reboot implements Lamps.
func (g GatewayLamps) Reboot(id string) error { return g.command(id, protocol.Reset()) }

// Update implements Lamps.
func (g GatewayLamps) Update(id string) error { return g.command(id, protocol.Update()) }

func (g GatewayLamps) command(id string, p protocol.Packet) error {
	conns, err := g.connections(id)
	if err != nil {
		return err
	}
	_, err = g.Gateway.Command(p, conns)
	return err
}

// SetDebug implements Lamps.
func (g GatewayLamps) SetDebug(id string, on bool) error {
	conns, err := g.connections(id)
	if err != nil {
		return err
	}
	_, err = g.Gateway.SetDebug(on, conns)
	return err
}
