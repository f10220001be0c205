//go:build !linux

package device

// nbWrite writes nothing without waiting on other platforms: every write
// goes through flushSlow on the lamp's own goroutine.
type nbWrite struct{}

func newNBWrite() *nbWrite { return &nbWrite{} }

func (*nbWrite) tryWrite(*lamp, []byte) (int, error) { return 0, nil }
