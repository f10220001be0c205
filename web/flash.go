package web

import (
	"crypto/hmac"
	"encoding/base64"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
)

// A flash message is the outcome of a form post that redirects back to the
// page (the firmware forms): the sentence travels in a short-lived cookie,
// is shown once, and is cleared. It is signed, so another site sharing the
// domain cannot put words on the page.

const flashCookie = "cloudcloud_flash"

// flashKind is how a flash message looks.
type flashKind string

const (
	flashOK    flashKind = "ok"
	flashError flashKind = "error"
)

// flash is a message to show once.
type flash struct {
	Kind    flashKind
	Message string
}

// maxFlash bounds the message so the cookie stays far below browser limits.
const maxFlash = 1000

func (s *Server) setFlash(c echo.Context, kind flashKind, msg string) {
	if len(msg) > maxFlash {
		msg = strings.ToValidUTF8(msg[:maxFlash], "") + "…"
	}
	payload := string(kind) + "\x00" + msg
	value := base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." +
		base64.RawURLEncoding.EncodeToString(s.auth.mac("flash", payload))
	c.SetCookie(&http.Cookie{Name: flashCookie, Value: value, Path: "/", MaxAge: 60,
		HttpOnly: true, Secure: s.secure(c.Request()), SameSite: http.SameSiteLaxMode})
}

// takeFlash returns the pending message, if any, and clears it.
func (s *Server) takeFlash(c echo.Context) (flash, bool) {
	ck, err := c.Cookie(flashCookie)
	if err != nil || ck.Value == "" {
		return flash{}, false
	}
	c.SetCookie(&http.Cookie{Name: flashCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: s.secure(c.Request()), SameSite: http.SameSiteLaxMode})
	return s.decodeFlash(ck.Value)
}

func (s *Server) decodeFlash(value string) (flash, bool) {
	enc, sigEnc, ok := strings.Cut(value, ".")
	if !ok {
		return flash{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(enc)
	// The signature is compared as text, like the session cookie's (see
	// authenticator.decode): only the exact value we set is accepted.
	want := base64.RawURLEncoding.EncodeToString(s.auth.mac("flash", string(payload)))
	if err != nil || !hmac.Equal([]byte(sigEnc), []byte(want)) {
		return flash{}, false
	}
	kind, msg, ok := strings.Cut(string(payload), "\x00")
	if !ok || (kind != string(flashOK) && kind != string(flashError)) || !utf8.ValidString(msg) {
		return flash{}, false
	}
	return flash{Kind: flashKind(kind), Message: msg}, true
}
