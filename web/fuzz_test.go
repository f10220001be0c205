package web

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/favorites"
	"github.com/cloudcloud/cloudcloud/internal/invalid"
	"github.com/cloudcloud/cloudcloud/internal/state"

	"github.com/cloudcloud/cloudcloud/internal/firmware/firmwaretest"
)

// Every parser of client input has a fuzz target: it must never panic, and
// every refusal must be an error a person can act on (a 4xx with a sentence).

func checkClientError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var he *httpError
	var ve *invalid.Error
	switch {
	case errors.As(err, &he):
		if he.status < 400 || he.status > 499 || he.msg == "" {
			t.Fatalf("refusal %d %q", he.status, he.msg)
		}
	case errors.As(err, &ve):
		if ve.Field == "" || ve.Message == "" {
			t.Fatalf("validation error without field or message: %+v", ve)
		}
	default:
		t.Fatalf("refusal of an unexpected type %T: %v", err, err)
	}
}

func FuzzDecodeChange(f *testing.F) {
	for _, s := range []string{
		`{"mode": "manual", "color": "#ff41ae", "pulse": 3}`,
		`{"weather_override": {"code": 4, "intensity": 7.5}}`,
		`{"weather_override": null}`, `{"color": "rgb(1,2,3)"}`, `{"colour": 1}`,
		`[]`, `null`, `{"pulse": 1e400}`, `{"mode": "off"} x`, "", `{"a":`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ch, err := decodeChange(body)
		checkClientError(t, err)
		if err == nil && ch.Empty() {
			t.Fatal("an empty change was accepted")
		}
	})
}

func FuzzDecodeFavorites(f *testing.F) {
	for _, s := range []string{`{"colors": ["#ffffff", "1,2,3"]}`, `{"colors": []}`, `{"colors": [1]}`, `{"colors": null}`, `{}`, `{"colors": [], "revision": 3}`, `{"colors": [], "revision": -1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		colors, _, err := decodeFavorites(body)
		if err != nil {
			var he *httpError
			if !errors.As(err, &he) && !strings.Contains(err.Error(), ": ") {
				t.Fatalf("unhelpful error %v", err)
			}
			return
		}
		if len(colors) > 16 {
			t.Fatalf("%d colours accepted", len(colors))
		}
	})
}

func FuzzCommandBody(f *testing.F) {
	for _, s := range []string{`{"command": "debug", "on": true, "devices": ["d-1"]}`, `{"command": "reset"}`, `{"devices": [null]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req commandRequest
		err := decodeObject(body, []field{
			{"command", &req.Command, "a command"},
			{"on", &req.On, "true or false"},
			{"devices", &req.Devices, "a list"},
		})
		checkClientError(t, err)
	})
}

func FuzzChangeFromForm(f *testing.F) {
	for _, s := range []string{"mode=manual&color=%23ff0000&pulse=3", "override=4&intensity=2.5", "override=live", "pulse=x", "color=", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		values, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		_, err = changeFromForm(values)
		checkClientError(t, err)
	})
}

func FuzzSessionCookie(f *testing.F) {
	a := newAuthenticator("admin", "pw", []byte("0123456789abcdef0123456789abcdef"), time.Hour)
	now := time.Unix(1_800_000_000, 0)
	valid := a.encode(a.newSession(now))
	f.Add(valid)
	f.Add("v1." + strings.Repeat("a", 32) + ".9999999999.xxxx")
	f.Add("")
	f.Add("v1....")
	f.Fuzz(func(t *testing.T, value string) {
		s, ok := a.decode(value, now)
		if !ok {
			return
		}
		// Only values we signed decode: re-encoding gives the same bytes.
		if a.encode(s) != value {
			t.Fatalf("accepted a cookie we did not sign: %q", value)
		}
	})
}

func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/", "/?log=a", "//evil", "https://x", "/\\x", "javascript:x", "/login"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := safeNext(next)
		u, err := url.Parse(got)
		if err != nil || u.Host != "" || u.Scheme != "" || !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") {
			t.Fatalf("safeNext(%q) = %q leaves the site", next, got)
		}
		// And the browser agrees: resolved against our origin it stays here.
		base, _ := url.Parse("https://lamps.example/")
		if r := base.ResolveReference(u); r.Host != "lamps.example" {
			t.Fatalf("safeNext(%q) = %q resolves to %s", next, got, r)
		}
	})
}

// fuzzFirmwareServer is a web server with a real firmware store, built for
// a fuzz target (newEnv needs a *testing.T).
func fuzzFirmwareServer(f *testing.F) *Server {
	dir := f.TempDir()
	bus := events.NewBus()
	records := bucket(f, dir)
	st, err := state.Open(records, bus, quiet)
	if err != nil {
		f.Fatal(err)
	}
	favs, err := favorites.Open(records, bus, quiet)
	if err != nil {
		f.Fatal(err)
	}
	gw, err := device.New(device.Options{Secret: lampSecret, Bus: bus, Logger: quiet}, st.Get().DisplayPacket())
	if err != nil {
		f.Fatal(err)
	}
	fw := openFirmware(f, dir, bus)
	s, err := New(Options{Username: testUser, Password: testPassword, SessionKey: make([]byte, 32), Sessions: records, Logger: quiet, FirmwareMaxSize: 64 << 10},
		Deps{State: st, Devices: gw, Favorites: favs, Events: bus, Firmware: fw})
	if err != nil {
		f.Fatal(err)
	}
	return s
}

