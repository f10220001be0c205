//go:build linux

package device

import (
	"errors"

	"golang.org/x/sys/unix"
)

// nbWrite is one writer's non-blocking write. Its function value is made
// once per writer: a closure made per call would cost three allocations per
// lamp and broadcast.
type nbWrite struct {
	buf []byte
	n   int
	err error
	fn  func(fd uintptr) bool
}

func newNBWrite() *nbWrite {
	w := &nbWrite{}
	w.fn = func(fd uintptr) bool {
		for {
			w.n, w.err = unix.Write(int(fd), w.buf)
			if !errors.Is(w.err, unix.EINTR) {
				return true // never wait here: a full socket goes to flushSlow
			}
		}
	}
	return w
}

// tryWrite writes as much of buf as the socket takes now, without waiting:
// it returns how much was written (less than len(buf) when the socket is
// full) or a real error.
func (w *nbWrite) tryWrite(l *lamp, buf []byte) (int, error) {
	if l.rc == nil {
		return 0, nil
	}
	w.buf = buf
	err := l.rc.Write(w.fn)
	w.buf = nil
	switch {
	case err != nil:
		return 0, err
	case errors.Is(w.err, unix.EAGAIN):
		return 0, nil
	case w.err != nil:
		return 0, w.err
	}
	return max(w.n, 0), nil
}
