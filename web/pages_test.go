package web

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/logtest"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/invalid"
	"github.com/cloudcloud/cloudcloud/internal/realip"
	"github.com/cloudcloud/cloudcloud/protocol"
)

func TestIndexPage(t *testing.T) {
	e := newEnv(t)
	lamp := e.lamp(t)
	lamp.send(t, "d:<script>alert(1)</script>")
	waitFor(t, "the log line", func() bool { return len(e.gw.Logs("", 1)) == 1 })
	res := e.call(t, http.MethodGet, "/", "")
	if res.status != 200 || !strings.HasPrefix(res.header.Get("Content-Type"), "text/html") {
		t.Fatalf("%d %s", res.status, res.header.Get("Content-Type"))
	}
	if res.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", res.header.Get("Cache-Control"))
	}
	for _, want := range []string{
		`data-mode="off"`, "[cc:0:?:?]", lamp.id, "127.0.0.1", "broken clouds", "Utrecht",
		`&lt;script&gt;alert(1)&lt;/script&gt;`, // lamp text is escaped
		`<!-- Firmware panel`,                   // the place the firmware issue fills
		`action="/ui/state"`, `action="/ui/command"`, `action="/ui/favorites"`,
	} {
		if !strings.Contains(res.body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(res.body, "<script>alert(1)") {
		t.Error("a lamp's log line reached the page unescaped")
	}
	t.Run("log filter", func(t *testing.T) {
		other := e.call(t, http.MethodGet, "/?log=d-nothing", "")
		if strings.Contains(other.body, "alert(1)") && strings.Contains(other.body, `class="log-msg" data-field="message">&lt;script`) {
			t.Error("the filtered page shows another lamp's lines")
		}
		if !strings.Contains(other.body, `href="/logs.txt?device=d-nothing"`) {
			t.Error("the download link does not follow the filter")
		}
	})
}

// TestPagesHaveNoInlineCode checks what the CSP enforces in browsers: no
// inline scripts (the JSON data block is not code), no inline styles, no
// event handler attributes, and nothing from other hosts.
func TestPagesHaveNoInlineCode(t *testing.T) {
	e := newEnv(t)
	e.lamp(t)
	pages := map[string]string{
		"index": e.call(t, http.MethodGet, "/", "").body,
		"login": e.call(t, http.MethodGet, "/login", "", noAuth()).body,
		"error": e.form(t, "/ui/state", url.Values{"pulse": {"12"}}).body,
	}
	script := regexp.MustCompile(`<script([^>]*)>`)
	for name, body := range pages {
		for _, m := range script.FindAllStringSubmatch(body, -1) {
			if !strings.Contains(m[1], `src="/static/`) && !strings.Contains(m[1], `type="application/json"`) {
				t.Errorf("%s: inline script %s", name, m[0])
			}
		}
		for _, bad := range []string{" style=", "<style", " onclick=", " onload=", " onsubmit=", "javascript:", "http://", "https://"} {
			if strings.Contains(body, bad) && !(bad == "http://" && strings.Contains(body, `xmlns="http://www.w3.org/2000/svg"`) && strings.Count(body, "http://") == strings.Count(body, "http://www.w3.org/2000/svg")) {
				t.Errorf("%s page contains %q", name, bad)
			}
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/", "/api/state", "/login", "/healthz"} {
		res := e.call(t, http.MethodGet, path, "")
		h := res.header
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "style-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") == "" {
			t.Errorf("%s: headers %v", path, h)
		}
	}
}

func TestForms(t *testing.T) {
	e := newEnv(t)
	lamp := e.lamp(t)
	ok := []struct {
		name   string
		path   string
		values url.Values
		where  string
		check  func(t *testing.T)
	}{
		{"mode and colour", "/ui/state", url.Values{"mode": {"manual"}, "color": {"#00FF00"}}, "/", func(t *testing.T) { lamp.waitFor(t, "[cc:2:0,255,0:0]") }},
		{"pulse", "/ui/state", url.Values{"mode": {"manual"}, "pulse": {"5"}}, "/", func(t *testing.T) { lamp.waitFor(t, "[cc:2:0,255,0:5]") }},
		{"favourite swatch", "/ui/state", url.Values{"mode": {"manual"}, "color": {"255,65,174"}}, "/", func(t *testing.T) { lamp.waitFor(t, "[cc:2:255,65,174:5]") }},
		{"weather preview", "/ui/state", url.Values{"mode": {"weather"}, "override": {"6"}, "intensity": {"3.5"}}, "/", func(t *testing.T) { lamp.waitFor(t, "[cc:1:6:3.5]") }},
		// The slider's 10 is the strongest a storm may be: 9.
		{"weather preview at the slider's top", "/ui/state", url.Values{"mode": {"weather"}, "override": {"6"}, "intensity": {"10"}}, "/", func(t *testing.T) { lamp.waitFor(t, "[cc:1:6:9]") }},
		{"cloudy preview keeps 0", "/ui/state", url.Values{"mode": {"weather"}, "override": {"4"}, "intensity": {"0"}}, "/", func(t *testing.T) { lamp.waitFor(t, "[cc:1:4:0]") }},
		{"live weather again", "/ui/state", url.Values{"mode": {"weather"}, "override": {"live"}}, "/", func(t *testing.T) { lamp.waitFor(t, "[cc:1:3:9]") }},
		{"reboot, confirmed", "/ui/command", url.Values{"command": {"reset"}, "device": {lamp.id}, "confirmed": {"yes"}}, "/#lamps", func(t *testing.T) { lamp.waitFor(t, "[cc:r:?:?]") }},
		{"debug on", "/ui/command", url.Values{"command": {"debug"}, "on": {"true"}, "device": {lamp.id}}, "/#lamps", func(t *testing.T) { lamp.waitFor(t, "[cc:d:1:?]") }},
		{"save a favourite", "/ui/favorites", url.Values{"action": {"add"}, "color": {"#abcdef"}}, "/#colour", func(t *testing.T) {
			if l := e.favs.Get().Colors; l[len(l)-1].Hex() != "#abcdef" {
				t.Errorf("favourites %v", l)
			}
		}},
		{"remove a favourite", "/ui/favorites", url.Values{"action": {"remove"}, "color": {"#abcdef"}}, "/#colour", func(t *testing.T) {
			for _, c := range e.favs.Get().Colors {
				if c.Hex() == "#abcdef" {
					t.Error("still there")
				}
			}
		}},
		{"refresh the weather", "/ui/weather/refresh", url.Values{}, "/#weather", func(t *testing.T) {
			e.weather.mu.Lock()
			defer e.weather.mu.Unlock()
			if e.weather.refreshes != 1 {
				t.Errorf("%d refreshes", e.weather.refreshes)
			}
		}},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			res := e.form(t, tt.path, tt.values)
			if res.status != http.StatusSeeOther || res.header.Get("Location") != tt.where {
				t.Fatalf("%d Location %q: %s", res.status, res.header.Get("Location"), res.body)
			}
			tt.check(t)
		})
	}
	bad := []struct {
		name   string
		path   string
		values url.Values
		status int
		want   string
	}{
		{"pulse out of range", "/ui/state", url.Values{"pulse": {"12"}}, 400, "pulse: 12 is out of range 0-9"},
		{"pulse not a number", "/ui/state", url.Values{"pulse": {"fast"}}, 400, "pulse: &#34;fast&#34; is not a whole number; use 0-9"},
		{"bad colour", "/ui/state", url.Values{"color": {"#12"}}, 400, "color: colour &#34;#12&#34;"},
		{"bad mode", "/ui/state", url.Values{"mode": {"party"}}, 400, "is not a mode; use off, weather or manual"},
		{"override code out of range", "/ui/state", url.Values{"override": {"12"}}, 400, "weather_override.code: 12 is out of range 1-9"},
		{"override intensity not a number", "/ui/state", url.Values{"override": {"4"}, "intensity": {"lots"}}, 400, "weather_override.intensity"},
		{"nothing to change", "/ui/state", url.Values{}, 400, "nothing to change"},
		{"unknown command", "/ui/command", url.Values{"command": {"dance"}}, 400, "is not known; use reset, update or debug"},
		{"unknown lamp", "/ui/command", url.Values{"command": {"reset"}, "device": {"d-gone"}, "confirmed": {"yes"}}, 404, "no connected lamp with id or name &#34;d-gone&#34;"},
		{"bad favourite", "/ui/favorites", url.Values{"action": {"add"}, "color": {"sky"}}, 400, "color: colour &#34;sky&#34;"},
		{"unknown favourite action", "/ui/favorites", url.Values{"action": {"paint"}, "color": {"#ffffff"}}, 400, "use add or remove"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			res := e.form(t, tt.path, tt.values)
			if res.status != tt.status {
				t.Fatalf("status %d, want %d", res.status, tt.status)
			}
			if !strings.HasPrefix(res.header.Get("Content-Type"), "text/html") || !strings.Contains(res.body, tt.want) {
				t.Errorf("error page lacks %q", tt.want)
			}
		})
	}
}

