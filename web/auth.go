package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sessionCookie carries the signed login.
const sessionCookie = "cloudcloud_session"

// csrfHeader and csrfField carry the CSRF token from scripts and forms.
const (
	csrfHeader = "X-CSRF-Token"
	csrfField  = "csrf"
)

// session is a login: a random id (the CSRF token derives from it) and
// when it ends. Both are inside the signed cookie, so the server keeps no
// session table and a restart logs nobody out.
type session struct {
	id      string
	expires time.Time
}

// authenticator checks passwords and signs and verifies session cookies.
type authenticator struct {
	userSum, passSum [sha256.Size]byte
	// macKey signs cookies. It is derived from the session key and the
	// credentials, so changing the password ends every existing session.
	macKey []byte
	ttl    time.Duration
}

func newAuthenticator(user, pass string, key []byte, ttl time.Duration) *authenticator {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("cloudcloud session v1\x00" + user + "\x00" + pass))
	return &authenticator{
		userSum: sha256.Sum256([]byte(user)),
		passSum: sha256.Sum256([]byte(pass)),
		macKey:  m.Sum(nil),
		ttl:     ttl,
	}
}

// checkPassword compares in constant time. Hashing first makes the
// comparison independent of the lengths too, and both halves are always
// compared so a right user name is not told apart from a wrong one.
func (a *authenticator) checkPassword(user, pass string) bool {
	u := sha256.Sum256([]byte(user))
	p := sha256.Sum256([]byte(pass))
	uok := subtle.ConstantTimeCompare(u[:], a.userSum[:])
	pok := subtle.ConstantTimeCompare(p[:], a.passSum[:])
	return uok&pok == 1
}

func (a *authenticator) mac(parts ...string) []byte {
	m := hmac.New(sha256.New, a.macKey)
	m.Write([]byte(strings.Join(parts, "\x00")))
	return m.Sum(nil)
}

// newSession starts a login that lasts the TTL.
func (a *authenticator) newSession(now time.Time) session {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return session{id: hex.EncodeToString(b[:]), expires: now.Add(a.ttl).Truncate(time.Second)}
}

// encode writes "v1.<id>.<expiry unix>.<mac>": the expiry is inside the
// signed value, so a cookie kept past its Max-Age is still refused.
func (a *authenticator) encode(s session) string {
	exp := strconv.FormatInt(s.expires.Unix(), 10)
	sig := base64.RawURLEncoding.EncodeToString(a.mac("session", s.id, exp))
	return "v1." + s.id + "." + exp + "." + sig
}

// decode verifies a cookie value and returns the session if it is signed
// by us and not expired.
func (a *authenticator) decode(v string, now time.Time) (session, bool) {
	parts := strings.Split(v, ".")
	if len(parts) != 4 || parts[0] != "v1" || len(parts[1]) != 32 {
		return session{}, false
	}
	// Compare the text, not the decoded bytes: base64 decoding skips line
	// breaks, so a decoded comparison would accept altered copies of a cookie.
	want := base64.RawURLEncoding.EncodeToString(a.mac("session", parts[1], parts[2]))
	if !hmac.Equal([]byte(parts[3]), []byte(want)) {
		return session{}, false
	}
	exp, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || !now.Before(time.Unix(exp, 0)) {
		return session{}, false
	}
	return session{id: parts[1], expires: time.Unix(exp, 0)}, true
}

// csrfToken is the token pages send back with state-changing requests. It
// is derived from the session id, so it needs no storage and an attacker
// without the cookie's value cannot compute it.
func (a *authenticator) csrfToken(s session) string {
	return base64.RawURLEncoding.EncodeToString(a.mac("csrf", s.id))
}

func (a *authenticator) checkCSRF(s session, token string) bool {
	return token != "" && hmac.Equal([]byte(token), []byte(a.csrfToken(s)))
}

// cookie builds the session cookie; secure when the browser reached us over
// HTTPS (directly or through a trusted proxy that says so).
func (a *authenticator) cookie(s session, secure bool, now time.Time) *http.Cookie {
	return &http.Cookie{
		Name: sessionCookie, Value: a.encode(s), Path: "/",
		MaxAge:   int(math.Ceil(s.expires.Sub(now).Seconds())),
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode,
	}
}

func clearCookie(secure bool) *http.Cookie {
	return &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode}
}

// loginLimiter slows down password guessing per client address: after each
// failure the next attempt from that address must wait twice as long as the
// last time (1 s, 2 s, 4 s … up to max). Attempts too early are answered 429
// with Retry-After instead of being checked, so no goroutine sleeps and the
// guess rate is bounded no matter how many requests arrive.
type loginLimiter struct {
	base, max time.Duration
	now       func() time.Time

	mu       sync.Mutex
	failures map[string]loginFailures
}

type loginFailures struct {
	count     int
	last      time.Time
	nextAllow time.Time
}

// maxTracked bounds the memory an attacker with many addresses can use.
const maxTracked = 10000

func newLoginLimiter(base, max time.Duration, now func() time.Time) *loginLimiter {
	return &loginLimiter{base: base, max: max, now: now, failures: make(map[string]loginFailures)}
}

// wait returns how long ip must wait before its next attempt; 0 means go.
func (l *loginLimiter) wait(ip string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.failures[ip]
	if !ok {
		return 0
	}
	return max(0, f.nextAllow.Sub(l.now()))
}

// fail records a wrong password from ip and returns the delay it now faces.
func (l *loginLimiter) fail(ip string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	f := l.failures[ip]
	if now.Sub(f.last) > 2*l.max {
		f.count = 0 // quiet for long: start over
	}
	f.count++
	f.last = now
	d := l.base
	for i := 1; i < f.count && d < l.max; i++ {
		d *= 2
	}
	d = min(d, l.max)
	f.nextAllow = now.Add(d)
	if _, ok := l.failures[ip]; !ok && len(l.failures) >= maxTracked {
		l.prune(now)
	}
	l.failures[ip] = f
	return d
}

// succeed forgets ip's failures.
func (l *loginLimiter) succeed(ip string) {
	l.mu.Lock()
	delete(l.failures, ip)
	l.mu.Unlock()
}

// prune drops addresses quiet for long, then, if an attack keeps the map
// full, the oldest half; l.mu is held.
func (l *loginLimiter) prune(now time.Time) {
	for ip, f := range l.failures {
		if now.Sub(f.last) > 2*l.max {
			delete(l.failures, ip)
		}
	}
	if len(l.failures) < maxTracked {
		return
	}
	cutoff := now.Add(-l.max)
	for ip, f := range l.failures {
		if f.last.Before(cutoff) || len(l.failures) >= maxTracked/2 {
			delete(l.failures, ip)
		}
		if len(l.failures) < maxTracked/2 {
			return
		}
	}
}

// retryAfterSeconds rounds a wait up to whole seconds for Retry-After.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
