package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/cluster"
	"github.com/cloudcloud/cloudcloud/internal/favorites"
	"github.com/cloudcloud/cloudcloud/internal/invalid"
	"github.com/cloudcloud/cloudcloud/internal/state"
	"github.com/cloudcloud/cloudcloud/protocol"
	"github.com/cloudcloud/cloudcloud/weather"
)

// The JSON API of docs/api.md. Handlers only decode, call a service
// and encode; every error goes back to renderError.

func noStoreJSON(c echo.Context, status int, v any) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(status, v)
}

func (s *Server) getState(c echo.Context) error {
	return noStoreJSON(c, http.StatusOK, s.deps.State.Get())
}

// stateFields are the members PUT /api/state accepts.
func stateFields(ch *state.Change) []field {
	return []field{
		{"mode", &ch.Mode, `"off", "weather" or "manual"`},
		{"color", &ch.Color, `a string like "#ff41ae", "rgb(255,65,174)" or "255,65,174"`},
		{"brightness", &ch.Brightness, "a whole number 0-100 (percent; 100 = full)"},
		{"pulse", &ch.Pulse, "a whole number 0-9 (0 = steady)"},
		{"weather_override", &ch.WeatherOverride, `null or {"code": 1-9, "intensity": 0-10}`},
	}
}

// decodeChange reads a PUT /api/state body into a state.Change.
func decodeChange(body []byte) (state.Change, error) {
	var ch state.Change
	if err := decodeObject(body, stateFields(&ch)); err != nil {
		return ch, err
	}
	if ch.Empty() {
		return ch, errorf(http.StatusBadRequest, "nothing to change: send any of mode, color, brightness, pulse, weather_override")
	}
	return ch, nil
}

func (s *Server) putState(c echo.Context) error {
	body, err := readJSONBody(c)
	if err != nil {
		return err
	}
	ch, err := decodeChange(body)
	if err != nil {
		return err
	}
	st, err := s.deps.State.Apply(ch)
	if err != nil {
		return err
	}
	return noStoreJSON(c, http.StatusOK, st)
}

// getDevices is GET /api/devices: the connected lamps, oldest first, as
// API.md says. With ?include=offline the lamps that left (and have not come
// back) follow them, most recently gone first, each with phase "offline",
// disconnected_at and reason, so a script sees what the Lamps panel shows.
// include takes no other value: a typo is a 400, not a silently shorter list.
func (s *Server) getDevices(c echo.Context) error {
	withOffline, err := parseInclude(c.QueryParams()["include"])
	if err != nil {
		return err
	}
	if withOffline {
		return noStoreJSON(c, http.StatusOK, s.lamps())
	}
	devs := s.deps.Devices.Devices()
	if devs == nil {
		devs = []device.Info{}
	}
	return noStoreJSON(c, http.StatusOK, devs)
}

// parseInclude reads the include query parameter of GET /api/devices: absent,
// or "offline" (repeating it changes nothing).
func parseInclude(values []string) (offline bool, err error) {
	for _, v := range values {
		if v != "offline" {
			return false, errorf(http.StatusBadRequest, "include %q is not known; the only value is include=offline (connected lamps followed by those that left)", v)
		}
	}
	return len(values) > 0, nil
}

// lamps is every lamp a person should see: the connected ones, oldest
// first, then those that left, most recently gone first. The page, its boot
// data, the event stream's snapshot and ?include=offline share it, so they
// cannot disagree.
func (s *Server) lamps() []device.Info { return s.withOffline(s.deps.Devices.Devices()) }

// withOffline appends the lamps that left to live, the connected ones.
func (s *Server) withOffline(live []device.Info) []device.Info {
	gone := s.deps.Devices.Offline()
	out := make([]device.Info, 0, len(live)+len(gone))
	out = append(out, live...)
	return append(out, gone...)
}

// commandRequest is the body of POST /api/commands.
type commandRequest struct {
	Command string   `json:"command"`
	On      *bool    `json:"on"`
	Devices []string `json:"devices"`
	Lamps   []string `json:"lamps"`
}

// commandResult is its answer.
type commandResult struct {
	Command string   `json:"command"`
	SentTo  []string `json:"sent_to"`
}

