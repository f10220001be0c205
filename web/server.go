// Package web is cloudcloud's web port: the phone-first UI (templ pages and a
// small hand-written script), the JSON API of docs/api.md, the
// Server-Sent Events stream that keeps every open page live, login, and
// /healthz and /metrics.
//
// The package defines the small interfaces it consumes (StateService,
// DeviceService, ...), so tests pass real objects or small fakes, and
// package server wires in the real ones.
package web

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/automation"
	"github.com/cloudcloud/cloudcloud/internal/backoff"
	"github.com/cloudcloud/cloudcloud/internal/cluster"
	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/favorites"
	"github.com/cloudcloud/cloudcloud/internal/firmware"
	"github.com/cloudcloud/cloudcloud/internal/lamps"
	"github.com/cloudcloud/cloudcloud/internal/metrics"
	"github.com/cloudcloud/cloudcloud/internal/mqtt"
	"github.com/cloudcloud/cloudcloud/internal/realip"
	"github.com/cloudcloud/cloudcloud/internal/rollout"
	"github.com/cloudcloud/cloudcloud/internal/sessions"
	"github.com/cloudcloud/cloudcloud/internal/state"
	"github.com/cloudcloud/cloudcloud/internal/storage"
	"github.com/cloudcloud/cloudcloud/protocol"
	"github.com/cloudcloud/cloudcloud/weather"
)

// StateService is the display state (state.Store).
type StateService interface {
	Get() state.State
	Apply(state.Change) (state.State, error)
}

// LampService is the lamp registry (lamps.Registry): every lamp ever seen,
// each with its own state.
type LampService interface {
	Lamps() []lamps.Lamp
	Lamp(id string) (lamps.Lamp, error)
	Unknown(ids []string) []string
	SetLabel(id, label string) (lamps.Lamp, error)
	Forget(id string) error
	StateOf(id string) (state.State, error)
	SetState(id string, c state.Change) (state.State, error)
	Follow(id string) (lamps.Lamp, error)
}

// DeviceService is the lamp gateway (device.Gateway).
type DeviceService interface {
	Devices() []device.Info
	// Offline lists lamps that left and have not come back, most recently
	// gone first, each with phase "offline", when and why.
	Offline() []device.Info
	Command(p protocol.Packet, ids []string) ([]string, error)
	SetDebug(on bool, ids []string) ([]string, error)
	Logs(device string, limit int) []device.LogLine
}

// WeatherService is the weather poller (weather.Poller).
type WeatherService interface {
	Report() weather.Report
	Refresh()
}

// ClusterService is this node's part in a cluster (cluster.Cluster).
type ClusterService interface {
	Status() cluster.Status
}

// MQTTService is the MQTT bridge (mqtt.Bridge).
type MQTTService interface {
	Status() mqtt.Status
}

// FirmwareService keeps the image lamps download (firmware.Store).
type FirmwareService interface {
	Save(r io.Reader, opt firmware.SaveOptions) (firmware.Info, error)
	Current() (firmware.Info, bool)
	Previous() (firmware.Info, bool)
	Rollback() (firmware.Info, error)
}

// FavoritesService keeps the favourite colours (favorites.Store), which
// announces its own changes on the bus.
type FavoritesService interface {
	Get() favorites.List
	Set(colors []protocol.RGB, ifRevision *uint64) (favorites.List, error)
	Add(protocol.RGB) (favorites.List, error)
	Remove(protocol.RGB) (favorites.List, error)
}

// ScenesService keeps the scenes (automation.Scenes).
type ScenesService interface {
	List() []automation.Scene
	Put(automation.Scene) (automation.Scene, error)
	Create(sc automation.Scene, fromCurrent bool) (automation.Scene, error)
	Delete(id string) error
	Apply(id string) error
}

// SchedulesService keeps and runs the schedules (automation.Scheduler).
type SchedulesService interface {
	List() []automation.Schedule
	Get(id string) (automation.Schedule, error)
	Create(automation.Schedule) (automation.Schedule, error)
	Put(automation.Schedule) (automation.Schedule, error)
	Delete(id string) error
}

// RolloutService follows lamps through firmware updates (rollout.Tracker).
type RolloutService interface {
	Updates() []rollout.Update
}

// EventSource is the event bus (events.Bus); the SSE stream subscribes to
// it. Every part publishes its own news there: the web port only listens.
type EventSource interface {
	Subscribe(buffer int, types ...events.Type) *events.Subscription
	SubscribeCoalesced(key func(events.Event) string, types ...events.Type) *events.Coalesced
}

