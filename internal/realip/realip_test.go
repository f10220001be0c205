package realip

import (
	"net"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientAddr(t *testing.T) {
	r, err := New([]string{"127.0.0.1", "10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, remote, xff, xri, want string
	}{
		{"direct, no headers", "203.0.113.7:51234", "", "", "203.0.113.7:51234"},
		{"untrusted peer's header ignored", "203.0.113.7:51234", "1.2.3.4", "1.2.3.4", "203.0.113.7:51234"},
		{"trusted proxy, xff", "127.0.0.1:4000", "198.51.100.9", "", "198.51.100.9"},
		{"chain of trusted proxies", "127.0.0.1:4000", "198.51.100.9, 10.1.2.3", "", "198.51.100.9"},
		{"spoofed left entry ignored", "127.0.0.1:4000", "6.6.6.6, 198.51.100.9", "", "198.51.100.9"},
		{"x-real-ip", "10.0.0.5:4000", "", "198.51.100.10", "198.51.100.10"},
		{"garbage header", "127.0.0.1:4000", "not-an-ip", "", "127.0.0.1:4000"},
		{"all hops trusted", "127.0.0.1:4000", "10.0.0.1", "", "10.0.0.1"},
	}
	for _, tt := range tests {
		req := httptest.NewRequest("GET", "/", nil)
		req.RemoteAddr = tt.remote
		if tt.xff != "" {
			req.Header.Set("X-Forwarded-For", tt.xff)
		}
		if tt.xri != "" {
			req.Header.Set("X-Real-IP", tt.xri)
		}
		if got := r.ClientAddr(req); got != tt.want {
			t.Errorf("%s: ClientAddr = %q, want %q", tt.name, got, tt.want)
		}
	}
	var none Resolver
	req := httptest.NewRequest("GET", "/", nil)
	req.RemoteAddr = "127.0.0.1:1"
	req.Header.Set("X-Forwarded-For", "1.1.1.1")
	if got := none.ClientAddr(req); got != "127.0.0.1:1" {
		t.Errorf("zero Resolver believed a header: %q", got)
	}
}

func TestNewRejectsGarbage(t *testing.T) {
	if _, err := New([]string{"10.0.0.0/33"}); err == nil {
		t.Error("accepted /33")
	}
	if _, err := New([]string{"proxy.local"}); err == nil {
		t.Error("accepted a host name")
	}
}

// FuzzClientAddr: whatever headers arrive, the answer is the peer itself or
// a parseable address, and headers are believed only from a trusted peer.
func FuzzClientAddr(f *testing.F) {
	r, _ := New([]string{"127.0.0.1", "10.0.0.0/8"})
	f.Add("127.0.0.1:4000", "198.51.100.9, 10.1.2.3", "198.51.100.10")
	f.Add("203.0.113.7:1", "1.2.3.4", "")
	f.Add("[::1]:80", ",,,", "::ffff:1.2.3.4")
	f.Fuzz(func(t *testing.T, remote, xff, xri string) {
		req := httptest.NewRequest("GET", "/", nil)
		req.RemoteAddr = remote
		req.Header.Set("X-Forwarded-For", xff)
		req.Header.Set("X-Real-IP", xri)
		got := r.ClientAddr(req)
		if got == remote {
			return
		}
		host, _, err := net.SplitHostPort(remote)
		if err != nil {
			t.Fatalf("unparseable peer %q answered %q", remote, got)
		}
		if peer, err := netip.ParseAddr(host); err != nil || !r.isTrusted(peer) {
			t.Fatalf("headers believed from untrusted peer %q: %q", remote, got)
		}
		if _, err := netip.ParseAddr(got); err != nil {
			t.Fatalf("answer %q is not an address", got)
		}
	})
}
