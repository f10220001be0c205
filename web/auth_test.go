package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestNewValidatesOptions(t *testing.T) {
	e := newEnv(t)
	good := Options{Username: "u", Password: "p", SessionKey: make([]byte, 32), Sessions: e.data}
	deps := Deps{State: e.store, Devices: e.gw, Favorites: e.favs, Events: e.bus}
	tests := []struct {
		name string
		edit func(*Options, *Deps)
		want string
	}{
		{"no password", func(o *Options, _ *Deps) { o.Password = "" }, "a username and a password are required"},
		{"no username", func(o *Options, _ *Deps) { o.Username = "" }, "a username and a password are required"},
		{"short session key", func(o *Options, _ *Deps) { o.SessionKey = make([]byte, 16) }, "the session key has 16 bytes; it needs at least 32"},
		{"no state", func(_ *Options, d *Deps) { d.State = nil }, "services are required"},
		{"nowhere to keep logins", func(o *Options, _ *Deps) { o.Sessions = nil }, "a place to keep the browser logins is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, d := good, deps
			tt.edit(&o, &d)
			if _, err := New(o, d); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want …%s…", err, tt.want)
			}
		})
	}
	if _, err := New(good, deps); err != nil {
		t.Errorf("good options: %v", err)
	}
	// A second server on the same registry reuses the HTTP metrics.
	good.Registry = e.reg
	if _, err := New(good, deps); err != nil {
		t.Errorf("second server on one registry: %v", err)
	}
}

func TestLoginRequired(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name      string
		method    string
		path      string
		opts      []reqOption
		status    int
		location  string
		challenge bool
	}{
		{"api without credentials", "GET", "/api/state", []reqOption{noAuth()}, 401, "", true},
		{"api with a wrong password", "GET", "/api/devices", []reqOption{basic(testUser, "nope")}, 401, "", true},
		{"api with a wrong user", "GET", "/api/devices", []reqOption{basic("root", testPassword)}, 401, "", true},
		{"api from the page's fetch gets no browser dialog", "GET", "/api/state", []reqOption{noAuth(), header("Sec-Fetch-Mode", "cors")}, 401, "", false},
		{"unknown api route without credentials", "GET", "/api/secret", []reqOption{noAuth()}, 401, "", true},
		{"events without credentials", "GET", "/api/events", []reqOption{noAuth()}, 401, "", true},
		{"page redirects to the login", "GET", "/", []reqOption{noAuth()}, 303, "/login?next=%2F", false},
		{"page with a query keeps it", "GET", "/?log=d-1", []reqOption{noAuth()}, 303, "/login?next=%2F%3Flog%3Dd-1", false},
		{"form post redirects to the login", "POST", "/ui/state", []reqOption{noAuth(), contentType("application/x-www-form-urlencoded")}, 303, "/login?next=%2F", false},
		{"healthz is public", "GET", "/healthz", []reqOption{noAuth()}, 200, "", false},
		{"metrics are public", "GET", "/metrics", []reqOption{noAuth()}, 200, "", false},
		{"the login page is public", "GET", "/login", []reqOption{noAuth()}, 200, "", false},
		{"the manifest is public", "GET", "/manifest.webmanifest", []reqOption{noAuth()}, 200, "", false},
		{"basic auth opens the api", "GET", "/api/state", nil, 200, "", false},
		{"basic auth opens pages", "GET", "/", nil, 200, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.srv.limiter.Succeed("127.0.0.1") // each case starts without earlier wrong passwords
			res := e.call(t, tt.method, tt.path, "", tt.opts...)
			if res.status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.status, tt.status, res.body)
			}
			if tt.status == 401 {
				if msg := errorBody(t, res); !strings.Contains(msg, "log in first") && !strings.Contains(msg, "wrong user name or password") {
					t.Errorf("401 says %q", msg)
				}
			}
			if got := res.header.Get("Location"); got != tt.location {
				t.Errorf("Location %q, want %q", got, tt.location)
			}
			if got := res.header.Get("WWW-Authenticate") != ""; got != tt.challenge {
				t.Errorf("WWW-Authenticate present: %v, want %v", got, tt.challenge)
			}
		})
	}
}

