package web

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/state"
)

// TestWeatherPreviewSaysWhenItEnds: a preview set through the API answers
// with its end, a minute away, and the page says it to a person. (The end
// itself is the state store's: internal/state's TestPreviewEndsByItself.)
func TestWeatherPreviewSaysWhenItEnds(t *testing.T) {
	e := newEnv(t)
	res := e.call(t, http.MethodPut, "/api/state", `{"mode": "weather", "weather_override": {"code": 5, "intensity": 6}}`)
	if res.status != 200 {
		t.Fatalf("PUT: %d %s", res.status, res.body)
	}
	var st state.State
	if err := json.Unmarshal([]byte(res.body), &st); err != nil || st.PreviewEndsAt == nil {
		t.Fatalf("the answer says no end: %s (%v)", res.body, err)
	}
	if left := time.Until(*st.PreviewEndsAt); left <= 0 || left > state.PreviewFor {
		t.Errorf("the preview ends in %s, want within %s", left, state.PreviewFor)
	}
	cookie, _ := e.login(t)
	page := e.call(t, http.MethodGet, "/", "", withCookie(cookie))
	if want := "This preview ends by itself at " + previewClockText(st.PreviewEndsAt); !strings.Contains(page.body, want) {
		t.Errorf("the page does not say %q", want)
	}
	res = e.call(t, http.MethodPut, "/api/state", `{"weather_override": null}`)
	var live state.State
	if err := json.Unmarshal([]byte(res.body), &live); err != nil || live.PreviewEndsAt != nil {
		t.Errorf("back to the live weather, the state still has an end: %s", res.body)
	}
}
