package firmware

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/backoff"
	"github.com/cloudcloud/cloudcloud/internal/firmware/firmwaretest"
)

const (
	sharedSecret  = "shared-lamp-secret"
	kitchenSecret = "kitchen-lamp-secret"
)

// testClock is a clock the test moves.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// guarded serves an image through Guard as server.go does, with the
// logins of a typical setup; it returns the URL host and the clock of the
// back-off (1 s doubling up to 30 s).
func guarded(t *testing.T, open bool) (host string, img []byte, clock *testClock) {
	t.Helper()
	s := openTestStore(t, t.TempDir())
	img = firmwaretest.Build(firmwaretest.Image{Version: "2.1", Payload: 100 << 10})
	mustSave(t, s, img)
	clock = &testClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	access := Access{
		Open:    open,
		Secrets: []string{sharedSecret, kitchenSecret},
		Logins:  []Login{{"admin", "ui-password"}, {"cloud-cloud", "original-password"}},
		Backoff: backoff.New(time.Second, 30*time.Second, clock.Now),
		Logger:  s.logger,
	}
	srv := httptest.NewServer(access.Guard(s.Handler(Hooks{})))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), img, clock
}

// from dials from a loopback address of its own, so back-off per address
// can be seen.
func from(ip string) firmwaretest.DialFunc {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		return d.DialContext(ctx, "tcp", addr)
	}
}

func firmwareURL(host string, login *url.Userinfo) string {
	return (&url.URL{Scheme: "http", User: login, Host: host, Path: "/firmware.bin"}).String()
}

// updater is one of the two ways lamps download.
type updater struct {
	name     string
	requests int // for a download with a login: ESP-IDF's asks twice
	download func(t *testing.T, rawURL string) firmwaretest.Answer
}

var updaters = []updater{
	{"Arduino HTTPUpdate", 1, func(t *testing.T, rawURL string) firmwaretest.Answer {
		a, err := firmwaretest.ArduinoDownload(context.Background(), nil, rawURL, map[string]string{"x-ESP32-version": "2.0"})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}},
	{"ESP-IDF esp_https_ota", 2, func(t *testing.T, rawURL string) firmwaretest.Answer {
		a, err := firmwaretest.IDFDownload(context.Background(), nil, rawURL)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}},
}

func errorMessage(t *testing.T, a firmwaretest.Answer) string {
	t.Helper()
	var body struct{ Error string }
	if err := json.Unmarshal(a.Body, &body); err != nil || body.Error == "" {
		t.Fatalf("%d answer is not a JSON error: %q", a.Status, a.Body)
	}
	return body.Error
}

func TestGuardAcceptsEveryKindOfLogin(t *testing.T) {
	host, img, _ := guarded(t, false)
	logins := []struct {
		name  string
		login *url.Userinfo
	}{
		{"the shared lamp secret, any user name", url.UserPassword("lamp", sharedSecret)},
		{"a named lamp secret, an empty user name", url.UserPassword("", kitchenSecret)},
		{"the UI login", url.UserPassword("admin", "ui-password")},
		{"firmware.download_username / download_password, as lamps built for the original send", url.UserPassword("cloud-cloud", "original-password")},
	}
	for _, u := range updaters {
		for _, l := range logins {
			t.Run(u.name+"/"+l.name, func(t *testing.T) {
				a := u.download(t, firmwareURL(host, l.login))
				if a.Status != http.StatusOK || !bytes.Equal(a.Body, img) || a.Requests != u.requests {
					t.Fatalf("got %d and %d bytes after %d requests, want 200 and the %d-byte image after %d", a.Status, len(a.Body), a.Requests, len(img), u.requests)
				}
			})
		}
	}
}

func TestGuardRefuses(t *testing.T) {
	for _, u := range updaters {
		t.Run(u.name, func(t *testing.T) {
			host, img, _ := guarded(t, false)
			for _, login := range []*url.Userinfo{
				nil,
				url.UserPassword("admin", sharedSecret+"x"),
				url.UserPassword("root", "ui-password"),        // the UI password needs the UI user name
				url.UserPassword("admin", "original-password"), // passwords do not mix across logins
				url.UserPassword(sharedSecret, ""),             // the secret is the password, not the name
			} {
				a := u.download(t, firmwareURL(host, login))
				if a.Status == http.StatusOK || bytes.Contains(a.Body, img[:64]) {
					t.Fatalf("login %v: got %d with the image", login, a.Status)
				}
				if a.Status == http.StatusTooManyRequests {
					continue // the back-off of an earlier wrong login; TestGuardBackoff covers it
				}
				if a.Status != http.StatusUnauthorized || !strings.HasPrefix(a.Header.Get("WWW-Authenticate"), "Basic ") {
					t.Errorf("login %v: %d, WWW-Authenticate %q; want 401 and a Basic challenge", login, a.Status, a.Header.Get("WWW-Authenticate"))
				}
				if msg := errorMessage(t, a); !strings.Contains(msg, "lamp secret") {
					t.Errorf("login %v: the error %q does not say which logins work", login, msg)
				}
			}
		})
	}
}