// TestFormAndJSONShareValidation feeds the same bad values through both
// doors and expects the same sentence.
func TestFormAndJSONShareValidation(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		form       url.Values
		json, want string
	}{
		{url.Values{"pulse": {"10"}}, `{"pulse": 10}`, "pulse: 10 is out of range 0-9"},
		{url.Values{"mode": {"disco"}}, `{"mode": "disco"}`, `mode: "disco" is not a mode`},
		{url.Values{"override": {"0"}, "intensity": {"3"}}, `{"weather_override": {"code": 0, "intensity": 3}}`, "weather_override.code: 0 is out of range 1-9"},
	}
	for _, c := range cases {
		jres := e.call(t, http.MethodPut, "/api/state", c.json)
		fres := e.form(t, "/ui/state", c.form, header("Accept", "application/json"))
		for _, r := range []response{jres, fres} {
			if r.status != 400 || !strings.Contains(errorBody(t, r), c.want) {
				t.Errorf("%d %s, want …%s…", r.status, r.body, c.want)
			}
		}
	}
}

func TestStaticAssets(t *testing.T) {
	e := newEnv(t)
	page := e.call(t, http.MethodGet, "/", "").body
	js := regexp.MustCompile(`src="(/static/app\.[0-9a-f]{10}\.js)"`).FindStringSubmatch(page)
	css := regexp.MustCompile(`href="(/static/app\.[0-9a-f]{10}\.css)"`).FindStringSubmatch(page)
	if js == nil || css == nil {
		t.Fatal("the page does not link content-hashed assets")
	}
	t.Run("hashed names are cached for a year, gzipped when asked", func(t *testing.T) {
		res := e.call(t, http.MethodGet, js[1], "", noAuth(), header("Accept-Encoding", "gzip"))
		if res.status != 200 || res.header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
			t.Fatalf("%d %q", res.status, res.header.Get("Cache-Control"))
		}
		if res.header.Get("Content-Encoding") != "gzip" || !strings.HasPrefix(res.header.Get("Content-Type"), "text/javascript") {
			t.Fatalf("encoding %q type %q", res.header.Get("Content-Encoding"), res.header.Get("Content-Type"))
		}
		zr, err := gzip.NewReader(strings.NewReader(res.body))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(zr)
		if !strings.Contains(string(body), "EventSource") {
			t.Error("gzipped body is not the script")
		}
		etag := res.header.Get("ETag")
		if again := e.call(t, http.MethodGet, js[1], "", noAuth(), header("If-None-Match", etag)); again.status != http.StatusNotModified {
			t.Errorf("If-None-Match: %d", again.status)
		}
	})
	t.Run("the hash follows the content", func(t *testing.T) {
		a := e.srv.assets.byName["app.js"]
		if !strings.Contains(js[1], a.hashed) || a.hashed == "app.js" {
			t.Errorf("link %s, asset %s", js[1], a.hashed)
		}
	})
	t.Run("plain and outdated names must revalidate", func(t *testing.T) {
		for _, p := range []string{"/static/app.css", "/static/app.0000000000.css"} {
			res := e.call(t, http.MethodGet, p, "", noAuth())
			if res.status != 200 || res.header.Get("Cache-Control") != "no-cache" {
				t.Errorf("%s: %d %q", p, res.status, res.header.Get("Cache-Control"))
			}
		}
		if res := e.call(t, http.MethodGet, "/static/nothing.js", "", noAuth()); res.status != 404 {
			t.Errorf("unknown asset: %d", res.status)
		}
	})
	t.Run("manifest and icons", func(t *testing.T) {
		res := e.call(t, http.MethodGet, "/manifest.webmanifest", "", noAuth())
		var m struct {
			Name    string `json:"name"`
			Display string `json:"display"`
			Icons   []struct{ Src, Sizes, Type, Purpose string }
		}
		if err := json.Unmarshal([]byte(res.body), &m); err != nil || m.Display != "standalone" || len(m.Icons) < 3 {
			t.Fatalf("manifest %s (%v)", res.body, err)
		}
		for _, ic := range m.Icons {
			r := e.call(t, http.MethodGet, ic.Src, "", noAuth())
			if r.status != 200 || r.header.Get("Content-Type") != ic.Type {
				t.Errorf("icon %s: %d %s", ic.Src, r.status, r.header.Get("Content-Type"))
			}
			if ic.Type == "image/png" {
				img, err := png.Decode(strings.NewReader(r.body))
				if err != nil || ic.Sizes != "512x512" && ic.Sizes != "192x192" || img.Bounds().Dx() != map[string]int{"512x512": 512, "192x192": 192}[ic.Sizes] {
					t.Errorf("icon %s does not decode to %s: %v", ic.Src, ic.Sizes, err)
				}
			}
		}
		if r := e.call(t, http.MethodGet, "/favicon.ico", "", noAuth()); r.status != 200 || r.header.Get("Content-Type") != "image/png" {
			t.Errorf("favicon: %d %s", r.status, r.header.Get("Content-Type"))
		}
	})
	t.Run("the manifest follows the system theme and locks no orientation", func(t *testing.T) {
		if h := e.call(t, http.MethodGet, "/login", "", noAuth()).header.Get("Accept-CH"); h != colorSchemeHint {
			t.Errorf("pages ask for client hints %q, want %s", h, colorSchemeHint)
		}
		for hint, want := range map[string]string{"": lightBackground, `"light"`: lightBackground, `"dark"`: darkBackground} {
			res := e.call(t, http.MethodGet, "/manifest.webmanifest", "", noAuth(), header(colorSchemeHint, hint))
			var m map[string]any
			if err := json.Unmarshal([]byte(res.body), &m); err != nil {
				t.Fatal(err)
			}
			if m["background_color"] != want || m["theme_color"] != want {
				t.Errorf("with %s=%q the splash is %v / %v, want %s", colorSchemeHint, hint, m["background_color"], m["theme_color"], want)
			}
			if _, ok := m["orientation"]; ok {
				t.Errorf("the manifest locks the orientation to %v", m["orientation"])
			}
			if !strings.Contains(res.header.Get("Vary"), colorSchemeHint) {
				t.Errorf("Vary %q", res.header.Get("Vary"))
			}
		}
	})
	t.Run("service worker and offline page", func(t *testing.T) {
		res := e.call(t, http.MethodGet, "/sw.js", "", noAuth())
		if res.status != 200 || !strings.HasPrefix(res.header.Get("Content-Type"), "text/javascript") || strings.Contains(res.body, "__PRECACHE__") || !strings.Contains(res.body, `"/offline.html"`) || !strings.Contains(res.body, e.srv.assets.url("app.css")) {
			t.Errorf("sw.js: %d %s\n%s", res.status, res.header.Get("Content-Type"), res.body)
		}
		res = e.call(t, http.MethodGet, "/offline.html", "", noAuth())
		if res.status != 200 || !strings.Contains(res.body, "Cannot reach your cloudcloud") || !strings.Contains(res.body, `http-equiv="refresh"`) {
			t.Errorf("offline page: %d %s", res.status, res.body)
		}
	})
	t.Run("pages and JSON are gzipped", func(t *testing.T) {
		res := e.call(t, http.MethodGet, "/", "", header("Accept-Encoding", "gzip"))
		if res.header.Get("Content-Encoding") != "gzip" {
			t.Errorf("page Content-Encoding %q", res.header.Get("Content-Encoding"))
		}
	})
}

