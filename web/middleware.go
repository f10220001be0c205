package web

import (
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/cloudcloud/cloudcloud/internal/metrics"
	"github.com/cloudcloud/cloudcloud/internal/realip"
	"github.com/cloudcloud/cloudcloud/internal/sessions"
)

// observe is the outermost middleware: it turns panics into 500s, hands
// errors to the error renderer (so it knows the final status), and then
// logs the request and counts it for /metrics.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := s.callSafely(next, c); err != nil {
			c.Error(err)
		}
		r, res := c.Request(), c.Response()
		elapsed := time.Since(start)
		streaming := res.Header().Get(echo.HeaderContentType) == "text/event-stream"
		s.httpMet.Observe(metrics.Request{Route: c.Path(), Method: r.Method, Code: res.Status, Duration: elapsed, Streaming: streaming})

		level := slog.LevelInfo
		switch route := c.Path(); {
		case res.Status >= 500:
			level = slog.LevelError
		case route == "/healthz" || route == "/metrics" || route == "/static/:name" || route == "/favicon.ico":
			level = slog.LevelDebug // monitoring and assets would drown the log
		}
		s.log.LogAttrs(r.Context(), level, "http request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.String("route", c.Path()),
			slog.Int("status", res.Status),
			slog.Int64("bytes", res.Size),
			slog.Duration("duration", elapsed),
			// Only trusted proxies are believed about the client's address.
			slog.String("client", s.opt.Proxies.ClientAddr(r)),
		)
		return nil
	}
}

// callSafely runs next and turns a panic into an error, so one bad request
// cannot take the server down and still gets an answer.
func (s *Server) callSafely(next echo.HandlerFunc, c echo.Context) (err error) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("handler panicked", "path", c.Request().URL.Path, "panic", v, "stack", string(debug.Stack()))
			err = fmt.Errorf("handler panicked: %v", v)
		}
	}()
	return next(c)
}

// contentSecurityPolicy allows nothing inline and nothing from elsewhere:
// every script and style is a file under /static.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"font-src 'self'; connect-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'none'; " +
	"form-action 'self'; frame-ancestors 'none'"

func (s *Server) securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
		h.Set("Accept-CH", colorSchemeHint) // for the manifest's splash colours
		return next(c)
	}
}

// compress gzips pages and JSON. Static assets are stored compressed
// already, the event stream must not be buffered, and /metrics compresses
// itself.
func (s *Server) compress() echo.MiddlewareFunc {
	return middleware.GzipWithConfig(middleware.GzipConfig{
		MinLength: 1024,
		Skipper: func(c echo.Context) bool {
			switch c.Path() {
			case "/static/:name", "/api/events", "/metrics", "/firmware.bin":
				return true
			}
			return false
		},
	})
}

// authInfo is how a request was authenticated; handlers read it for the
// CSRF token to put in pages.
type authInfo struct {
	viaCookie bool
	sess      session
}

const ctxAuth = "cloudcloud.auth"

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// requireLogin lets public routes through and demands a login for the
// rest: HTTP basic auth (scripts) or the session cookie (browsers), plus the
// CSRF token when the cookie authenticates a request that changes something.
func (s *Server) requireLogin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if crossOrigin.Check(r) != nil {
			// Browsers mark requests another site makes them send
			// (Sec-Fetch-Site, else Origin). Scripts send no such header,
			// so this costs them nothing, and it also covers basic-auth
			// credentials a browser remembers and would otherwise attach
			// to a forged form.
			return errorf(http.StatusForbidden, "a request from another site was refused: open cloudcloud's own page to do that")
		}
		if publicRoutes[c.Path()] {
			return next(c)
		}
		if user, pass, ok := r.BasicAuth(); ok {
			ip := realip.IP(s.opt.Proxies.ClientAddr(r))
			if d := s.limiter.Wait(ip); d > 0 {
				return tooManyAttempts(d)
			}
			if !s.auth.checkPassword(user, pass) {
				d := s.limiter.Fail(ip)
				s.log.Warn("wrong basic auth password", "client", ip, "next_attempt_in", d)
				return s.unauthorized(c, "wrong user name or password (web.username / web.password)")
			}
			s.limiter.Succeed(ip)
			c.Set(ctxAuth, authInfo{})
			return next(c)
		}
		sess, ok := s.sessionFrom(c)
		if !ok {
			return s.unauthorized(c, "log in first: HTTP basic auth with web.username and web.password, or the login page")
		}
		c.Set(ctxAuth, authInfo{viaCookie: true, sess: sess})
		if !safeMethod(r.Method) && !s.auth.checkCSRF(sess, csrfFrom(r)) {
			if !csrfInUpload(c) {
				return errCSRF
			}
			// The token is a field of the multipart upload; the handler
			// checks it before it saves anything.
			c.Set(ctxCSRFPending, true)
		}
		return next(c)
	}
}

