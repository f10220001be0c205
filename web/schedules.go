package web

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/cloudcloud/cloudcloud/internal/automation"
)

// API.md "Schedules": times of day, sun events and one-off timers.

func (s *Server) schedules() (SchedulesService, error) {
	if s.deps.Schedules == nil {
		return nil, errorf(http.StatusNotFound, "schedules are not set up on this server")
	}
	return s.deps.Schedules, nil
}

func decodeSchedule(body []byte) (automation.Schedule, error) {
	var (
		sc      automation.Schedule
		enabled *bool
		do      json.RawMessage
		nextRun *time.Time // read-only: accepted so a GET answer can be PUT back, and ignored
	)
	if err := decodeObject(body, []field{
		{"id", &sc.ID, "1-32 of a-z, 0-9, _ and -"},
		{"name", &sc.Name, "a name of 1-64 characters"},
		{"enabled", &enabled, "true or false"},
		{"at", &sc.At, `a time like "06:30", "sunrise-30m" or "sunset+15m"`},
		{"in", &sc.In, `a duration like "30m"`},
		{"days", &sc.Days, `a list of days like ["mon", "tue"]`},
		{"lamps", &sc.Lamps, `a list of lamp ids like ["bedroom"]`},
		{"do", &do, `{"state": {...}} or {"scene": "<scene id>"}`},
		{"fade", &sc.Fade, `a duration like "30m"`},
		{"next_run", &nextRun, "a time (it is read-only and ignored)"},
	}); err != nil {
		return sc, err
	}
	sc.Enabled = enabled == nil || *enabled
	if len(do) == 0 || string(do) == "null" {
		return sc, errorf(http.StatusBadRequest, `do is required: {"state": {"mode": "off"}} or {"scene": "<scene id>"}`)
	}
	var state json.RawMessage
	if err := decodeObject(do, []field{
		{"state", &state, `a state like {"mode": "manual", "color": "#ffb36b"}`},
		{"scene", &sc.Do.Scene, "a scene id"},
	}); err != nil {
		if he, ok := err.(*httpError); ok {
			return sc, errorf(he.status, "do: %s", he.msg)
		}
		return sc, err
	}
	if len(state) > 0 && string(state) != "null" {
		ch, err := decodeSubset("do.state", state)
		if err != nil {
			return sc, err
		}
		sc.Do.State = &ch
	}
	return sc, nil
}

func (s *Server) getSchedules(c echo.Context) error {
	svc, err := s.schedules()
	if err != nil {
		return err
	}
	list := svc.List()
	if list == nil {
		list = []automation.Schedule{}
	}
	return noStoreJSON(c, http.StatusOK, list)
}

func (s *Server) getSchedule(c echo.Context) error {
	svc, err := s.schedules()
	if err != nil {
		return err
	}
	sc, err := svc.Get(c.Param("id"))
	if err != nil {
		return err
	}
	return noStoreJSON(c, http.StatusOK, sc)
}

func (s *Server) postSchedule(c echo.Context) error {
	svc, err := s.schedules()
	if err != nil {
		return err
	}
	body, err := readJSONBody(c)
	if err != nil {
		return err
	}
	sc, err := decodeSchedule(body)
	if err != nil {
		return err
	}
	if sc, err = svc.Create(sc); err != nil {
		return err
	}
	return noStoreJSON(c, http.StatusCreated, sc)
}

func (s *Server) putSchedule(c echo.Context) error {
	svc, err := s.schedules()
	if err != nil {
		return err
	}
	body, err := readJSONBody(c)
	if err != nil {
		return err
	}
	sc, err := decodeSchedule(body)
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

func (s *Server) deleteSchedule(c echo.Context) error {
	svc, err := s.schedules()
	if err != nil {
		return err
	}
	if err := svc.Delete(c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