func TestFirmwareRoute(t *testing.T) {
	e := newEnv(t)
	if res := e.call(t, http.MethodGet, "/firmware.bin", ""); res.status != 404 || !strings.Contains(errorBody(t, res), "no firmware image") {
		t.Errorf("without a handler: %d %s", res.status, res.body)
	}
	// The handler checks logins itself; the web login is not asked first,
	// so a lamp secret opens it too.
	e2 := newEnv(t, func(o *Options, _ *Deps) {
		o.FirmwareHandler = firmwareAccess().Guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("IMAGE")) }))
	})
	for _, login := range []reqOption{basic(testUser, testPassword), basic("lamp", lampSecret)} {
		if res := e2.call(t, http.MethodGet, "/firmware.bin", "", login); res.status != 200 || res.body != "IMAGE" {
			t.Errorf("with a handler: %d %q", res.status, res.body)
		}
	}
	res := e2.call(t, http.MethodGet, "/firmware.bin", "", noAuth())
	if res.status != 401 || !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Basic ") || !strings.Contains(errorBody(t, res), "log in") {
		t.Errorf("without login: %d, WWW-Authenticate %q, %s", res.status, res.header.Get("WWW-Authenticate"), res.body)
	}
}

func TestAccessLogUsesTrustedClientAddress(t *testing.T) {
	var logs logtest.Buffer
	trusted, err := realip.New([]string{"127.0.0.1/32"})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *Options, _ *Deps) {
		o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
		o.Proxies = trusted
	})
	e.call(t, http.MethodGet, "/api/state", "", header("X-Forwarded-For", "203.0.113.7"))
	untrusted := newEnv(t, func(o *Options, _ *Deps) { o.Logger = slog.New(slog.NewJSONHandler(&logs, nil)) })
	untrusted.call(t, http.MethodGet, "/api/devices", "", header("X-Forwarded-For", "203.0.113.8"))

	var sawTrusted, sawUntrusted bool
	for line := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != "http request" {
			continue
		}
		switch rec["route"] {
		case "/api/state":
			sawTrusted = rec["client"] == "203.0.113.7" && rec["status"] == float64(200)
		case "/api/devices":
			sawUntrusted = strings.HasPrefix(rec["client"].(string), "127.0.0.1:")
		}
	}
	if !sawTrusted || !sawUntrusted {
		t.Errorf("access log (trusted proxy believed: %v, untrusted ignored: %v):\n%s", sawTrusted, sawUntrusted, logs.String())
	}
}

