// Package connlimit caps the connections a listener holds open at once and
// says, in the error log, when accepting fails. Beyond the cap a new
// connection gets a short canned HTTP answer and is closed at once, so
// every client learns why instead of waiting in the kernel's backlog, and a
// flood of idle connections cannot use up the process's file descriptors.
package connlimit

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Listener is a net.Listener that holds at most Max connections open.
type Listener struct {
	net.Listener
	max     int64
	refusal []byte
	log     *slog.Logger
	what    string

	open    atomic.Int64
	refused atomic.Uint64

	mu       sync.Mutex
	lastLog  time.Time
	unlogged int // events since the last log line
}

// logEvery is the shortest spell between two log lines about refusals or
// accept errors: one line per burst, with the count of what it stands for.
const logEvery = 10 * time.Second

// New wraps ln. what names the listener in log lines and in the refusal
// ("the web port"); contentType and body are the refusal's HTTP answer
// (status 503, Retry-After 1). max <= 0 means no cap.
func New(ln net.Listener, max int, what, contentType, body string, log *slog.Logger) *Listener {
	refusal := fmt.Sprintf("HTTP/1.1 503 Service Unavailable\r\nContent-Type: %s\r\nContent-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s", contentType, len(body), body)
	return &Listener{Listener: ln, max: int64(max), refusal: []byte(refusal), log: log, what: what}
}

// Open is the number of connections accepted and not closed yet.
func (l *Listener) Open() int64 { return l.open.Load() }

// Refused counts connections refused for the cap.
func (l *Listener) Refused() uint64 { return l.refused.Load() }

// Accept waits for a connection under the cap. An accept error (say, out of
// file descriptors) is logged as an error, once per burst, and returned:
// http.Server retries those that are temporary.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				l.note(func(n int) {
					l.log.Error("cannot accept connections on "+l.what, "err", err, "times", n)
				})
			}
			return nil, err
		}
		if l.max > 0 && l.open.Add(1) > l.max {
			l.open.Add(-1)
			l.refused.Add(1)
			// A fresh socket's send buffer is empty: this write does not block.
			_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			_, _ = c.Write(l.refusal)
			_ = c.Close()
			l.note(func(n int) {
				l.log.Error(fmt.Sprintf("refusing connections to %s: %d are open, the most allowed", l.what, l.max), "refused", n)
			})
			continue
		}
		if l.max <= 0 {
			l.open.Add(1)
		}
		return &conn{Conn: c, l: l}, nil
	}
}

// note calls logf with the number of events since the last line, unless a
// line went out less than logEvery ago.
func (l *Listener) note(logf func(n int)) {
	l.mu.Lock()
	l.unlogged++
	now := time.Now()
	if now.Sub(l.lastLog) < logEvery {
		l.mu.Unlock()
		return
	}
	n := l.unlogged
	l.unlogged, l.lastLog = 0, now
	l.mu.Unlock()
	logf(n)
}

// conn gives its slot back when closed, once.
type conn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}

// SyscallConn passes the descriptor through: the lamp gateway reads with
// epoll and writes without blocking on it.
func (c *conn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("connlimit: connection has no descriptor")
	}
	return sc.SyscallConn()
}
