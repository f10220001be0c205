package web

import (
	"sync"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/state"
)

// defaultPreviewFor is how long a weather preview shows after its last
// change: long enough to look at the lamps, short enough that a preview
// somebody forgot does not stand in for the weather for days.
const defaultPreviewFor = time.Minute

// previewBody is the preview event's data: {"ends_at": "<RFC 3339>"}
// while one shows, {"ends_at": null} otherwise.
type previewBody struct {
	EndsAt *time.Time `json:"ends_at"`
}

// previewClock ends the weather preview previewFor after it was last set
// through the web port (or after a start that found one on disk).
type previewClock struct {
	mu    sync.Mutex
	timer *time.Timer
	ends  time.Time // zero: no preview
}

// applyState is every change of the display state made through the web
// port (the API and the forms): it applies the change and moves the end
// of a preview.
func (s *Server) applyState(ch state.Change) (state.State, error) {
	st, err := s.deps.State.Apply(ch)
	if err != nil {
		return st, err
	}
	s.notePreview(st)
	return st, nil
}

// notePreview starts, moves or stops the preview's end for the state st.
func (s *Server) notePreview(st state.State) {
	p := &s.preview
	p.mu.Lock()
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	if st.WeatherOverride == nil {
		was := !p.ends.IsZero()
		p.ends = time.Time{}
		p.mu.Unlock()
		if was {
			s.deps.Events.Publish(events.Event{Type: events.TypePreview, Data: previewBody{}})
		}
		return
	}
	p.ends = s.now().Add(s.previewFor).Truncate(time.Second)
	ends := p.ends
	p.timer = time.AfterFunc(s.previewFor, s.endPreview)
	p.mu.Unlock()
	s.deps.Events.Publish(events.Event{Type: events.TypePreview, Data: previewBody{EndsAt: &ends}})
}

// endPreview returns the lamps to the live weather, unless the preview was
// changed (and so given a new end) meanwhile.
func (s *Server) endPreview() {
	p := &s.preview
	p.mu.Lock()
	due := !p.ends.IsZero() && !s.now().Before(p.ends)
	p.mu.Unlock()
	if !due || s.deps.State.Get().WeatherOverride == nil {
		return
	}
	if _, err := s.applyState(state.Change{WeatherOverride: state.OverrideChange{Set: true}}); err != nil {
		s.log.Error("could not end the weather preview", "err", err)
		return
	}
	s.log.Info("the weather preview ended; the lamps show the live weather again")
}

// previewClockText is the preview's end for the page without script.
func previewClockText(p previewBody) string {
	if p.EndsAt == nil {
		return ""
	}
	return p.EndsAt.Local().Format("15:04:05")
}

// previewStatus is what the preview event and the page start with.
func (s *Server) previewStatus() previewBody {
	s.preview.mu.Lock()
	defer s.preview.mu.Unlock()
	if s.preview.ends.IsZero() {
		return previewBody{}
	}
	ends := s.preview.ends
	return previewBody{EndsAt: &ends}
}
