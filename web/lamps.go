package web

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/cloudcloud/cloudcloud/internal/lamps"
)

// The lamp routes of API.md "Lamps". A lamp id in the path is taken as it
// is: the registry answers 404 naming an id it does not know.

func (s *Server) lampService() (LampService, error) {
	if s.deps.Lamps == nil {
		return nil, errorf(http.StatusNotFound, "lamps are not kept by this server")
	}
	return s.deps.Lamps, nil
}

func (s *Server) getLamps(c echo.Context) error {
	ls, err := s.lampService()
	if err != nil {
		return err
	}
	list := ls.Lamps()
	if list == nil {
		list = []lamps.Lamp{}
	}
	return noStoreJSON(c, http.StatusOK, list)
}

func (s *Server) getLamp(c echo.Context) error {
	ls, err := s.lampService()
	if err != nil {
		return err
	}
	l, err := ls.Lamp(c.Param("id"))
	if err != nil {
		return err
	}
	return noStoreJSON(c, http.StatusOK, l)
}

func (s *Server) patchLamp(c echo.Context) error {
	ls, err := s.lampService()
	if err != nil {
		return err
	}
	body, err := readJSONBody(c)
	if err != nil {
		return err
	}
	var label *string
	if err := decodeObject(body, []field{{"label", &label, `the name people see, 1-64 characters, like "Bedroom"`}}); err != nil {
		return err
	}
	if label == nil {
		return errorf(http.StatusBadRequest, `nothing to change: send {"label": "Bedroom"}`)
	}
	l, err := ls.SetLabel(c.Param("id"), *label)
	if err != nil {
		return err
	}
	return noStoreJSON(c, http.StatusOK, l)
}

func (s *Server) deleteLamp(c echo.Context) error {
	ls, err := s.lampService()
	if err != nil {
		return err
	}
	if err := ls.Forget(c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) getLampState(c echo.Context) error {
	ls, err := s.lampService()
	if err != nil {
		return err
	}
	st, err := ls.StateOf(c.Param("id"))
	if err != nil {
		return err
	}
	return noStoreJSON(c, http.StatusOK, st)
}

func (s *Server) putLampState(c echo.Context) error {
	ls, err := s.lampService()
	if err != nil {
		return err
	}
	body, err := readJSONBody(c)
	if err != nil {
		return err
	}
	ch, err := decodeChange(body)
	if err != nil {
		return err
	}
	st, err := ls.SetState(c.Param("id"), ch)
	if err != nil {
		return err
	}
	return noStoreJSON(c, http.StatusOK, st)
}

// followShared drops a lamp's own state: it shows the shared one again.
// It answers the lamp object.
func (s *Server) followShared(c echo.Context) error {
	ls, err := s.lampService()
	if err != nil {
		return err
	}
	l, err := ls.Follow(c.Param("id"))
	if err != nil {
		return err
	}
	return noStoreJSON(c, http.StatusOK, l)
}

// lampTargets checks the lamps of POST /api/commands: each must be known.
func (s *Server) lampTargets(ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	ls, err := s.lampService()
	if err != nil {
		return err
	}
	for i, id := range ids {
		if strings.TrimSpace(id) == "" {
			return errorf(http.StatusBadRequest, "lamps[%d] is empty; give a lamp id as GET /api/lamps lists them", i)
		}
	}
	if unknown := ls.Unknown(ids); len(unknown) > 0 {
		return &lamps.UnknownError{ID: unknown[0]}
	}
	return nil
}
