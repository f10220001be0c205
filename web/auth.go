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
	"time"
)

// sessionCookie carries the signed login.
const sessionCookie = "cloudcloud_session"

// csrfHeader and csrfField carry the CSRF token from scripts and forms.
const (
	csrfHeader = "X-CSRF-Token"
	csrfField  = "csrf"
)

// session is a login as the cookie carries it: the session's secret
// token (the CSRF token derives from it) and when it ends, signed. The
// server also keeps the session (package sessions), so that signing out
// ends it; ref is its id in that store, filled in once it is looked up.
type session struct {
	id      string
	expires time.Time
	ref     string
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

// fingerprint names the credentials without revealing them: the session
// store keeps it, and a server started with another password finds it
// changed and ends every session.
func (a *authenticator) fingerprint() string {
	return hex.EncodeToString(a.mac("credentials"))
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

// retryAfterSeconds rounds a wait up to whole seconds for Retry-After.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