func TestLoginAndSession(t *testing.T) {
	e := newEnv(t)
	t.Run("wrong password shows the form again", func(t *testing.T) {
		res := e.form(t, "/login", url.Values{"username": {testUser}, "password": {"nope"}}, noAuth())
		if res.status != http.StatusUnauthorized || !strings.Contains(res.body, "Wrong user name or password.") {
			t.Errorf("%d", res.status)
		}
		if strings.Contains(res.header.Get("Set-Cookie"), sessionCookie+"=v1") {
			t.Error("a wrong password set a session cookie")
		}
		e.srv.limiter.Succeed("127.0.0.1") // let the next subtests log in at once
	})
	var cookie *http.Cookie
	t.Run("right password sets a safe cookie and follows next", func(t *testing.T) {
		res := e.form(t, "/login", url.Values{"username": {testUser}, "password": {testPassword}, "next": {"/?log=abc"}}, noAuth())
		if res.status != http.StatusSeeOther || res.header.Get("Location") != "/?log=abc" {
			t.Fatalf("%d Location %q", res.status, res.header.Get("Location"))
		}
		for _, c := range (&http.Response{Header: res.header}).Cookies() {
			if c.Name == sessionCookie {
				cookie = c
			}
		}
		if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode || cookie.Path != "/" {
			t.Fatalf("session cookie %+v", cookie)
		}
		if cookie.MaxAge < 29*24*3600 || cookie.MaxAge > 30*24*3600 {
			t.Errorf("cookie lasts %d s, want 30 days", cookie.MaxAge)
		}
	})
	t.Run("a stale cookie of the same name before the valid one", func(t *testing.T) {
		stale := &http.Cookie{Name: sessionCookie, Value: "v1.stale.garbage"}
		res := e.call(t, "GET", "/api/state", "", withCookie(stale), func(r *http.Request) { r.AddCookie(cookie) })
		if res.status != 200 {
			t.Errorf("status %d with a stale cookie before the valid one: %s", res.status, res.body)
		}
	})
	t.Run("the cookie opens pages and the api", func(t *testing.T) {
		if res := e.call(t, "GET", "/", "", withCookie(cookie)); res.status != 200 || !strings.Contains(res.body, `name="csrf-token"`) {
			t.Errorf("page: %d", res.status)
		}
		if res := e.call(t, "GET", "/api/state", "", withCookie(cookie)); res.status != 200 {
			t.Errorf("api: %d", res.status)
		}
		if res := e.call(t, "GET", "/login", "", withCookie(cookie)); res.status != http.StatusSeeOther {
			t.Errorf("login page while logged in: %d", res.status)
		}
	})
	t.Run("open redirects are refused", func(t *testing.T) {
		for _, next := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"} {
			res := e.form(t, "/login", url.Values{"username": {testUser}, "password": {testPassword}, "next": {next}}, noAuth())
			if res.header.Get("Location") != "/" {
				t.Errorf("next=%q redirected to %q", next, res.header.Get("Location"))
			}
		}
	})
	t.Run("a tampered cookie is refused and cleared", func(t *testing.T) {
		parts := strings.Split(cookie.Value, ".")
		parts[2] = strconv.FormatInt(time.Now().Add(365*24*time.Hour).Unix(), 10) // a later expiry
		forged := &http.Cookie{Name: sessionCookie, Value: strings.Join(parts, ".")}
		res := e.call(t, "GET", "/api/state", "", withCookie(forged))
		if res.status != 401 {
			t.Errorf("forged cookie: %d", res.status)
		}
		if !strings.Contains(res.header.Get("Set-Cookie"), "Max-Age=0") {
			t.Errorf("bad cookie not cleared: %q", res.header.Get("Set-Cookie"))
		}
	})
	t.Run("an expired cookie is refused", func(t *testing.T) {
		e.srv.now = func() time.Time { return time.Now().Add(31 * 24 * time.Hour) }
		defer func() { e.srv.now = time.Now }()
		if res := e.call(t, "GET", "/", "", withCookie(cookie)); res.status != http.StatusSeeOther {
			t.Errorf("expired cookie: %d", res.status)
		}
	})
	t.Run("a cookie past half its life is renewed", func(t *testing.T) {
		e.srv.now = func() time.Time { return time.Now().Add(20 * 24 * time.Hour) }
		defer func() { e.srv.now = time.Now }()
		res := e.call(t, "GET", "/api/state", "", withCookie(cookie))
		if res.status != 200 || !strings.Contains(res.header.Get("Set-Cookie"), sessionCookie+"=v1.") {
			t.Errorf("no renewal: %d %q", res.status, res.header.Get("Set-Cookie"))
		}
	})
	t.Run("changing the password ends sessions", func(t *testing.T) {
		other := newAuthenticator(testUser, "another password", []byte("0123456789abcdef0123456789abcdef"), time.Hour)
		if _, ok := other.decode(cookie.Value, time.Now()); ok {
			t.Error("a cookie signed under the old password was accepted")
		}
	})
	t.Run("logout clears the cookie", func(t *testing.T) {
		page := e.call(t, "GET", "/", "", withCookie(cookie))
		token := csrfMeta.FindStringSubmatch(page.body)[1]
		res := e.form(t, "/logout", url.Values{"csrf": {token}}, withCookie(cookie))
		if res.status != http.StatusSeeOther || res.header.Get("Location") != "/login" || !strings.Contains(res.header.Get("Set-Cookie"), "Max-Age=0") {
			t.Errorf("logout: %d %q %q", res.status, res.header.Get("Location"), res.header.Get("Set-Cookie"))
		}
	})
}

