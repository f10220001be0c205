// Package realip finds a client's address behind reverse proxies, believing
// X-Forwarded-For and X-Real-IP only when the direct peer is a trusted proxy.
// Without that rule anyone could claim any address by sending the header.
package realip

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver holds the trusted proxy ranges; its zero value trusts no one.
type Resolver struct {
	trusted []netip.Prefix
}

// New parses CIDRs or single IPs ("10.0.0.0/8", "127.0.0.1").
func New(trusted []string) (Resolver, error) {
	var r Resolver
	for _, s := range trusted {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			r.trusted = append(r.trusted, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return Resolver{}, fmt.Errorf("trusted proxy %q is neither a CIDR (10.0.0.0/8) nor an IP address", s)
		}
		r.trusted = append(r.trusted, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return r, nil
}

func (r Resolver) isTrusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientAddr returns the client's address: r.RemoteAddr ("ip:port") for a
// direct connection, or the nearest untrusted address a trusted proxy names
// (an IP without port: proxies do not pass the client's port on).
func (r Resolver) ClientAddr(req *http.Request) string {
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		return req.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !r.isTrusted(peer) {
		return req.RemoteAddr
	}
	// X-Forwarded-For lists client, proxy1, proxy2...; the rightmost entries
	// were added by our own proxies, so walk from the right and stop at the
	// first address that is not one of them.
	hops := strings.Split(strings.Join(req.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		if !r.isTrusted(a) || i == 0 {
			return a.Unmap().String()
		}
	}
	if a, err := netip.ParseAddr(strings.TrimSpace(req.Header.Get("X-Real-IP"))); err == nil {
		return a.Unmap().String()
	}
	return req.RemoteAddr
}

// IP returns just the address part of what ClientAddr returns.
func IP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
