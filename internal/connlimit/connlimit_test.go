package connlimit

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/logtest"
)

func listen(t *testing.T, max int, logs io.Writer) *Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(ln, max, "the test port", "application/json", `{"error":"full"}`, slog.New(slog.NewTextHandler(logs, nil)))
	t.Cleanup(func() { l.Close() })
	return l
}

func TestConnectionsBeyondTheCapGet503AndAreClosed(t *testing.T) {
	var logs logtest.Buffer
	l := listen(t, 2, &logs)
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// Two clients that have spoken: they cannot be evicted.
	for range 2 {
		dial().Write([]byte("x"))
	}
	first, second := <-accepted, <-accepted
	for _, c := range []net.Conn{first, second} {
		if _, err := c.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		c := dial()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("refused connection: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 503 || string(body) != `{"error":"full"}` || resp.Header.Get("Retry-After") != "1" {
			t.Errorf("refusal %d %q %v", resp.StatusCode, body, resp.Header)
		}
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("refused connection not closed: %v", err)
		}
	}
	if l.Refused() != 3 || l.Open() != 2 {
		t.Errorf("refused %d open %d, want 3 and 2", l.Refused(), l.Open())
	}
	if n := strings.Count(logs.String(), "refusing connections"); n != 1 {
		t.Errorf("%d log lines for one burst of refusals:\n%s", n, logs.String())
	}
	first.Close()
	first.Close() // a second close gives back nothing more
	dial()
	third := <-accepted
	if l.Open() != 2 {
		t.Errorf("open %d after one left and one came", l.Open())
	}
	if _, ok := third.(syscall.Conn); !ok {
		t.Error("accepted connection hides its descriptor")
	}
	second.Close()
	third.Close()
}

// At the cap, a newcomer takes the place of the oldest connection that has
// not sent anything.
func TestSilentConnectionsMakeRoom(t *testing.T) {
	l := listen(t, 2, io.Discard)
	dial := func() net.Conn {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	accept := func() net.Conn {
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	oldest := dial()
	accept()
	dial().Write([]byte("GET"))
	spoke := accept()
	spoke.Read(make([]byte, 3))
	dial()
	accept()
	oldest.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := oldest.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("the oldest silent connection was not closed: %v", err)
	}
	if l.Evicted() != 1 || l.Open() != 2 {
		t.Errorf("evicted %d open %d", l.Evicted(), l.Open())
	}
}

// errListener fails every Accept like a process out of descriptors.
type errListener struct{ net.Listener }

func (errListener) Accept() (net.Conn, error) {
	return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
}

func TestAcceptErrorsAreLoggedOncePerBurst(t *testing.T) {
	var logs logtest.Buffer
	l := listen(t, 0, &logs)
	l.Listener = errListener{l.Listener}
	for range 100 {
		if _, err := l.Accept(); !errors.Is(err, syscall.EMFILE) {
			t.Fatalf("err %v", err)
		}
	}
	out := logs.String()
	if strings.Count(out, "level=ERROR") != 1 || !strings.Contains(out, "too many open files") {
		t.Errorf("want one error line naming the cause, got:\n%s", out)
	}
}