func TestCSRF(t *testing.T) {
	e := newEnv(t)
	cookie, token := e.login(t)
	put := `{"mode": "manual"}`
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		opts   []reqOption
		status int
	}{
		{"cookie without a token is refused", "PUT", "/api/state", put, []reqOption{withCookie(cookie)}, 403},
		{"cookie with a wrong token is refused", "PUT", "/api/state", put, []reqOption{withCookie(cookie), header(csrfHeader, "forged")}, 403},
		{"cookie with another session's token is refused", "PUT", "/api/state", put, []reqOption{withCookie(cookie), header(csrfHeader, e.srv.auth.csrfToken(session{id: strings.Repeat("a", 32)}))}, 403},
		{"cookie with the header token works", "PUT", "/api/state", put, []reqOption{withCookie(cookie), header(csrfHeader, token)}, 200},
		{"form without the hidden field is refused", "POST", "/ui/state", "mode=off", []reqOption{withCookie(cookie), contentType("application/x-www-form-urlencoded")}, 403},
		{"form with the hidden field works", "POST", "/ui/state", "mode=off&csrf=" + url.QueryEscape(token), []reqOption{withCookie(cookie), contentType("application/x-www-form-urlencoded")}, 303},
		{"commands need it too", "POST", "/api/commands", `{"command": "reset"}`, []reqOption{withCookie(cookie)}, 403},
		{"reads need none", "GET", "/api/state", "", []reqOption{withCookie(cookie)}, 200},
		{"basic auth needs none", "PUT", "/api/state", put, nil, 200},
		{"a cross-site request is refused even with basic auth", "PUT", "/api/state", put, []reqOption{header("Sec-Fetch-Site", "cross-site")}, 403},
		{"a foreign Origin is refused", "PUT", "/api/state", put, []reqOption{header("Origin", "https://evil.example")}, 403},
		{"our own Origin is fine", "PUT", "/api/state", put, []reqOption{header("Origin", e.web.URL), header("Sec-Fetch-Site", "same-origin")}, 200},
		{"a cross-site login is refused", "POST", "/login", "username=admin&password=x", []reqOption{noAuth(), contentType("application/x-www-form-urlencoded"), header("Sec-Fetch-Site", "cross-site")}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.call(t, tt.method, tt.path, tt.body, tt.opts...)
			if res.status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.status, tt.status, res.body)
			}
			if tt.status == 403 && strings.HasPrefix(tt.path, "/api/") {
				if msg := errorBody(t, res); !strings.Contains(msg, "CSRF") && !strings.Contains(msg, "another site") {
					t.Errorf("403 says %q", msg)
				}
			}
		})
	}
}

