//go:build !linux

package device

import "errors"

// readPoller is Linux-only; elsewhere every lamp has a reader goroutine.
type readPoller struct{}

func newReadPoller(*Gateway) (*readPoller, error) {
	return nil, errors.New("epoll is Linux-only")
}

func (*readPoller) add(*lamp) error { return errors.New("no poller") }
func (*readPoller) remove(*lamp)    {}
