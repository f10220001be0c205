// Package connlimit caps the connections a listener holds open at once and
// says, in the error log, when accepting fails. At the cap, a new
// connection takes the place of the oldest one that has not sent a single
// byte yet (a client that connects and says nothing is the cheapest flood;
// every real client speaks at once); when there is none, the new one gets
// a short canned HTTP answer and is closed at once, so every client learns
// why instead of waiting in the kernel's backlog, and a flood of idle
// connections cannot use up the process's file descriptors.
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
	evicted atomic.Uint64

	silentMu sync.Mutex
	silent   map[*conn]time.Time // accepted, nothing read yet: when accepted

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
	return &Listener{Listener: ln, max: int64(max), refusal: []byte(refusal), log: log, what: what, silent: make(map[*conn]time.Time)}
}

// Evicted counts silent connections closed to make room for new ones.
func (l *Listener) Evicted() uint64 { return l.evicted.Load() }

// evictSilent closes the oldest connection that has sent nothing and
// reports whether there was one.
func (l *Listener) evictSilent() bool {
	l.silentMu.Lock()
	var oldest *conn
	var at time.Time
	for c, t := range l.silent {
		if oldest == nil || t.Before(at) {
			oldest, at = c, t
		}
	}
	delete(l.silent, oldest)
	l.silentMu.Unlock()
	if oldest == nil {
		return false
	}
	l.evicted.Add(1)
	_ = oldest.Close()
	return true
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
		if l.max > 0 && l.open.Add(1) > l.max && !l.evictSilent() {
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
		lc := &conn{Conn: c, l: l}
		l.silentMu.Lock()
		l.silent[lc] = time.Now()
		l.silentMu.Unlock()
		return lc, nil
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
	l      *Listener
	once   sync.Once
	spoken atomic.Bool // has sent a byte: no longer evictable
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.spoken.Load() {
		c.spoken.Store(true)
		c.forget()
	}
	return n, err
}

func (c *conn) forget() {
	c.l.silentMu.Lock()
	delete(c.l.silent, c)
	c.l.silentMu.Unlock()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.forget()
		c.l.open.Add(-1)
	})
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