// TestGuardBackoff: wrong logins make the address wait, doubling; a
// request without a login (how ESP-IDF's updater always starts) costs
// nothing; other addresses are not slowed.
func TestGuardBackoff(t *testing.T) {
	host, img, clock := guarded(t, false)
	arduino := func(ip string, login *url.Userinfo) firmwaretest.Answer {
		t.Helper()
		a, err := firmwaretest.ArduinoDownload(context.Background(), from(ip), firmwareURL(host, login), nil)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	right, wrong := url.UserPassword("lamp", sharedSecret), url.UserPassword("lamp", "guess")

	for range 3 {
		if a := arduino("127.0.0.2", nil); a.Status != http.StatusUnauthorized {
			t.Fatalf("no login: %d", a.Status)
		}
	}
	if a := arduino("127.0.0.2", right); a.Status != http.StatusOK {
		t.Fatalf("right login after requests without one: %d; they must not count as failures", a.Status)
	}

	if a := arduino("127.0.0.2", wrong); a.Status != http.StatusUnauthorized {
		t.Fatalf("wrong login: %d", a.Status)
	}
	a := arduino("127.0.0.2", right)
	if a.Status != http.StatusTooManyRequests || a.Header.Get("Retry-After") != "1" {
		t.Fatalf("right login at once after a wrong one: %d, Retry-After %q; want 429 and 1", a.Status, a.Header.Get("Retry-After"))
	}
	if msg := errorMessage(t, a); !strings.Contains(msg, "try again in 1 s") {
		t.Errorf("429 says %q", msg)
	}
	if a := arduino("127.0.0.3", right); a.Status != http.StatusOK {
		t.Errorf("another address is slowed down too: %d", a.Status)
	}

	clock.Add(time.Second)
	if a := arduino("127.0.0.2", wrong); a.Status != http.StatusUnauthorized {
		t.Fatalf("second wrong login: %d", a.Status)
	}
	clock.Add(time.Second)
	if a := arduino("127.0.0.2", right); a.Status != http.StatusTooManyRequests || a.Header.Get("Retry-After") != "1" {
		t.Fatalf("1 s into a 2 s wait: %d, Retry-After %q", a.Status, a.Header.Get("Retry-After"))
	}
	clock.Add(time.Second)
	if a := arduino("127.0.0.2", right); a.Status != http.StatusOK || !bytes.Equal(a.Body, img) {
		t.Fatalf("right login after the wait: %d", a.Status)
	}
	// Success starts over: one wrong login waits 1 s again, not 4 s.
	arduino("127.0.0.2", wrong)
	clock.Add(time.Second)
	if a := arduino("127.0.0.2", right); a.Status != http.StatusOK {
		t.Errorf("after a success the back-off did not start over: %d", a.Status)
	}
}

func TestGuardOpen(t *testing.T) {
	host, img, _ := guarded(t, true)
	for _, u := range updaters {
		a := u.download(t, firmwareURL(host, nil))
		if a.Status != http.StatusOK || !bytes.Equal(a.Body, img) || a.Requests != 1 {
			t.Errorf("%s without a login, download_auth off: %d, %d bytes, %d requests", u.name, a.Status, len(a.Body), a.Requests)
		}
	}
}

// TestGuardResume: a lamp on a weak link resumes with Range, login and all.
func TestGuardResume(t *testing.T) {
	host, img, _ := guarded(t, false)
	req, err := http.NewRequest(http.MethodGet, firmwareURL(host, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("lamp", kitchenSecret)
	req.Header.Set("Range", "bytes=1000-")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var got bytes.Buffer
	got.ReadFrom(res.Body)
	if res.StatusCode != http.StatusPartialContent || !bytes.Equal(got.Bytes(), img[1000:]) {
		t.Errorf("resume: %d, %d bytes", res.StatusCode, got.Len())
	}
}
