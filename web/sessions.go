package web

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/cloudcloud/cloudcloud/internal/sessions"
	"github.com/cloudcloud/cloudcloud/web/templates"
)

// sessionBody is one login as GET /api/sessions lists it.
type sessionBody struct {
	sessions.Session
	Current bool `json:"current"` // the session of this request
}

// currentSession is the store id of the request's own session; "" for
// basic auth, which has none.
func currentSession(c echo.Context) string {
	if a, ok := c.Get(ctxAuth).(authInfo); ok && a.viaCookie {
		return a.sess.ref
	}
	return ""
}

func (s *Server) getSessions(c echo.Context) error {
	cur := currentSession(c)
	out := []sessionBody{}
	for _, x := range s.sessions.List(s.now()) {
		out = append(out, sessionBody{Session: x, Current: x.ID == cur})
	}
	return c.JSON(http.StatusOK, out)
}

// deleteSession ends one login; ending the request's own signs it out too.
func (s *Server) deleteSession(c echo.Context) error {
	id := c.Param("id")
	if err := s.sessions.Delete(id); err != nil {
		if errors.Is(err, sessions.ErrNotFound) {
			return errorf(http.StatusNotFound, "no session %q: it already ended, or the id is wrong (GET /api/sessions lists them)", id)
		}
		return fmt.Errorf("end a session: %w", err)
	}
	return c.NoContent(http.StatusNoContent)
}

// deleteSessions ends every login but the request's own (with basic auth,
// which has none: every login).
func (s *Server) deleteSessions(c echo.Context) error {
	n, err := s.sessions.DeleteAll(currentSession(c))
	if err != nil {
		return fmt.Errorf("end the sessions: %w", err)
	}
	return c.JSON(http.StatusOK, map[string]int{"ended": n})
}

// formSessions is the page's "Sign out" buttons of the sessions list:
// end=<id> ends one, end=others all but this one.
func (s *Server) formSessions(c echo.Context) error {
	f, err := readForm(c)
	if err != nil {
		return err
	}
	switch end := f.Get("end"); end {
	case "others":
		if _, err := s.sessions.DeleteAll(currentSession(c)); err != nil {
			return fmt.Errorf("end the sessions: %w", err)
		}
	case "":
		return errorf(http.StatusBadRequest, "the form did not say which session to end")
	default:
		if err := s.sessions.Delete(end); err != nil && !errors.Is(err, sessions.ErrNotFound) {
			return fmt.Errorf("end a session: %w", err)
		}
		if end == currentSession(c) {
			c.SetCookie(clearCookie(s.secure(c.Request())))
			return c.Redirect(http.StatusSeeOther, "/login")
		}
	}
	return c.Redirect(http.StatusSeeOther, "/#sessions")
}

// sessionViews lists the logins for the page, this one first.
func (s *Server) sessionViews(c echo.Context, now time.Time) []templates.SessionRow {
	cur := currentSession(c)
	var out []templates.SessionRow
	for _, x := range s.sessions.List(now) {
		row := templates.SessionRow{
			ID: x.ID, Client: x.Client, Address: x.Address, Current: x.ID == cur,
			Since: x.Created.In(time.Local).Format("2 Jan 15:04"), LastSeen: x.LastSeen.UTC().Format(time.RFC3339),
			LastSeenAgo: ago(now, x.LastSeen),
		}
		if row.Current {
			out = append([]templates.SessionRow{row}, out...)
		} else {
			out = append(out, row)
		}
	}
	return out
}

// describeClient names a browser for the sessions list from its
// User-Agent ("Chrome on Android"); only a few well-known names, the rest
// is "A browser".
func describeClient(ua string) string {
	browser := ""
	for _, b := range []struct{ token, name string }{
		{"Edg/", "Edge"}, {"OPR/", "Opera"}, {"Firefox/", "Firefox"}, {"FxiOS/", "Firefox"},
		{"CriOS/", "Chrome"}, {"HeadlessChrome/", "Chromium"}, {"Chrome/", "Chrome"}, {"Safari/", "Safari"},
		{"curl/", "curl"},
	} {
		if strings.Contains(ua, b.token) {
			browser = b.name
			break
		}
	}
	system := ""
	for _, o := range []struct{ token, name string }{
		{"Android", "Android"}, {"iPhone", "iPhone"}, {"iPad", "iPad"}, {"Windows", "Windows"},
		{"Mac OS X", "macOS"}, {"CrOS", "ChromeOS"}, {"Linux", "Linux"},
	} {
		if strings.Contains(ua, o.token) {
			system = o.name
			break
		}
	}
	switch {
	case browser != "" && system != "":
		return browser + " on " + system
	case browser != "":
		return browser
	case system != "":
		return "A browser on " + system
	}
	return "A browser"
}
