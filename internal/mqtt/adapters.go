package mqtt

import (
	"github.com/cloudcloud/cloudcloud/internal/state"
)

// StoreShared is the shared display state of a state store: state.Store,
// or the lamp registry, which gives every lamp the shared state as PUT
// /api/state does.
type StoreShared struct {
	Store interface {
		Get() state.State
		Apply(state.Change) (state.State, error)
	}
}

// Get implements Shared.
func (s StoreShared) Get() Light {
	st := s.Store.Get()
	return Light{State: st, Brightness: st.Brightness}
}

// Apply implements Shared: the change goes through the store's validation
// like PUT /api/state.
func (s StoreShared) Apply(c Command) (Light, error) {
	ch := c.Change
	if c.Brightness != nil {
		ch.Brightness = c.Brightness
	}
	if ch.Empty() {
		return s.Get(), nil
	}
	st, err := s.Store.Apply(ch)
	return Light{State: st, Brightness: st.Brightness}, err
}