func TestLoginSlowDown(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	e.srv.now = func() time.Time { return now }
	wrong := url.Values{"username": {testUser}, "password": {"guess"}}
	right := url.Values{"username": {testUser}, "password": {testPassword}}

	if res := e.form(t, "/login", wrong, noAuth()); res.status != http.StatusUnauthorized {
		t.Fatalf("first wrong password: %d", res.status)
	}
	res := e.form(t, "/login", wrong, noAuth())
	if res.status != http.StatusTooManyRequests || res.header.Get("Retry-After") != "1" {
		t.Fatalf("at once again: %d Retry-After %q", res.status, res.header.Get("Retry-After"))
	}
	if !strings.Contains(res.body, "Try again in 1 s") {
		t.Error("the 429 page does not say how long to wait")
	}
	// Even the right password waits: the delay is what bounds guessing.
	if res := e.form(t, "/login", right, noAuth()); res.status != http.StatusTooManyRequests {
		t.Errorf("right password during the delay: %d", res.status)
	}
	// Scripts are slowed down the same way, with a JSON answer.
	res = e.call(t, "GET", "/api/state", "", basic(testUser, testPassword))
	if res.status != http.StatusTooManyRequests || !strings.Contains(errorBody(t, res), "too many wrong passwords") || res.header.Get("Retry-After") == "" {
		t.Errorf("basic auth during the delay: %d %s", res.status, res.body)
	}

	// Each failure doubles the wait: 1 s, 2 s, 4 s, 8 s.
	for i, want := range []string{"2", "4", "8"} {
		now = now.Add(time.Duration(1<<i) * time.Second)
		if res := e.form(t, "/login", wrong, noAuth()); res.status != http.StatusUnauthorized {
			t.Fatalf("wrong password %d after waiting: %d", i+2, res.status)
		}
		if res := e.form(t, "/login", right, noAuth()); res.header.Get("Retry-After") != want {
			t.Fatalf("after %d failures Retry-After %q, want %s", i+2, res.header.Get("Retry-After"), want)
		}
	}
	// Another address is not affected.
	if d := e.srv.limiter.Wait("192.0.2.9"); d != 0 {
		t.Errorf("another address waits %v", d)
	}
	// After the wait the right password works and clears the record.
	now = now.Add(8 * time.Second)
	if res := e.form(t, "/login", right, noAuth()); res.status != http.StatusSeeOther {
		t.Fatalf("right password after the wait: %d", res.status)
	}
	if d := e.srv.limiter.Wait("127.0.0.1"); d != 0 {
		t.Errorf("a success left a delay of %v", d)
	}
	// Wrong basic auth counts too.
	e.call(t, "GET", "/api/state", "", basic(testUser, "guess"))
	if res := e.call(t, "GET", "/api/state", ""); res.status != http.StatusTooManyRequests {
		t.Errorf("after a wrong basic auth password: %d", res.status)
	}
}

func TestPasswordCompare(t *testing.T) {
	a := newAuthenticator("admin", "secret", make([]byte, 32), time.Hour)
	tests := []struct {
		user, pass string
		ok         bool
	}{
		{"admin", "secret", true},
		{"admin", "secret ", false},
		{"admin", "Secret", false},
		{"Admin", "secret", false},
		{"", "", false},
		{"admin", "", false},
	}
	for _, tt := range tests {
		if got := a.checkPassword(tt.user, tt.pass); got != tt.ok {
			t.Errorf("checkPassword(%q, %q) = %v", tt.user, tt.pass, got)
		}
	}
}