// Options configures the web port.
type Options struct {
	Username, Password string
	SessionKey         []byte        // at least 32 bytes, kept in the data dir by the caller
	SessionTTL         time.Duration // how long a login lasts; 0: DefaultSessionTTL
	Proxies            realip.Resolver
	DataDir            string         // storage.dir, named when the disk fails
	Sessions           storage.Bucket // where the browser logins are kept
	Logger             *slog.Logger
	Registry           *prometheus.Registry // served on /metrics; the HTTP metrics are registered on it
	Version            string
	// FirmwareHandler, when set, serves GET /firmware.bin; it checks logins
	// itself (firmware.Access.Guard), since lamps log in with their secret,
	// so the UI login is not asked for first. Without it the route answers
	// 404.
	FirmwareHandler http.Handler
	// FirmwareMaxSize is the largest accepted upload in bytes
	// (firmware.max_size); 0 means firmware.DefaultMaxSize.
	FirmwareMaxSize int64
	// FirmwareChip, when set, is the only chip uploads may be built for
	// (firmware.chip).
	FirmwareChip string
}

// Deps are the services the web port shows and drives.
type Deps struct {
	// State is the shared state; with a lamp registry, the registry, so
	// that a shared change replaces each lamp's own state.
	State     StateService
	Lamps     LampService // may be nil: the lamp routes then answer 404
	Devices   DeviceService
	Favorites FavoritesService
	Weather   WeatherService // may be nil: the UI then says weather is not running
	Events    EventSource
	// Firmware may be nil: the firmware panel and routes are then absent
	// (the routes say firmware updates are not set up).
	Firmware FirmwareService
	// Rollout may be nil: the panel then lists no lamp updates.
	Rollout RolloutService
	// Scenes and Schedules may be nil: their routes then say they are not
	// set up.
	Scenes    ScenesService
	Schedules SchedulesService
	// LampList, when set, is every lamp as GET /api/lamps lists them: the
	// answer of applying a scene. Without it that answer lists none.
	LampList func() any
	// MQTT may be nil: MQTT is off (mqtt.url unset) and the page says nothing of it.
	MQTT MQTTService
	// Cluster may be nil: a server of its own (cluster.nats_url unset).
	Cluster ClusterService
}

// Server is the web port. Create it with New and serve Handler.
type Server struct {
	opt     Options
	deps    Deps
	log     *slog.Logger
	echo    *echo.Echo
	auth    *authenticator
	limiter *backoff.PerAddress // slows down password guessing: early attempts get 429 with Retry-After, no goroutine sleeps
	// sessions are the browser logins; a cookie counts only while its
	// session is here.
	sessions *sessions.Store
	assets   *assetSet
	httpMet  *metrics.HTTP
	metrics  http.Handler

	heartbeat time.Duration // SSE devices snapshot interval; a field so tests can shorten it
	now       func() time.Time
}

// DefaultSessionTTL is how long a login lasts unless web.session_ttl says
// otherwise.
const DefaultSessionTTL = 30 * 24 * time.Hour

// minSessionKey is the shortest session key accepted: 256 bits, the HMAC's
// own strength.
const minSessionKey = 32

// New checks the options and builds the server.
func New(opt Options, deps Deps) (*Server, error) {
	switch {
	case opt.Username == "" || opt.Password == "":
		return nil, errors.New("web: a username and a password are required (web.username, web.password)")
	case len(opt.SessionKey) < minSessionKey:
		return nil, fmt.Errorf("web: the session key has %d bytes; it needs at least %d random bytes", len(opt.SessionKey), minSessionKey)
	case deps.State == nil || deps.Devices == nil || deps.Favorites == nil || deps.Events == nil:
		return nil, errors.New("web: the state, device, favourites and event services are required")
	case opt.Sessions == nil:
		return nil, errors.New("web: a place to keep the browser logins is required (Options.Sessions)")
	case opt.FirmwareMaxSize < 0:
		return nil, fmt.Errorf("web: the firmware size limit is %d bytes; it must be positive (firmware.max_size)", opt.FirmwareMaxSize)
	}
	if opt.FirmwareChip != "" {
		chip, err := firmware.NormalizeChip(opt.FirmwareChip)
		if err != nil {
			return nil, fmt.Errorf("web: firmware.chip: %w", err)
		}
		opt.FirmwareChip = chip
	}
	if opt.FirmwareMaxSize == 0 {
		opt.FirmwareMaxSize = firmware.DefaultMaxSize
	}
	if opt.SessionTTL <= 0 {
		opt.SessionTTL = DefaultSessionTTL
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Version == "" {
		opt.Version = "dev"
	}
	auth := newAuthenticator(opt.Username, opt.Password, opt.SessionKey, opt.SessionTTL)
	sess, err := sessions.Open(opt.Sessions, auth.fingerprint(), time.Now(), opt.Logger)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	assets, err := loadAssets()
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	s := &Server{
		opt:       opt,
		deps:      deps,
		log:       opt.Logger,
		auth:      auth,
		sessions:  sess,
		assets:    assets,
		heartbeat: 15 * time.Second,
		now:       time.Now,
	}
	// Wrong passwords: 1 s, 2 s, 4 s … up to 5 minutes between attempts.
	s.limiter = backoff.New(time.Second, 5*time.Minute, func() time.Time { return s.now() })
	if err := s.setupMetrics(); err != nil {
		return nil, err
	}
	s.echo = s.routes()
	return s, nil
}

// setupMetrics registers the HTTP metrics on the registry (or a private one),
// reusing them when a second server shares the registry.
func (s *Server) setupMetrics() error {
	reg := s.opt.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s.httpMet = metrics.NewHTTP()
	if err := reg.Register(s.httpMet); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return fmt.Errorf("web: register HTTP metrics: %w", err)
		}
		existing, ok := are.ExistingCollector.(*metrics.HTTP)
		if !ok {
			return fmt.Errorf("web: register HTTP metrics: %w", err)
		}
		s.httpMet = existing
	}
	s.metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelError)})
	return nil
}

