package web

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/state"
)

func TestWeatherPreviewEnds(t *testing.T) {
	e := newEnv(t)
	e.srv.previewFor = 200 * time.Millisecond
	s := e.openEvents(t)
	if ev := s.next(t, "preview"); ev.data != `{"ends_at":null}` {
		t.Fatalf("first preview event %s, want no preview", ev.data)
	}
	if res := e.call(t, http.MethodPut, "/api/state", `{"mode": "weather", "weather_override": {"code": 5, "intensity": 6}}`); res.status != 200 {
		t.Fatalf("PUT: %d %s", res.status, res.body)
	}
	if ev := s.next(t, "preview"); !strings.Contains(ev.data, `"ends_at":"20`) {
		t.Errorf("preview event %s has no end", ev.data)
	}
	// It ends by itself: the lamps go back to the live weather.
	if ev := s.next(t, "preview"); ev.data != `{"ends_at":null}` {
		t.Errorf("preview event %s after the end", ev.data)
	}
	waitState(t, e, func(st state.State) bool { return st.WeatherOverride == nil && st.Mode == "weather" })

	// A preview left on disk by a stopped server ends too.
	if res := e.call(t, http.MethodPut, "/api/state", `{"weather_override": {"code": 7, "intensity": 4}}`); res.status != 200 {
		t.Fatal(res.body)
	}
	e.srv.previewFor = time.Hour // this server keeps it; a restarted one must not
	e.srv.notePreview(e.store.Get())
	t.Cleanup(func() { e.srv.notePreview(state.State{}) })
	srv, err := New(Options{Username: testUser, Password: testPassword, SessionKey: []byte("0123456789abcdef0123456789abcdef"),
		Sessions: e.data, Logger: quiet, Version: "test"}, Deps{State: e.store, Devices: e.gw, Favorites: e.favs, Events: e.bus})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.preview.mu.Lock(); srv.preview.timer.Stop(); srv.preview.mu.Unlock() })
	if got := srv.previewStatus(); got.EndsAt == nil || got.EndsAt.Sub(time.Now()) > defaultPreviewFor {
		t.Errorf("a restarted server gives the preview on disk no end within %s: %+v", defaultPreviewFor, got)
	}
}