func (s *Server) postCommand(c echo.Context) error {
	body, err := readJSONBody(c)
	if err != nil {
		return err
	}
	var req commandRequest
	if err := decodeObject(body, []field{
		{"command", &req.Command, `"reset", "update" or "debug"`},
		{"on", &req.On, "true or false"},
		{"devices", &req.Devices, `a list of lamp ids or names, like ["d-7f3a"]`},
		{"lamps", &req.Lamps, `a list of lamp ids, like ["bedroom"]`},
	}); err != nil {
		return err
	}
	if err := s.lampTargets(req.Lamps); err != nil {
		return err
	}
	for i, id := range req.Devices {
		if strings.TrimSpace(id) == "" {
			return errorf(http.StatusBadRequest, "devices[%d] is empty; give a lamp id or name, or leave devices out for every lamp", i)
		}
	}
	// A lamp id reaches every connection of that lamp (the gateway knows
	// connections by their lamp's id too).
	res, err := s.runCommand(req.Command, req.On, append(req.Devices, req.Lamps...))
	if err != nil {
		return err
	}
	return noStoreJSON(c, http.StatusOK, res)
}

// runCommand validates and sends a lamp command; forms and JSON share it.
func (s *Server) runCommand(command string, on *bool, ids []string) (commandResult, error) {
	var (
		sent []string
		err  error
	)
	switch command {
	case "reset":
		sent, err = s.deps.Devices.Command(protocol.Reset(), ids)
	case "update":
		if s.deps.Firmware != nil {
			// A lamp told to update with nothing to download fails the
			// download and restarts for nothing.
			if _, ok := s.deps.Firmware.Current(); !ok {
				return commandResult{}, errorf(http.StatusConflict, "no firmware image has been uploaded yet: upload the application .bin (firmware panel, or POST /api/firmware) before telling lamps to update")
			}
		}
		sent, err = s.deps.Devices.Command(protocol.Update(), ids)
	case "debug":
		if on == nil {
			return commandResult{}, errorf(http.StatusBadRequest, `on is required for debug: true switches debug logging on, false off`)
		}
		sent, err = s.deps.Devices.SetDebug(*on, ids)
	case "":
		return commandResult{}, errorf(http.StatusBadRequest, "command is required: reset, update or debug")
	default:
		return commandResult{}, errorf(http.StatusBadRequest, "command %q is not known; use reset, update or debug", command)
	}
	if err != nil {
		return commandResult{}, err
	}
	if sent == nil {
		sent = []string{}
	}
	s.log.Info("lamp command sent", "command", command, "to", sent)
	return commandResult{Command: command, SentTo: sent}, nil
}

// maxLogLimit bounds one /api/logs answer; the download (logsText) takes
// up to maxLogDownload lines. The log itself is bounded in bytes
// (device.log_total_bytes), so neither answer can grow without bound.
const (
	maxLogLimit    = 1000
	maxLogDownload = 100000
)

