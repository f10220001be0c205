package web

import (
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/cloudcloud/cloudcloud/internal/automation"
	"github.com/cloudcloud/cloudcloud/internal/state"
)

// API.md "Scenes": named set-ups of the lamps, applied with one tap.

func (s *Server) scenes() (ScenesService, error) {
	if s.deps.Scenes == nil {
		return nil, errorf(http.StatusNotFound, "scenes are not set up on this server")
	}
	return s.deps.Scenes, nil
}

func (s *Server) getScenes(c echo.Context) error {
	sc, err := s.scenes()
	if err != nil {
		return err
	}
	list := sc.List()
	if list == nil {
		list = []automation.Scene{}
	}
	return noStoreJSON(c, http.StatusOK, list)
}

// sceneBody is what PUT and POST /api/scenes take.
type sceneBody struct {
	ID          string
	Name        string
	FromCurrent bool
	Shared      json.RawMessage
	Lamps       map[string]json.RawMessage
}

func decodeScene(body []byte, withFromCurrent bool) (automation.Scene, bool, error) {
	var b sceneBody
	fields := []field{
		{"id", &b.ID, "1-32 of a-z, 0-9, _ and -"},
		{"name", &b.Name, "a name of 1-64 characters"},
		{"shared", &b.Shared, "null or a state like {\"mode\": \"manual\", \"color\": \"#8000ff\"}"},
		{"lamps", &b.Lamps, "an object of lamp ids to states, like {\"bedroom\": {\"mode\": \"off\"}}"},
	}
	if withFromCurrent {
		fields = append(fields, field{"from_current", &b.FromCurrent, "true or false"})
	}
	if err := decodeObject(body, fields); err != nil {
		return automation.Scene{}, false, err
	}
	sc := automation.Scene{ID: b.ID, Name: b.Name, Lamps: map[string]automation.Subset{}}
	if len(b.Shared) > 0 && string(b.Shared) != "null" {
		ch, err := decodeSubset("shared", b.Shared)
		if err != nil {
			return sc, false, err
		}
		sc.Shared = &ch
	}
	for id, raw := range b.Lamps {
		ch, err := decodeSubset("lamps."+id, raw)
		if err != nil {
			return sc, false, err
		}
		sc.Lamps[id] = ch
	}
	return sc, b.FromCurrent, nil
}

// decodeSubset reads a state subset as PUT /api/state takes it; errors
// say where in the body it is.
func decodeSubset(where string, raw json.RawMessage) (automation.Subset, error) {
	var ch state.Change
	if err := decodeObject(raw, stateFields(&ch)); err != nil {
		if he, ok := err.(*httpError); ok {
			return automation.Subset{}, errorf(he.status, "%s: %s", where, he.msg)
		}
		return automation.Subset{}, err
	}
	return automation.Subset{Change: ch}, nil
}

func (s *Server) putScene(c echo.Context) error {
	svc, err := s.scenes()
	if err != nil {
		return err
	}
	body, err := readJSONBody(c)
	if err != nil {
		return err
	}
	sc, _, err := decodeScene(body, false)
	if err != nil {
		return err
	}
	if sc.ID, err = pathID(c, sc.ID); err != nil {
		return err
	}
	if sc, err = svc.Put(sc); err != nil {
		return err
	}
	return noStoreJSON(c, http.StatusOK, sc)
}

func (s *Server) postScene(c echo.Context) error {
	svc, err := s.scenes()
	if err != nil {
		return err
	}
	body, err := readJSONBody(c)
	if err != nil {
		return err
	}
	sc, fromCurrent, err := decodeScene(body, true)
	if err != nil {
		return err
	}
	if sc.ID != "" {
		return errorf(http.StatusBadRequest, "POST makes the id from the name; to choose one, PUT /api/scenes/%s", sc.ID)
	}
	if fromCurrent && (sc.Shared != nil || len(sc.Lamps) > 0) {
		return errorf(http.StatusBadRequest, "from_current takes what the lamps show now; leave shared and lamps out, or from_current")
	}
	if sc, err = svc.Create(sc, fromCurrent); err != nil {
		return err
	}
	return noStoreJSON(c, http.StatusCreated, sc)
}

func (s *Server) deleteScene(c echo.Context) error {
	svc, err := s.scenes()
	if err != nil {
		return err
	}
	if err := svc.Delete(c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) applyScene(c echo.Context) error {
	svc, err := s.scenes()
	if err != nil {
		return err
	}
	if err := svc.Apply(c.Param("id")); err != nil {
		return err
	}
	var lamps any = []any{}
	if s.deps.LampList != nil {
		lamps = s.deps.LampList()
	}
	return noStoreJSON(c, http.StatusOK, map[string]any{"lamps": lamps})
}

// pathID is the id a PUT of a scene or schedule names in its path; one
// given in the body too must be the same.
func pathID(c echo.Context, bodyID string) (string, error) {
	id := c.Param("id")
	if bodyID != "" && bodyID != id {
		return "", errorf(http.StatusBadRequest, "id %q in the body differs from %q in the path; leave it out or make them equal", bodyID, id)
	}
	return id, nil
}
