//go:build linux

package device

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// readPoller watches every authenticated lamp's socket with one epoll set,
// so an idle lamp needs no goroutine. Registrations are one-shot and
// level-triggered: after an event the socket is disarmed until the frame is
// handled, then re-armed, and epoll reports again at once if more bytes
// wait. Each event is handled on a short-lived goroutine, so a lamp that
// sends half a frame holds only its own goroutine (until the frame deadline).
type readPoller struct {
	g    *Gateway
	fd   int
	mu   sync.Mutex
	next uint32
	by   map[uint32]*lamp
}

const pollEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

func newReadPoller(g *Gateway) (*readPoller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	p := &readPoller{g: g, fd: fd, by: make(map[uint32]*lamp)}
	go p.loop()
	return p, nil
}

// add starts watching l.
func (p *readPoller) add(l *lamp) error {
	if l.rc == nil {
		return errors.New("connection has no file descriptor")
	}
	p.mu.Lock()
	for {
		p.next++
		if _, taken := p.by[p.next]; !taken && p.next != 0 {
			break
		}
	}
	l.token = p.next
	p.by[l.token] = l
	p.mu.Unlock()
	if err := p.arm(l, unix.EPOLL_CTL_ADD); err != nil {
		p.remove(l)
		return err
	}
	return nil
}

// arm (re-)registers l's socket. Control holds the descriptor open for the
// call, so a concurrent close cannot make us arm a reused number.
func (p *readPoller) arm(l *lamp, op int) error {
	var ctlErr error
	err := l.rc.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: pollEvents, Fd: int32(l.token)}
		ctlErr = unix.EpollCtl(p.fd, op, int(fd), &ev)
	})
	return errors.Join(err, ctlErr)
}

// remove forgets l; closing its socket takes it out of the epoll set.
func (p *readPoller) remove(l *lamp) {
	p.mu.Lock()
	if p.by[l.token] == l {
		delete(p.by, l.token)
	}
	p.mu.Unlock()
}

func (p *readPoller) loop() {
	defer unix.Close(p.fd)
	events := make([]unix.EpollEvent, 256)
	for {
		select {
		case <-p.g.done:
			return
		default:
		}
		// A timeout, so the loop notices shutdown without a wake-up fd.
		n, err := unix.EpollWait(p.fd, events, 250)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			p.g.log.Error("epoll_wait failed; lamps are no longer read", "err", err)
			time.Sleep(time.Second)
			continue
		}
		p.mu.Lock()
		for _, ev := range events[:n] {
			if l := p.by[uint32(ev.Fd)]; l != nil {
				go p.readable(l)
			}
		}
		p.mu.Unlock()
	}
}

// readable handles one frame of l and re-arms its socket.
func (p *readPoller) readable(l *lamp) {
	if err := l.readOne(p.g.opt.HandshakeTimeout); err != nil {
		l.readError(err)
		return
	}
	if err := p.arm(l, unix.EPOLL_CTL_MOD); err != nil {
		l.end(0, "", "could not re-arm epoll: "+err.Error())
	}
}
