package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestSignOutEndsTheSession(t *testing.T) {
	e := newEnv(t)
	cookie, token := e.login(t)
	other, _ := e.login(t)
	if res := e.form(t, "/logout", url.Values{"csrf": {token}}, withCookie(cookie)); res.status != http.StatusSeeOther {
		t.Fatalf("logout: %d %s", res.status, res.body)
	}
	// The browser dropped the cookie; a copy of it must be worthless too.
	if res := e.call(t, "GET", "/api/state", "", withCookie(cookie)); res.status != http.StatusUnauthorized {
		t.Errorf("the signed-out cookie still gets %d from /api/state", res.status)
	}
	if res := e.call(t, "GET", "/api/state", "", withCookie(other)); res.status != http.StatusOK {
		t.Errorf("signing out one browser signed out another: %d", res.status)
	}
}

func TestPasswordChangeEndsEverySession(t *testing.T) {
	e := newEnv(t)
	cookie, _ := e.login(t)
	restart := func(password string) *httptest.Server {
		srv, err := New(Options{Username: testUser, Password: password, SessionKey: []byte("0123456789abcdef0123456789abcdef"),
			Sessions: e.data, Logger: quiet, Version: "test"}, Deps{State: e.store, Devices: e.gw, Favorites: e.favs, Events: e.bus})
		if err != nil {
			t.Fatal(err)
		}
		web := httptest.NewServer(srv.Handler())
		t.Cleanup(web.Close)
		return web
	}
	get := func(web *httptest.Server) int {
		req, _ := http.NewRequest("GET", web.URL+"/api/state", nil)
		req.AddCookie(cookie)
		res, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if got := get(restart(testPassword)); got != http.StatusOK {
		t.Fatalf("a restart with the same password signed the browser out: %d", got)
	}
	restart("a new password")
	// Back to the old password: the cookie's signature is valid again, but
	// the sessions were ended when the new password was seen.
	if got := get(restart(testPassword)); got != http.StatusUnauthorized {
		t.Errorf("a session from before the password change still gets %d", got)
	}
}

func TestSessionsAPI(t *testing.T) {
	e := newEnv(t)
	mine, token := e.login(t)
	theirs, _ := e.login(t)

	res := e.call(t, "GET", "/api/sessions", "", withCookie(mine))
	var list []struct {
		ID      string `json:"id"`
		Client  string `json:"client"`
		Current bool   `json:"current"`
	}
	if err := json.Unmarshal([]byte(res.body), &list); err != nil || res.status != 200 || len(list) != 2 {
		t.Fatalf("GET /api/sessions: %d %s (%v)", res.status, res.body, err)
	}
	var theirID string
	for _, x := range list {
		if strings.Contains(mine.Value, x.ID) || strings.Contains(theirs.Value, x.ID) {
			t.Fatalf("a listed id is part of a cookie: %q", x.ID)
		}
		if !x.Current {
			theirID = x.ID
		}
	}
	if theirID == "" {
		t.Fatalf("no session is marked current exactly once: %s", res.body)
	}
	if res := e.call(t, "DELETE", "/api/sessions/"+theirID, "", withCookie(mine), header(csrfHeader, token)); res.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", res.status, res.body)
	}
	if res := e.call(t, "GET", "/api/state", "", withCookie(theirs)); res.status != http.StatusUnauthorized {
		t.Errorf("the ended session still gets %d", res.status)
	}
	if res := e.call(t, "DELETE", "/api/sessions/"+theirID, ""); res.status != http.StatusNotFound || !strings.Contains(errorBody(t, res), theirID) {
		t.Errorf("deleting it again: %d %s", res.status, res.body)
	}

	// The page's "Sign out all other devices" keeps this one.
	third, _ := e.login(t)
	if res := e.form(t, "/ui/sessions", url.Values{"csrf": {token}, "end": {"others"}}, withCookie(mine)); res.status != http.StatusSeeOther {
		t.Fatalf("form: %d %s", res.status, res.body)
	}
	if res := e.call(t, "GET", "/api/state", "", withCookie(third)); res.status != http.StatusUnauthorized {
		t.Errorf("another device survived 'sign out all other devices': %d", res.status)
	}
	page := e.call(t, "GET", "/", "", withCookie(mine))
	if page.status != 200 || !strings.Contains(page.body, "This device") || !strings.Contains(page.body, "1 device") {
		t.Errorf("the page does not list this device alone: %d", page.status)
	}
	// With basic auth there is no own session: DELETE /api/sessions ends all.
	if res := e.call(t, "DELETE", "/api/sessions", ""); res.status != 200 || !strings.Contains(res.body, `"ended":1`) {
		t.Errorf("DELETE /api/sessions: %d %s", res.status, res.body)
	}
	if res := e.call(t, "GET", "/api/state", "", withCookie(mine)); res.status != http.StatusUnauthorized {
		t.Errorf("after ending every session: %d", res.status)
	}
}

func TestDescribeClient(t *testing.T) {
	for ua, want := range map[string]string{
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Mobile Safari/537.36":                       "Chrome on Android",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1": "Safari on iPhone",
		"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0":                                                                  "Firefox on Linux",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36 Edg/131.0":                   "Edge on Windows",
		"Go-http-client/1.1": "A browser",
	} {
		if got := describeClient(ua); got != want {
			t.Errorf("describeClient(%q) = %q, want %q", ua, got, want)
		}
	}
}

func TestSignOutEndsTheEventStream(t *testing.T) {
	e := newEnv(t)
	e.srv.heartbeat = 20 * time.Millisecond
	cookie, token := e.login(t)
	s := e.openEvents(t, withCookie(cookie))
	s.next(t, "devices")
	s.next(t, "devices") // the first heartbeat
	if res := e.form(t, "/logout", url.Values{"csrf": {token}}, withCookie(cookie)); res.status != http.StatusSeeOther {
		t.Fatalf("logout: %d", res.status)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-s.events:
			if !ok {
				return // ended, as it should
			}
		case <-deadline:
			t.Fatal("the event stream of a signed-out session is still open")
		}
	}
}
