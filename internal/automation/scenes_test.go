package automation

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/invalid"
	"github.com/cloudcloud/cloudcloud/internal/state"
)

func scene(t *testing.T, js string) Scene {
	t.Helper()
	var sc Scene
	if err := json.Unmarshal([]byte(js), &sc); err != nil {
		t.Fatal(err)
	}
	return sc
}

func TestSceneSavedAppliedAndKept(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, dir, time.Date(2026, 11, 30, 20, 0, 0, 0, berlin(t)))
	sc, err := e.scenes.Put(scene(t, `{"id": "movie-night", "name": "Movie night",
		"shared": {"mode": "manual", "color": "#8000ff", "pulse": 2}, "lamps": {"bedroom": {"mode": "off"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.scenes.Apply(sc.ID); err != nil {
		t.Fatal(err)
	}
	// The shared state first, then the bedroom's own.
	if w := e.lamps.Writes(); len(w) != 2 || w[0] != "shared [cc:2:128,0,255:2]" || w[1] != "bedroom [cc:0:?:?]" {
		t.Errorf("writes %q", w)
	}
	// Kept: a new start has it, and its JSON has only what it sets.
	e2 := newEnv(t, dir, time.Date(2026, 11, 30, 20, 0, 0, 0, berlin(t)))
	got, err := e2.scenes.Get("movie-night")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(got)
	if want := `{"id":"movie-night","name":"Movie night","shared":{"color":"#8000ff","mode":"manual","pulse":2},"lamps":{"bedroom":{"mode":"off"}}}`; string(b) != want {
		t.Errorf("kept as %s\nwant %s", b, want)
	}
	if err := e2.scenes.Delete("movie-night"); err != nil {
		t.Fatal(err)
	}
	var unknown *UnknownSceneError
	if err := e2.scenes.Apply("movie-night"); !errors.As(err, &unknown) {
		t.Errorf("applying a deleted scene: %v, want UnknownSceneError", err)
	}
}

func TestSceneFromCurrent(t *testing.T) {
	e := newEnv(t, "", time.Date(2026, 11, 30, 20, 0, 0, 0, berlin(t)))
	manual, off := state.ModeManual, state.ModeOff
	c := must(t, "#123456")
	if _, err := e.lamps.ApplyShared(state.Change{Mode: &manual, Color: &c}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.lamps.ApplyLamp("kitchen", state.Change{Mode: &off}); err != nil {
		t.Fatal(err)
	}
	sc, err := e.scenes.Create(Scene{Name: "Now"}, true)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(sc)
	if want := `{"id":"now","name":"Now","shared":{"mode":"manual","color":"#123456","brightness":100,"pulse":0,"weather_override":null},"lamps":{"kitchen":{"mode":"off","color":"#123456","brightness":100,"pulse":0,"weather_override":null}}}`; string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	again, err := e.scenes.Create(Scene{Name: "Now"}, true)
	if err != nil || again.ID != "now-2" {
		t.Errorf("a second scene of the same name got id %q, %v; want now-2", again.ID, err)
	}
}

func TestSceneRefusesBadInput(t *testing.T) {
	e := newEnv(t, "", time.Date(2026, 11, 30, 20, 0, 0, 0, berlin(t)))
	for _, tt := range []struct{ js, field, says string }{
		{`{"id": "Movie Night", "name": "x", "shared": {"mode": "off"}}`, "id", "a-z"},
		{`{"id": "m", "name": "", "shared": {"mode": "off"}}`, "name", "1-64"},
		{`{"id": "m", "name": "x"}`, "shared", "at least one"},
		{`{"id": "m", "name": "x", "shared": {"mode": "disco"}}`, "shared.mode", "not a mode"},
		{`{"id": "m", "name": "x", "lamps": {"garage": {"mode": "off"}}}`, "lamps.garage", `no lamp "garage"`},
		{`{"id": "m", "name": "x", "lamps": {"bedroom": {}}}`, "lamps.bedroom", "empty"},
	} {
		_, err := e.scenes.Put(scene(t, tt.js))
		var ie *invalid.Error
		if !errors.As(err, &ie) || ie.Field != tt.field || !strings.Contains(ie.Message, tt.says) {
			t.Errorf("%s: got %v, want %s: …%s…", tt.js, err, tt.field, tt.says)
		}
	}
	if l := e.scenes.List(); len(l) != 0 {
		t.Errorf("refused scenes were kept: %+v", l)
	}
}