// FuzzFirmwareUpload sends arbitrary multipart bodies to POST
// /api/firmware: never a panic, never a 5xx, always a JSON sentence.
func FuzzFirmwareUpload(f *testing.F) {
	s := fuzzFirmwareServer(f)
	seed := func(parts ...formPart) {
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		_ = w.SetBoundary("fuzzboundary")
		for _, p := range parts {
			pw, _ := w.CreateFormFile(p.name, p.filename)
			pw.Write(p.data)
		}
		w.Close()
		f.Add(buf.Bytes())
	}
	seed(formPart{name: "firmware", filename: "a.bin", data: firmwaretest.Build(firmwaretest.Image{})})
	seed(formPart{name: "allow_project_change", data: []byte("1")}, formPart{name: "binfile", filename: "b.bin", data: firmwaretest.Build(firmwaretest.Image{Project: "x"})})
	seed(formPart{name: "firmware", filename: "t.txt", data: []byte("hello")})
	seed(formPart{name: "csrf", data: []byte("x")}, formPart{name: "other", data: []byte("y")})
	f.Add([]byte("--fuzzboundary\r\n\r\n--fuzzboundary--"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/api/firmware", bytes.NewReader(body))
		req.Header.Set("Content-Type", "multipart/form-data; boundary=fuzzboundary")
		req.SetBasicAuth(testUser, testPassword)
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		if rec.Code != http.StatusOK {
			var v map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || v["error"] == "" {
				t.Fatalf("refusal %d is not a JSON sentence: %s", rec.Code, rec.Body)
			}
		}
	})
}

// FuzzFlash: only messages this server signed are shown.
func FuzzFlash(f *testing.F) {
	s := &Server{auth: newAuthenticator("admin", "pw", make([]byte, 32), time.Hour)}
	f.Add("b2sAaGVsbG8.AAAA")
	f.Add("")
	f.Add(".")
	f.Fuzz(func(t *testing.T, value string) {
		fl, ok := s.decodeFlash(value)
		if !ok {
			return
		}
		payload := string(fl.Kind) + "\x00" + fl.Message
		want := base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + base64.RawURLEncoding.EncodeToString(s.auth.mac("flash", payload))
		if value != want {
			t.Fatalf("accepted a flash cookie we did not sign: %q", value)
		}
	})
}

func FuzzParseInclude(f *testing.F) {
	for _, q := range []string{"include=offline", "include=", "include=all", "include=offline&include=offline", "include=%ff", "include", ""} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, query string) {
		// What the handler sees: echo, like url.URL.Query, keeps the pairs
		// it could parse and drops the rest.
		values, _ := url.ParseQuery(query)
		offline, err := parseInclude(values["include"])
		checkClientError(t, err)
		if err == nil && offline != (len(values["include"]) > 0) {
			t.Fatalf("%q: offline %v without an error", query, offline)
		}
	})
}

// noDuplicateKeys walks any input without panicking, and never refuses
// JSON that has each key once (encoding/json writes maps that way).
func FuzzNoDuplicateKeys(f *testing.F) {
	for _, s := range []string{`{"a":1,"a":2}`, `{"a":{"b":[{"c":1,"c":2}]}}`, `[{"a":1},{"a":1}]`, `{"a":`, `]]}}`, `{"a":[1,{"b":2}],"b":3}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_ = noDuplicateKeys(body)
		var v any
		if json.Unmarshal(body, &v) != nil {
			return
		}
		unique, _ := json.Marshal(v)
		if err := noDuplicateKeys(unique); err != nil {
			t.Errorf("refused %s, which has each key once: %v", unique, err)
		}
	})
}

func FuzzDecodeFavoriteColor(f *testing.F) {
	for _, s := range []string{`{"color": "#ff41ae"}`, `{"color": "1,2,3"}`, `{"color": null}`, `{"color": 5}`, `{}`, `{"colors": []}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_, err := decodeFavoriteColor(body)
		if err != nil {
			var he *httpError
			if !errors.As(err, &he) && !strings.Contains(err.Error(), ": ") {
				t.Fatalf("unhelpful error %v", err)
			}
		}
	})
}

// FuzzDecodeSchedule: any body is a schedule, or a 400 that says why (the
// rules between members are automation's, tested there).
func FuzzDecodeSchedule(f *testing.F) {
	for _, s := range []string{
		`{"name": "Wake up", "at": "06:30", "days": ["mon"], "do": {"state": {"mode": "manual", "color": "#ffb36b"}}, "fade": "30m"}`,
		`{"name": "Sleep", "in": "30m", "do": {"scene": "night"}}`, `{"do": null}`, `{"do": {"state": null}}`,
		`{"do": {"state": {}, "scene": "x"}}`, `{"enabled": "yes"}`, `{"next_run": "2026-01-01T00:00:00Z", "do": {"scene": "a"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_, err := decodeSchedule(body)
		checkClientError(t, err)
	})
}

// FuzzDecodeScene: any body is a scene, or a 400 that says why.
func FuzzDecodeScene(f *testing.F) {
	for _, s := range []string{
		`{"name": "Movie night", "shared": {"mode": "manual", "color": "#8000ff"}, "lamps": {"bedroom": {"mode": "off"}}}`,
		`{"name": "Now", "from_current": true}`, `{"lamps": {"a": null}}`, `{"shared": []}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_, _, err := decodeScene(body, true)
		checkClientError(t, err)
	})
}