// Handler is the whole web port.
func (s *Server) Handler() http.Handler { return s.echo }

// publicRoutes skip requireLogin: health and metrics for monitoring, the
// login page itself, what a browser fetches without credentials (assets,
// the manifest and icons), and the firmware, whose handler checks logins.
var publicRoutes = map[string]bool{
	"/healthz":              true,
	"/metrics":              true,
	"/login":                true,
	"/static/:name":         true,
	"/manifest.webmanifest": true,
	"/favicon.ico":          true,
	"/firmware.bin":         true,
	"/sw.js":                true,
	offlinePath:             true,
}

func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.renderError
	e.Logger.SetOutput(discard{})

	e.Use(s.observe, s.securityHeaders, s.compress(), s.requireLogin)

	e.GET("/healthz", s.healthz)
	e.HEAD("/healthz", s.healthz)
	e.GET("/metrics", echo.WrapHandler(s.metrics))
	e.GET("/login", s.loginPage)
	e.POST("/login", s.loginSubmit)
	e.POST("/logout", s.logout)
	e.GET("/static/:name", s.static)
	e.GET("/manifest.webmanifest", s.manifest)
	e.GET("/favicon.ico", s.favicon)
	e.GET("/sw.js", s.serviceWorker)
	e.GET(offlinePath, s.offline)

	e.GET("/", s.indexPage)
	e.GET("/logs.txt", s.logsText)
	e.POST("/ui/state", s.formState)
	e.POST("/ui/command", s.formCommand)
	e.POST("/ui/lamp", s.formLamp)
	e.POST("/ui/favorites", s.formFavorites)
	e.POST("/ui/weather/refresh", s.formWeatherRefresh)
	e.POST("/ui/sessions", s.formSessions)
	e.POST("/ui/firmware", s.formFirmware)
	e.POST("/ui/firmware/rollback", s.formFirmwareRollback)
	e.GET("/firmware.bin", s.firmware)
	e.HEAD("/firmware.bin", s.firmware)

	api := e.Group("/api")
	api.GET("/state", s.getState)
	api.PUT("/state", s.putState)
	api.GET("/lamps", s.getLamps)
	api.GET("/lamps/:id", s.getLamp)
	api.PATCH("/lamps/:id", s.patchLamp)
	api.DELETE("/lamps/:id", s.deleteLamp)
	api.GET("/lamps/:id/state", s.getLampState)
	api.PUT("/lamps/:id/state", s.putLampState)
	api.DELETE("/lamps/:id/state", s.followShared)
	api.GET("/devices", s.getDevices)
	api.GET("/cluster", s.getCluster)
	api.POST("/commands", s.postCommand)
	api.GET("/logs", s.getLogs)
	api.GET("/events", s.events)
	api.GET("/weather", s.getWeather)
	api.POST("/weather/refresh", s.postWeatherRefresh)
	api.GET("/favorites", s.getFavorites)
	api.PUT("/favorites", s.putFavorites)
	api.POST("/favorites", s.postFavorite)
	api.DELETE("/favorites/:color", s.deleteFavorite)
	api.GET("/sessions", s.getSessions)
	api.DELETE("/sessions", s.deleteSessions)
	api.DELETE("/sessions/:id", s.deleteSession)
	api.GET("/firmware", s.getFirmware)
	api.POST("/firmware", s.postFirmware)
	api.POST("/firmware/rollback", s.postFirmwareRollback)
	api.GET("/scenes", s.getScenes)
	api.POST("/scenes", s.postScene)
	api.PUT("/scenes/:id", s.putScene)
	api.DELETE("/scenes/:id", s.deleteScene)
	api.POST("/scenes/:id/apply", s.applyScene)
	api.GET("/schedules", s.getSchedules)
	api.POST("/schedules", s.postSchedule)
	api.GET("/schedules/:id", s.getSchedule)
	api.PUT("/schedules/:id", s.putSchedule)
	api.DELETE("/schedules/:id", s.deleteSchedule)
	return e
}

// discard silences echo's own logger: every request is logged once, by
// observe, through slog.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func (s *Server) healthz(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.String(http.StatusOK, "ok")
}

func (s *Server) firmware(c echo.Context) error {
	if s.opt.FirmwareHandler == nil {
		return errorf(http.StatusNotFound, "no firmware image is served here yet")
	}
	s.opt.FirmwareHandler.ServeHTTP(c.Response(), c.Request())
	return nil
}