// panicky is a device service that fails the way a bug would.
type panicky struct{ DeviceService }

func (panicky) Devices() []device.Info { panic("boom") }

func TestPanicBecomes500(t *testing.T) {
	e := newEnv(t)
	e2 := newEnv(t, func(_ *Options, d *Deps) { d.Devices = panicky{e.gw} })
	res := e2.call(t, http.MethodGet, "/api/devices", "")
	if res.status != 500 || strings.Contains(errorBody(t, res), "boom") {
		t.Errorf("%d %s", res.status, res.body)
	}
	if res := e2.call(t, http.MethodGet, "/healthz", ""); res.status != 200 {
		t.Errorf("the server did not survive: %d", res.status)
	}
}

func TestChangeFromForm(t *testing.T) {
	ch, err := changeFromForm(url.Values{"mode": {"weather"}, "override": {"4"}})
	if err != nil || ch.WeatherOverride.Value == nil || ch.WeatherOverride.Value.Intensity != 10 {
		t.Errorf("override without intensity: %+v %v", ch, err)
	}
	ch, err = changeFromForm(url.Values{"color": {" 1, 2 ,3 "}})
	if err != nil || *ch.Color != (protocol.RGB{R: 1, G: 2, B: 3}) {
		t.Errorf("colour with spaces: %+v %v", ch, err)
	}
	if _, err := changeFromForm(url.Values{"override": {"live"}}); err != nil {
		t.Errorf("live: %v", err)
	}
	var ve *invalid.Error
	if _, err := changeFromForm(url.Values{"pulse": {""}}); err == nil || !errorsAs(err, &ve) || ve.Field != "pulse" {
		t.Errorf("empty pulse: %v", err)
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// Without the script, a reboot or an update from a lamp's row asks first:
// the form shows a page with the question, and only its button sends.
func TestFormCommandAsksFirst(t *testing.T) {
	e := newEnv(t)
	lamp := e.lamp(t)
	cookie, token := e.login(t)
	res := e.form(t, "/ui/command", url.Values{"csrf": {token}, "command": {"reset"}, "device": {lamp.id}}, withCookie(cookie))
	if res.status != http.StatusOK || !strings.Contains(res.body, "Reboot "+lamp.id+"?") || !strings.Contains(res.body, `name="confirmed" value="yes"`) || !strings.Contains(res.body, `href="/#lamps"`) {
		t.Fatalf("no question: %d %s", res.status, res.body)
	}
	lamp.quietFor(t, 200*time.Millisecond)
	res = e.form(t, "/ui/command", url.Values{"csrf": {token}, "command": {"reset"}, "device": {lamp.id}, "confirmed": {"yes"}}, withCookie(cookie))
	if res.status != http.StatusSeeOther {
		t.Fatalf("confirmed: %d %s", res.status, res.body)
	}
	lamp.waitFor(t, "[cc:r:?:?]")
}

// TestLampFormsWithoutScript: a lamp card's forms work without the script:
// its own colour reaches that lamp only, a rename, Follow all lamps,
// Forget once it is offline; the page lists the lamp with what it shows.
func TestLampFormsWithoutScript(t *testing.T) {
	e := newEnv(t)
	bedroom := e.namedLamp(t, "bedroom")
	post := func(v url.Values) {
		t.Helper()
		if res := e.form(t, "/ui/lamp", v); res.status != http.StatusSeeOther || res.header.Get("Location") != "/#lamps" {
			t.Fatalf("POST /ui/lamp %v: %d %s", v, res.status, res.body)
		}
	}
	post(url.Values{"lamp": {"bedroom"}, "mode": {"manual"}, "color": {"#00ff00"}, "brightness": {"50"}, "pulse": {"0"}})
	bedroom.waitFor(t, "[cc:2:0,128,0:0]")
	post(url.Values{"lamp": {"bedroom"}, "action": {"rename"}, "label": {"Bedroom shelf"}})
	page := e.call(t, http.MethodGet, "/", "").body
	for _, want := range []string{`data-lamp="bedroom"`, "Bedroom shelf", "Own colour #00ff00", `action="/ui/lamp"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	post(url.Values{"lamp": {"bedroom"}, "action": {"follow"}})
	bedroom.waitFor(t, e.store.Get().Packet)
	if l, err := e.lamps.Lamp("bedroom"); err != nil || !l.FollowsShared || l.Label != "Bedroom shelf" {
		t.Errorf("bedroom after the forms: %+v, %v", l, err)
	}
	// Forget: refused while the lamp is connected, done once it is not.
	if res := e.form(t, "/ui/lamp", url.Values{"lamp": {"bedroom"}, "action": {"forget"}}); res.status != http.StatusConflict || !strings.Contains(res.body, "connected") {
		t.Errorf("forgetting a connected lamp: %d, want 409 saying why", res.status)
	}
	bedroom.conn.Close()
	for range 200 {
		if l, err := e.lamps.Lamp("bedroom"); err == nil && !l.Online {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	post(url.Values{"lamp": {"bedroom"}, "action": {"forget"}})
	if _, err := e.lamps.Lamp("bedroom"); err == nil {
		t.Error("the forgotten lamp is still known")
	}
	if page := e.call(t, http.MethodGet, "/", "").body; strings.Contains(page, `data-lamp="bedroom"`) {
		t.Error("the page still has the forgotten lamp's card")
	}
	for _, v := range []url.Values{
		{"action": {"follow"}},
		{"lamp": {"attic"}, "action": {"follow"}},
		{"lamp": {"bedroom"}, "action": {"paint"}},
		{"lamp": {"bedroom"}, "brightness": {"lots"}},
	} {
		if res := e.form(t, "/ui/lamp", v); res.status < 400 {
			t.Errorf("POST /ui/lamp %v: %d, want an error", v, res.status)
		}
	}
}

// TestFindALampWithoutScript: with many lamps the lamps card offers a
// search; ?find= shows the cards and connections it finds, in any case, by
// name, id or the lamp's label, and says how many; with few lamps it is
// not offered; of a fleet the card shows the first lampsShown.
func TestFindALampWithoutScript(t *testing.T) {
	e := newEnv(t)
	tag := func(page, attr string) string {
		t.Helper()
		i := strings.Index(page, attr)
		if i < 0 {
			t.Fatalf("the page has no %s", attr)
		}
		start := strings.LastIndex(page[:i], "<")
		return page[start : i+strings.Index(page[i:], ">")+1]
	}
	hidden := func(tag string) bool { return strings.Contains(tag, " hidden") }
	kitchen := e.namedLamp(t, "kitchen")
	hall := e.namedLamp(t, "hall")
	if page := e.call(t, http.MethodGet, "/", "").body; !hidden(tag(page, `id="lamp-find-form"`)) {
		t.Error("two lamps: the search is offered")
	}
	for i := range 5 {
		e.lamps.Seen(device.LampSeen{Lamp: fmt.Sprintf("porch-%d", i), Addr: "127.0.0.1", Online: false, Time: time.Now()})
	}
	if _, err := e.lamps.SetLabel("kitchen", "Kitchen shelf"); err != nil {
		t.Fatal(err)
	}
	page := e.call(t, http.MethodGet, "/", "").body
	if hidden(tag(page, `id="lamp-find-form"`)) {
		t.Error("seven lamps: the search is not offered")
	}
	page = e.call(t, http.MethodGet, "/?find=SHELF", "").body
	for _, want := range []string{`data-lamp="kitchen"`, `data-id="` + kitchen.id + `"`, "1 of 7 lamps match “SHELF”.", `value="SHELF"`} {
		if !strings.Contains(page, want) {
			t.Errorf("?find=SHELF: the page lacks %q", want)
		}
	}
	for _, unwanted := range []string{`data-lamp="hall"`, `data-lamp="porch-3"`, `data-id="` + hall.id + `"`} {
		if strings.Contains(page, unwanted) {
			t.Errorf("?find=SHELF: the page has %q", unwanted)
		}
	}
	if page := e.call(t, http.MethodGet, "/?find=nothing-like-it", "").body; !strings.Contains(page, "No lamp matches “nothing-like-it”.") || hidden(tag(page, `id="lamp-cards-box"`)) {
		t.Error("a search that finds nothing does not say so, or hides the cards' box")
	}

	// A fleet: the first lampsShown cards, and the search finds the rest.
	for i := range lampsShown {
		e.lamps.Seen(device.LampSeen{Lamp: fmt.Sprintf("shed-%02d", i), Addr: "127.0.0.1", Online: false, Time: time.Now()})
	}
	total := lampsShown + 7
	cards := func(page string) int { return strings.Count(page, `<li class="lamp-card"`) - 1 } // less the script's template
	page = e.call(t, http.MethodGet, "/", "").body
	if n := cards(page); n != lampsShown {
		t.Errorf("%d lamps: %d cards, want %d", total, n, lampsShown)
	}
	if want := fmt.Sprintf("Showing %d of %d lamps: find one by name or id.", lampsShown, total); !strings.Contains(page, want) {
		t.Errorf("a fleet's page lacks %q", want)
	}
	page = e.call(t, http.MethodGet, "/?find=shed-4", "").body
	if n := cards(page); n != 10 || !strings.Contains(page, `data-lamp="shed-49"`) {
		t.Errorf("?find=shed-4: %d cards, want the 10 of shed-40 … shed-49", n)
	}
}