// parseLimit reads ?limit=; empty means defaultLimit.
func parseLimit(v string, defaultLimit, maxLimit int) (int, error) {
	if v == "" {
		return defaultLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxLimit {
		return 0, errorf(http.StatusBadRequest, "limit %q is out of range: use a whole number 1-%d", v, maxLimit)
	}
	return n, nil
}

// getCluster is GET /api/cluster: the nodes of the cluster, or
// {"nodes": []} on a server of its own.
func (s *Server) getCluster(c echo.Context) error {
	st := cluster.Status{Nodes: []cluster.Node{}}
	if s.deps.Cluster != nil {
		st = s.deps.Cluster.Status()
	}
	return noStoreJSON(c, http.StatusOK, st)
}

func (s *Server) getLogs(c echo.Context) error {
	limit, err := parseLimit(c.QueryParam("limit"), 200, maxLogLimit)
	if err != nil {
		return err
	}
	lines := s.deps.Devices.Logs(strings.TrimSpace(c.QueryParam("device")), limit)
	if lines == nil {
		lines = []device.LogLine{}
	}
	return noStoreJSON(c, http.StatusOK, lines)
}

func (s *Server) getWeather(c echo.Context) error {
	if s.deps.Weather == nil {
		return errorf(http.StatusServiceUnavailable, "the weather service is not running")
	}
	return noStoreJSON(c, http.StatusOK, s.deps.Weather.Report())
}

// postWeatherRefresh asks for a fetch now; the result arrives as a weather
// event (the poller spaces fetches at least 10 s apart).
// errNoWeatherKey refuses a fetch that cannot happen: the poller has no key.
var errNoWeatherKey = errorf(http.StatusConflict, "There is no OpenWeatherMap key to fetch the weather with. Set weather.api_key (or CLOUDCLOUD_WEATHER_API_KEY) and restart.")

func (s *Server) postWeatherRefresh(c echo.Context) error {
	if s.deps.Weather == nil {
		return errorf(http.StatusServiceUnavailable, "the weather service is not running")
	}
	if s.deps.Weather.Report().Status == weather.StatusNoAPIKey {
		return errNoWeatherKey
	}
	s.deps.Weather.Refresh()
	return noStoreJSON(c, http.StatusAccepted, s.deps.Weather.Report())
}

// GET /api/favorites answers a favorites.List: {"colors": ["#ff41ae", …],
// "revision": N}.
func (s *Server) getFavorites(c echo.Context) error {
	return noStoreJSON(c, http.StatusOK, s.deps.Favorites.Get())
}

// decodeFavorites reads a PUT /api/favorites body; each colour is parsed on
// its own so an error names its position. revision, when given, is the
// revision of the list the colours were chosen from.
func decodeFavorites(body []byte) (colors []protocol.RGB, revision *uint64, err error) {
	var raw []string
	if err := decodeObject(body, []field{
		{"colors", &raw, `a list of at most 16 colours like ["#ff41ae", "255,147,41"]`},
		{"revision", &revision, "the revision of the list you changed, as GET /api/favorites gave it"},
	}); err != nil {
		return nil, nil, err
	}
	if raw == nil {
		return nil, nil, errorf(http.StatusBadRequest, `colors is required: a list like ["#ff41ae"] (an empty list clears the favourites)`)
	}
	if len(raw) > favorites.Max {
		return nil, nil, &invalid.Error{Field: "colors", Message: fmt.Sprintf("%d colours is too many; keep at most %d", len(raw), favorites.Max)}
	}
	out := make([]protocol.RGB, 0, len(raw))
	for i, v := range raw {
		col, err := protocol.ParseColor(v)
		if err != nil {
			return nil, nil, &invalid.Error{Field: fmt.Sprintf("colors[%d]", i), Message: err.Error()}
		}
		out = append(out, col)
	}
	return out, revision, nil
}

func (s *Server) putFavorites(c echo.Context) error {
	body, err := readJSONBody(c)
	if err != nil {
		return err
	}
	colors, revision, err := decodeFavorites(body)
	if err != nil {
		return err
	}
	list, err := s.deps.Favorites.Set(colors, revision)
	if err != nil {
		return err
	}
	return noStoreJSON(c, http.StatusOK, list)
}

// decodeFavoriteColor reads a POST /api/favorites body: {"color": "#ff41ae"}.
func decodeFavoriteColor(body []byte) (protocol.RGB, error) {
	var raw *string
	if err := decodeObject(body, []field{{"color", &raw, `one colour like "#ff41ae" or "255,147,41"`}}); err != nil {
		return protocol.RGB{}, err
	}
	if raw == nil {
		return protocol.RGB{}, errorf(http.StatusBadRequest, `color is required: the colour to add, like {"color": "#ff41ae"}`)
	}
	col, err := protocol.ParseColor(*raw)
	if err != nil {
		return protocol.RGB{}, invalid.Field("color", "%v", err)
	}
	return col, nil
}

// postFavorite adds one colour to the end of the list. Unlike PUT, which
// replaces the whole list, two phones adding at once both keep theirs,
// and a phone with a stale list cannot drop the others' colours.
func (s *Server) postFavorite(c echo.Context) error {
	body, err := readJSONBody(c)
	if err != nil {
		return err
	}
	col, err := decodeFavoriteColor(body)
	if err != nil {
		return err
	}
	list, err := s.deps.Favorites.Add(col)
	if err != nil {
		return err
	}
	return noStoreJSON(c, http.StatusOK, list)
}

// deleteFavorite removes one colour: DELETE /api/favorites/ff41ae (the
// "#" may be there, escaped as %23). A colour not in the list is no error.
func (s *Server) deleteFavorite(c echo.Context) error {
	raw, err := url.PathUnescape(c.Param("color"))
	if err != nil {
		return errorf(http.StatusBadRequest, "the colour in the address is not valid: %v", err)
	}
	if !strings.HasPrefix(raw, "#") && !strings.Contains(raw, ",") {
		raw = "#" + raw
	}
	col, err := protocol.ParseColor(raw)
	if err != nil {
		return invalid.Field("color", "%v", err)
	}
	list, err := s.deps.Favorites.Remove(col)
	if err != nil {
		return err
	}
	return noStoreJSON(c, http.StatusOK, list)
}
