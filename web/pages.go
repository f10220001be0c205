package web

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/cluster"
	"github.com/cloudcloud/cloudcloud/internal/favorites"
	"github.com/cloudcloud/cloudcloud/internal/invalid"
	"github.com/cloudcloud/cloudcloud/internal/lamps"
	"github.com/cloudcloud/cloudcloud/internal/mqtt"
	"github.com/cloudcloud/cloudcloud/internal/realip"
	"github.com/cloudcloud/cloudcloud/internal/sessions"
	"github.com/cloudcloud/cloudcloud/internal/state"
	"github.com/cloudcloud/cloudcloud/protocol"
	"github.com/cloudcloud/cloudcloud/weather"
	"github.com/cloudcloud/cloudcloud/web/templates"
)

// pageLogLines is how many debug lines the page starts with.
const pageLogLines = 200

// renderPage writes a templ component as an HTML page that is never cached:
// it holds live state and the CSRF token.
func (s *Server) renderPage(c echo.Context, status int, comp templ.Component) error {
	var buf bytes.Buffer
	if err := comp.Render(c.Request().Context(), &buf); err != nil {
		return fmt.Errorf("render page: %w", err)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.HTMLBlob(status, buf.Bytes())
}

// pageData is what every page needs; the CSRF token only when logged in
// with the cookie.
func (s *Server) pageData(c echo.Context, title string) templates.Page {
	p := templates.Page{Title: title, Assets: s.assets.templ(), Version: s.opt.Version}
	if a, ok := c.Get(ctxAuth).(authInfo); ok && a.viaCookie {
		p.CSRF = s.auth.csrfToken(a.sess)
	}
	return p
}

// weatherChoices are the animations a person can preview, in code order.
var weatherChoices = func() []templates.WeatherChoice {
	out := make([]templates.WeatherChoice, 0, 9)
	for code := protocol.WeatherSunrise; code <= protocol.WeatherWindy; code++ {
		out = append(out, templates.WeatherChoice{Code: int(code), Name: capitalize(code.String())})
	}
	return out
}()

// bootData is the page's data for the script, in the API's own shapes so
// the script handles the first render and live events with the same code.
type bootData struct {
	State      state.State      `json:"state"`
	Devices    []device.Info    `json:"devices"`
	Favorites  favorites.List   `json:"favorites"`
	Weather    any              `json:"weather"`
	LogFilter  string           `json:"log_filter"`
	ServerTime time.Time        `json:"server_time"`
	Logs       []device.LogLine `json:"-"`
	// Firmware is GET /api/firmware's object; absent on a server without
	// firmware updates.
	Firmware *firmwareStatus `json:"firmware,omitempty"`
	// Words is the server's vocabulary the script reads events with, so
	// that it is written once, by the packages that own it.
	Words words `json:"words"`
	// MQTT is the broker connection; absent while MQTT is off.
	MQTT *mqtt.Status `json:"mqtt,omitempty"`
	// Lamps is GET /api/lamps; absent on a server that keeps no lamps.
	Lamps []lamps.Lamp `json:"lamps,omitempty"`
}

// words are the names the script needs: the weather codes' names (index =
// code), and the lamp phases and device events it acts on.
type words struct {
	Weather      []string                `json:"weather"`
	Phase        map[string]device.Phase `json:"phase"`
	Event        map[string]device.Event `json:"event"`
	LampsShown   int                     `json:"lamps_shown"`
	LampFindFrom int                     `json:"lamp_find_from"`
}

var pageWords = func() words {
	w := words{
		Weather: []string{""},
		Phase:   map[string]device.Phase{"offline": device.PhaseOffline},
		Event: map[string]device.Event{"connected": device.EventConnected, "authenticated": device.EventAuthenticated,
			"disconnected": device.EventDisconnected},
		LampsShown:   lampsShown,
		LampFindFrom: lampFindFrom,
	}
	for code := protocol.WeatherSunrise; code <= protocol.WeatherWindy; code++ {
		w.Weather = append(w.Weather, code.String())
	}
	return w
}()

func (s *Server) indexPage(c echo.Context) error {
	now := s.now()
	st := s.deps.State.Get()
	devs := s.deps.Devices.Devices()
	filter := strings.TrimSpace(c.QueryParam("log"))
	logs := s.deps.Devices.Logs(filter, pageLogLines)
	favs := s.deps.Favorites.Get()

	d := templates.Index{
		Page:           s.pageData(c, "cloudcloud"),
		Sessions:       s.sessionViews(c, now),
		PreviewEnds:    previewClockText(st.PreviewEndsAt),
		State:          stateView(st),
		FavoritesFull:  len(favs.Colors) >= favorites.Max,
		LogFilter:      filter,
		LogDownload:    logDownloadURL(filter),
		Weather:        weatherView(s.deps.Weather, now),
		WeatherChoices: weatherChoices,
		Automation:     s.deps.Scenes != nil && s.deps.Schedules != nil,
	}
	for _, f := range favs.Colors {
		d.Favorites = append(d.Favorites, f.Hex())
	}
	rows := s.withOffline(devs)
	haveImage := s.haveFirmware()
	d.Find = strings.TrimSpace(c.QueryParam("find"))
	var registry []lamps.Lamp
	if s.deps.Lamps != nil {
		registry = s.deps.Lamps.Lamps()
	}
	fillLampsCard(&d, rows, registry, now, haveImage)
	d.LampCount = len(devs)
	for _, l := range logs {
		d.Logs = append(d.Logs, logView(l))
	}
	d.LogLamps = logLamps(devs, logs, filter)
	boot := bootData{State: st, Devices: rows, Favorites: favs, LogFilter: filter, ServerTime: now.UTC(), Words: pageWords}
	if s.deps.Weather != nil {
		boot.Weather = s.deps.Weather.Report()
	}
	if s.deps.Firmware != nil {
		fw := s.firmwareStatus()
		boot.Firmware = &fw
		panel := firmwareView(fw, devs, now, s.opt.FirmwareMaxSize, s.opt.FirmwareChip)
		panel.CSRF = d.CSRF
		if f, ok := s.takeFlash(c); ok {
			panel.Flash, panel.FlashKind = f.Message, string(f.Kind)
		}
		d.FirmwarePanel = templates.FirmwareCard(panel)
	}
	if s.deps.Lamps != nil {
		boot.Lamps = registry
	}
	if s.deps.MQTT != nil {
		st := s.deps.MQTT.Status()
		boot.MQTT = &st
		d.MQTT = mqttText(st)
	}
	if s.deps.Cluster != nil {
		d.Cluster = clusterText(s.deps.Cluster.Status())
	}
	d.Boot = boot
	return s.renderPage(c, http.StatusOK, templates.IndexPage(d))
}

// clusterText is the cluster status line of the lamps card; app.js words
// it the same way when a cluster event arrives.
func clusterText(st cluster.Status) string {
	parts := make([]string, len(st.Nodes))
	for i, n := range st.Nodes {
		lamps := "lamps"
		if n.Lamps == 1 {
			lamps = "lamp"
		}
		self := ""
		if n.Self {
			self = " (this one)"
		}
		parts[i] = fmt.Sprintf("%s%s %d %s", n.Name, self, n.Lamps, lamps)
	}
	text := fmt.Sprintf("Cluster of %d nodes: %s.", len(st.Nodes), strings.Join(parts, ", "))
	if st.NATS != "connected" {
		text += " NATS is " + st.NATS + ": changes wait until it is back."
	}
	return text
}

// mqttText is the MQTT status line of the lamps card; app.js words it
// the same way when an mqtt event arrives.
func mqttText(st mqtt.Status) string {
	if st.Connected {
		return "MQTT: connected to " + st.Broker + "; Home Assistant finds the lamps by itself."
	}
	return "MQTT: not connected to " + st.Broker + " (" + st.Error + "); retrying."
}

// logLamps lists the lamps the log can be filtered by: connected ones and
// any that left lines behind. A named lamp is filtered by name, which its
// log keeps across reconnects.
func logLamps(devs []device.Info, logs []device.LogLine, filter string) []templates.LampOption {
	var out []templates.LampOption
	seen := map[string]bool{}
	add := func(value, label string) {
		if value == "" || seen[value] {
			return
		}
		seen[value] = true
		out = append(out, templates.LampOption{Value: value, Label: label})
	}
	// A lamp by its lamp id, which outlives its connections (app.js
	// updateLogLamps offers the same).
	for _, d := range devs {
		add(cmp.Or(d.LampID, d.ID), cmp.Or(d.Name, d.LampID, d.ID))
	}
	for _, l := range logs {
		add(cmp.Or(l.Lamp, l.Name, l.Device), cmp.Or(l.Name, l.Lamp, l.Device))
	}
	add(filter, filter)
	slices.SortFunc(out, func(a, b templates.LampOption) int { return strings.Compare(a.Label, b.Label) })
	return out
}

// safeNext keeps the post-login redirect on this site: a path, never
// "//evil.example", "https://…" or "/\\evil.example" (browsers read a
// backslash as a slash and drop tabs and newlines, so those are refused too).
func safeNext(next string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	for i := 0; i < len(next); i++ {
		if next[i] < 0x20 || next[i] == 0x7f {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	if strings.HasPrefix(next, "/login") || strings.HasPrefix(next, "/logout") {
		return "/"
	}
	return next
}

func (s *Server) loginPage(c echo.Context) error {
	next := safeNext(c.QueryParam("next"))
	if _, ok := s.sessionFrom(c); ok {
		return c.Redirect(http.StatusSeeOther, next)
	}
	return s.renderPage(c, http.StatusOK, templates.LoginPage(templates.Login{Page: s.pageData(c, "Sign in · cloudcloud"), Next: next}))
}

func (s *Server) loginSubmit(c echo.Context) error {
	r := c.Request()
	r.Body = http.MaxBytesReader(c.Response(), r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		return errorf(http.StatusBadRequest, "the login form could not be read: %v", err)
	}
	user, pass := r.PostForm.Get("username"), r.PostForm.Get("password")
	next := safeNext(r.PostForm.Get("next"))
	page := templates.Login{Page: s.pageData(c, "Sign in · cloudcloud"), Next: next, User: user}
	ip := realip.IP(s.opt.Proxies.ClientAddr(r))
	if d := s.limiter.Wait(ip); d > 0 {
		secs := retryAfterSeconds(d)
		c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
		page.Error = fmt.Sprintf("Too many wrong passwords from your address. Try again in %d s.", secs)
		return s.renderPage(c, http.StatusTooManyRequests, templates.LoginPage(page))
	}
	if !s.auth.checkPassword(user, pass) {
		d := s.limiter.Fail(ip)
		s.log.Warn("wrong login password", "client", ip, "user", user, "next_attempt_in", d)
		page.Error = "Wrong user name or password."
		return s.renderPage(c, http.StatusUnauthorized, templates.LoginPage(page))
	}
	s.limiter.Succeed(ip)
	now := s.now()
	sess := s.auth.newSession(now)
	if _, err := s.sessions.Create(sess.id, sessions.Session{Expires: sess.expires, Client: describeClient(r.UserAgent()), Address: ip}, now); err != nil {
		s.log.Error("could not save a login", "err", err)
		page.Error = "Signing in failed: the server could not save the login. Its log says why."
		return s.renderPage(c, http.StatusInternalServerError, templates.LoginPage(page))
	}
	c.SetCookie(s.auth.cookie(sess, s.secure(r), now))
	s.log.Info("logged in", "client", ip, "user", user)
	return c.Redirect(http.StatusSeeOther, next)
}

// logout ends this browser's session on the server, so the cookie is
// worthless even if a copy of it survives.
func (s *Server) logout(c echo.Context) error {
	if a, ok := c.Get(ctxAuth).(authInfo); ok && a.viaCookie {
		if err := s.sessions.Delete(a.sess.ref); err != nil && !errors.Is(err, sessions.ErrNotFound) {
			return fmt.Errorf("sign out: %w", err)
		}
	}
	c.SetCookie(clearCookie(s.secure(c.Request())))
	return c.Redirect(http.StatusSeeOther, "/login")
}

// readForm parses a form post, at most 64 KiB of it.
func readForm(c echo.Context) (url.Values, error) {
	r := c.Request()
	r.Body = http.MaxBytesReader(c.Response(), r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		return nil, errorf(http.StatusBadRequest, "the form could not be read: %v", err)
	}
	return r.PostForm, nil
}

// changeFromForm turns the page's form fields into the same state.Change
// the JSON API decodes, so Store.Apply validates both alike. Fields:
// mode, color (any form API.md allows), pulse, override ("live" or a weather
// code) with intensity.
func changeFromForm(f url.Values) (state.Change, error) {
	var ch state.Change
	if v := strings.TrimSpace(f.Get("mode")); v != "" {
		m := state.Mode(v)
		ch.Mode = &m
	}
	if f.Has("color") {
		c, err := protocol.ParseColor(f.Get("color"))
		if err != nil {
			return ch, &invalid.Error{Field: "color", Message: err.Error()}
		}
		ch.Color = &c
	}
	if f.Has("brightness") {
		v := strings.TrimSpace(f.Get("brightness"))
		b, err := strconv.Atoi(v)
		if err != nil {
			return ch, &invalid.Error{Field: "brightness", Message: fmt.Sprintf("%q is not a whole number; use 0-100 (per cent)", v)}
		}
		ch.Brightness = &b
	}
	if f.Has("pulse") {
		v := strings.TrimSpace(f.Get("pulse"))
		p, err := strconv.Atoi(v)
		if err != nil {
			return ch, &invalid.Error{Field: "pulse", Message: fmt.Sprintf("%q is not a whole number; use 0-9 (0 = steady)", v)}
		}
		ch.Pulse = &p
	}
	switch v := strings.TrimSpace(f.Get("override")); v {
	case "":
	case "live":
		ch.WeatherOverride = state.OverrideChange{Set: true}
	default:
		code, err := strconv.Atoi(v)
		if err != nil {
			return ch, invalid.Field("weather_override.code", "%q is not a weather code; use 1-9", v)
		}
		intensity := 10.0
		if iv := strings.TrimSpace(f.Get("intensity")); iv != "" {
			intensity, err = strconv.ParseFloat(iv, 64)
			if err != nil {
				return ch, invalid.Field("weather_override.intensity", "%q is not a number; use 0-10", iv)
			}
		}
		// One slider (0-10) serves every code: bring its value into the
		// code's range, 1-9 for codes 3 and 5-9.
		if c := protocol.WeatherCode(code); code >= 0 && c.Valid() {
			lo, hi := protocol.IntensityRange(c)
			intensity = min(max(intensity, lo.Float()), hi.Float())
		}
		ch.WeatherOverride = state.OverrideChange{Set: true, Value: &state.Override{Code: code, Intensity: intensity}}
	}
	if ch.Empty() {
		return ch, errorf(http.StatusBadRequest, "nothing to change: the form sent none of mode, color, brightness, pulse, override")
	}
	return ch, nil
}

func (s *Server) formState(c echo.Context) error {
	f, err := readForm(c)
	if err != nil {
		return err
	}
	ch, err := changeFromForm(f)
	if err != nil {
		return err
	}
	if _, err := s.deps.State.Apply(ch); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/")
}

// formLamp is a lamp card's forms without the script: its state
// (the fields of /ui/state), action=rename with a label, action=follow.
func (s *Server) formLamp(c echo.Context) error {
	ls, err := s.lampService()
	if err != nil {
		return err
	}
	f, err := readForm(c)
	if err != nil {
		return err
	}
	id := strings.TrimSpace(f.Get("lamp"))
	if id == "" {
		return errorf(http.StatusBadRequest, "the form names no lamp: send lamp=<id> as GET /api/lamps lists them")
	}
	switch action := f.Get("action"); action {
	case "rename":
		_, err = ls.SetLabel(id, f.Get("label"))
	case "follow":
		_, err = ls.Follow(id)
	case "forget":
		err = ls.Forget(id)
	case "":
		var ch state.Change
		if ch, err = changeFromForm(f); err == nil {
			_, err = ls.SetState(id, ch)
		}
	default:
		err = errorf(http.StatusBadRequest, "action %q is not known; use rename, follow, forget, or none to change the lamp's state", action)
	}
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/#lamps")
}

func (s *Server) formCommand(c echo.Context) error {
	f, err := readForm(c)
	if err != nil {
		return err
	}
	var on *bool
	if v := f.Get("on"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errorf(http.StatusBadRequest, "on must be true or false, not %q", v)
		}
		on = &b
	}
	var ids []string
	for _, id := range f["device"] {
		if id = strings.TrimSpace(id); id != "" {
			ids = append(ids, id)
		}
	}
	cmd := f.Get("command")
	noImage := cmd == "update" && s.deps.Firmware != nil && !s.haveFirmware() // refused below, no question needed
	if (cmd == "reset" || cmd == "update") && !noImage && f.Get("confirmed") != "yes" {
		// The script asks with a second tap; without it, a page asks.
		return s.confirmCommand(c, f, cmd, ids)
	}
	if _, err := s.runCommand(cmd, on, ids); err != nil {
		return err
	}
	// The firmware panel's "Update all lamps" returns to the panel.
	if f.Get("back") == "firmware" {
		return c.Redirect(http.StatusSeeOther, "/#firmware")
	}
	return c.Redirect(http.StatusSeeOther, "/#lamps")
}

// confirmCommand asks "Reboot kitchen?" before a reboot or an update sent
// from a plain form.
func (s *Server) confirmCommand(c echo.Context, f url.Values, cmd string, ids []string) error {
	what := "every lamp"
	if len(ids) > 0 {
		names := make([]string, 0, len(ids))
		for _, id := range ids {
			names = append(names, s.lampName(id))
		}
		what = strings.Join(names, ", ")
	}
	d := templates.Confirm{Page: s.pageData(c, "Are you sure? · cloudcloud"), Action: "/ui/command", Cancel: "/#lamps"}
	if f.Get("back") == "firmware" {
		d.Cancel = "/#firmware"
	}
	for _, k := range []string{"command", "device", "back"} {
		for _, v := range f[k] {
			d.Fields = append(d.Fields, templates.Field{Name: k, Value: v})
		}
	}
	if cmd == "reset" {
		d.Question, d.Button = "Reboot "+what+"?", "Reboot"
		d.Detail = "The lamp restarts and is dark for a few seconds, then shows the current colour again."
	} else {
		d.Question, d.Button = "Update "+what+"?", "Update"
		d.Detail = "The lamp downloads the current firmware image, flashes it and restarts; that takes about a minute. Do not unplug it meanwhile."
	}
	return s.renderPage(c, http.StatusOK, templates.ConfirmPage(d))
}

// lampName is how a person knows a connected lamp: its name, else its id.
func (s *Server) lampName(id string) string {
	for _, d := range s.deps.Devices.Devices() {
		if d.ID == id && d.Name != "" {
			return d.Name
		}
	}
	return id
}

func (s *Server) formFavorites(c echo.Context) error {
	f, err := readForm(c)
	if err != nil {
		return err
	}
	col, err := protocol.ParseColor(f.Get("color"))
	if err != nil {
		return &invalid.Error{Field: "color", Message: err.Error()}
	}
	switch a := f.Get("action"); a {
	case "add":
		_, err = s.deps.Favorites.Add(col)
	case "remove":
		_, err = s.deps.Favorites.Remove(col)
	default:
		return errorf(http.StatusBadRequest, "action %q is not known; use add or remove", a)
	}
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/#colour")
}

func (s *Server) formWeatherRefresh(c echo.Context) error {
	if s.deps.Weather == nil {
		return errorf(http.StatusServiceUnavailable, "the weather service is not running")
	}
	if s.deps.Weather.Report().Status == weather.StatusNoAPIKey {
		return errNoWeatherKey
	}
	s.deps.Weather.Refresh()
	return c.Redirect(http.StatusSeeOther, "/#weather")
}

// logsText downloads the debug log as plain text, one line per entry.
func (s *Server) logsText(c echo.Context) error {
	filter := strings.TrimSpace(c.QueryParam("device"))
	limit, err := parseLimit(c.QueryParam("limit"), maxLogDownload, maxLogDownload)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, l := range s.deps.Devices.Logs(filter, limit) {
		label := l.Device
		if l.Name != "" {
			label = l.Name + " (" + l.Device + ")"
		}
		fmt.Fprintf(&b, "%s %s %s\n", l.Time.Format(time.RFC3339Nano), label, l.Message)
	}
	name := "cloudcloud-log.txt"
	if filter != "" {
		name = "cloudcloud-log-" + sanitizeFileName(filter) + ".txt"
	}
	h := c.Response().Header()
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	h.Set("Cache-Control", "no-store")
	return c.Blob(http.StatusOK, "text/plain; charset=utf-8", []byte(b.String()))
}

func sanitizeFileName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}