var errCSRF = errorf(http.StatusForbidden, "missing or wrong CSRF token: reload the page and try again (scripts: use HTTP basic auth, which needs no token)")

// ctxCSRFPending marks a request whose CSRF token the handler must find in
// the body.
const ctxCSRFPending = "cloudcloud.csrf-pending"

// uploadRoutes take a multipart firmware upload. Reading the token from
// the form here would mean reading the whole image first, so a form post
// without the header defers the check to receiveUpload.
var uploadRoutes = map[string]bool{"/api/firmware": true, "/ui/firmware": true}

func csrfInUpload(c echo.Context) bool {
	r := c.Request()
	mt, _, err := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	return err == nil && mt == "multipart/form-data" && r.Method == http.MethodPost &&
		uploadRoutes[c.Path()] && r.Header.Get(csrfHeader) == ""
}

// crossOrigin refuses the state-changing requests a browser makes on
// behalf of another site; safe methods pass.
var crossOrigin = http.NewCrossOriginProtection()

// csrfFrom finds the token: the header from scripts, the hidden field from
// forms. The form is read only for form bodies, and at most 64 KiB of it.
func csrfFrom(r *http.Request) string {
	if t := r.Header.Get(csrfHeader); t != "" {
		return t
	}
	if strings.HasPrefix(r.Header.Get(echo.HeaderContentType), echo.MIMEApplicationForm) {
		r.Body = http.MaxBytesReader(nil, r.Body, maxBody)
		return r.PostFormValue(csrfField)
	}
	return ""
}

// sessionFrom returns the valid session of the request's cookie, renewing
// the cookie when less than half its life is left so a phone used every
// week stays logged in. A bad or expired cookie is cleared.
func (s *Server) sessionFrom(c echo.Context) (session, bool) {
	// A browser may send several cookies of that name (a stale one from
	// another path or domain first): any valid one is the login.
	now := s.now()
	var sess session
	var stored sessions.Session
	found, ok := false, false
	for _, ck := range c.Request().CookiesNamed(sessionCookie) {
		if ck.Value == "" {
			continue
		}
		found = true
		if sess, ok = s.auth.decode(ck.Value, now); ok {
			// A signed cookie is not enough: the session must still exist
			// (signing out, here or on another device, deletes it).
			if stored, ok = s.sessions.Lookup(sess.id, now); ok {
				break
			}
		}
	}
	if !found {
		return session{}, false
	}
	if !ok {
		c.SetCookie(clearCookie(s.secure(c.Request())))
		return session{}, false
	}
	sess.ref = stored.ID
	if sess.expires.Sub(now) < s.opt.SessionTTL/2 {
		expires := now.Add(s.opt.SessionTTL).Truncate(time.Second)
		if err := s.sessions.Renew(stored.ID, expires); err != nil {
			s.log.Warn("could not extend a login; it ends at its old time", "err", err)
		} else {
			sess.expires = expires
			c.SetCookie(s.auth.cookie(sess, s.secure(c.Request()), now))
		}
	}
	return sess, true
}

// secure says whether the browser reached us over HTTPS, directly or
// through a trusted proxy (whose X-Forwarded-Proto is then believed).
func (s *Server) secure(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	return s.opt.Proxies.ClientAddr(r) != r.RemoteAddr && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// unauthorized answers a request without a valid login: 401 JSON for the
// API and the firmware, a redirect to the login page for pages.
func (s *Server) unauthorized(c echo.Context, msg string) error {
	r := c.Request()
	if isAPIPath(r.URL.Path) {
		// The challenge makes curl and browsers typing an API address ask
		// for a password; the page's own fetches (Sec-Fetch-Mode cors or
		// same-origin) get none, so an expired session does not pop up a
		// browser dialog but sends the page to the login form instead.
		if m := r.Header.Get("Sec-Fetch-Mode"); m == "" || m == "navigate" {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Basic realm="cloudcloud", charset="UTF-8"`)
		}
		return errorf(http.StatusUnauthorized, "%s", msg)
	}
	next := "/"
	if r.Method == http.MethodGet {
		next = r.URL.RequestURI()
	}
	return c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(next))
}

func tooManyAttempts(d time.Duration) error {
	secs := retryAfterSeconds(d)
	return &httpError{
		status:     http.StatusTooManyRequests,
		msg:        fmt.Sprintf("too many wrong passwords from your address; try again in %d s", secs),
		retryAfter: secs,
	}
}
