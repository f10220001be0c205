// Package server assembles cloudcloud from its parts (display state, lamp
// gateway, weather poller, firmware store, web UI) and runs it until its
// context ends, then shuts down gracefully: lamps get a close frame with
// code 1001, state is on disk, and it all takes a few seconds at most.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/cloudcloud/cloudcloud/atomicfile"
	"github.com/cloudcloud/cloudcloud/config"
	"github.com/cloudcloud/cloudcloud/connlimit"
	"github.com/cloudcloud/cloudcloud/credentials"
	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/events"
	"github.com/cloudcloud/cloudcloud/firmware"
	"github.com/cloudcloud/cloudcloud/metrics"
	"github.com/cloudcloud/cloudcloud/realip"
	"github.com/cloudcloud/cloudcloud/rollout"
	"github.com/cloudcloud/cloudcloud/state"
	"github.com/cloudcloud/cloudcloud/weather"
	"github.com/cloudcloud/cloudcloud/web"
)

// ShutdownTimeout bounds a graceful shutdown.
const ShutdownTimeout = 5 * time.Second

// Addrs are the addresses the server listens on, once it does.
type Addrs struct {
	Web, Device string
}

// Options are what Run needs besides the configuration.
type Options struct {
	Version string
	Logger  *slog.Logger
	// Ready, if set, is called once both ports listen (tests use it to learn
	// the ports when the config says ":0").
	Ready func(Addrs)
}

// Run serves until ctx ends, then shuts down gracefully.
func Run(ctx context.Context, cfg config.Config, o Options) error {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	dir := cfg.Storage.Dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("storage.dir %q: %w", dir, err)
	}
	// A process killed in the middle of a write leaves its temporary file.
	removed, err := atomicfile.RemoveTemps(dir)
	if len(removed) > 0 {
		log.Info("removed temporary files of writes interrupted by a crash", "files", removed)
	}
	if err != nil {
		return fmt.Errorf("storage.dir %q: %w", dir, err)
	}
	creds, generated, err := credentials.Ensure(dir)
	if err != nil {
		return err
	}
	password, secret := cfg.Web.Password, cfg.Device.AuthSecret
	if password == "" {
		password = creds.WebPassword
		if generated.WebPassword {
			log.Warn("generated a UI password (kept in "+filepath.Join(dir, credentials.FileName)+"; set web.password to choose one)", "username", cfg.Web.Username, "password", password)
		} else {
			log.Info("UI password: the generated one in "+filepath.Join(dir, credentials.FileName), "username", cfg.Web.Username)
		}
	}
	if secret == "" {
		secret = creds.DeviceSecret
		if generated.DeviceSecret {
			log.Warn("generated the lamp secret (kept in "+filepath.Join(dir, credentials.FileName)+"; flash it into your lamps or set device.auth_secret)", "secret", secret)
		} else {
			log.Info("lamp secret: the generated one in " + filepath.Join(dir, credentials.FileName))
		}
	}

	bus := events.NewBus()
	store, err := state.Open(dir, bus, log)
	if err != nil {
		return err
	}
	proxies, err := realip.New(cfg.Web.TrustedProxies)
	if err != nil {
		return fmt.Errorf("web.trusted_proxies: %w", err)
	}
	registry := prometheus.NewRegistry()
	fanout := metrics.NewFanout()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), fanout, metrics.NewStorageCollector())
	named := make([]device.NamedSecret, len(cfg.Device.Secrets))
	for i, s := range cfg.Device.Secrets {
		named[i] = device.NamedSecret{Name: s.Name, Secret: s.Secret}
	}
	maxConns := cfg.Device.MaxConnections
	if maxConns == 0 {
		maxConns = connectionLimit(log)
	}
	gw, err := device.New(device.Options{
		Secret: secret, Named: named,
		HandshakeTimeout: cfg.Device.HandshakeTimeout.D(),
		PingInterval:     cfg.Device.PingInterval.D(),
		KeepaliveTimeout: cfg.Device.KeepaliveTimeout.D(),
		WriteTimeout:     cfg.Device.WriteTimeout.D(),
		MaxFrameSize:     int64(cfg.Device.MaxFrameSize),
		MaxConnections:   maxConns,
		SendQueue:        cfg.Device.SendQueue,
		LogLines:         cfg.Device.LogLines,
		LogBytes:         int(cfg.Device.LogBytes),
		LogTotalBytes:    int(cfg.Device.LogTotalBytes),
		AuthBackoff:      cfg.Device.AuthBackoff.D(),
		AuthBackoffMax:   cfg.Device.AuthBackoffMax.D(),
		MaxHandshakes:    cfg.Device.MaxHandshakes,
		Proxies:          proxies,
		StateDir:         dir,
		Bus:              bus,
		Logger:           log.With("part", "device"),
		OnFanout:         fanout.ObserveFanout,
	}, store.Get().DisplayPacket())
	if err != nil {
		return err
	}
	// Every display change reaches the gateway in order, straight from the
	// store's commit; see state.Store.Watch.
	store.Watch(func(s state.State) { _ = gw.SetDisplay(s.DisplayPacket()) })

	fw, err := firmware.OpenStore(filepath.Join(dir, "firmware"), log.With("part", "firmware"))
	if err != nil {
		return err
	}
	updates, err := rollout.Open(dir, bus, log.With("part", "rollout"), 5*time.Minute, func() string {
		info, _ := fw.Current()
		return info.Version
	})
	if err != nil {
		return err
	}
	// Lamps download through nginx too: progress is keyed by the real client.
	fwHandler := withClientAddr(proxies, fw.Handler(firmware.Hooks{Served: updates.Served}))

	poller, err := weather.NewPoller(weather.Options{
		APIKey: cfg.Weather.APIKey, CityID: cfg.Weather.CityID, City: cfg.Weather.City,
		Lat: cfg.Weather.Lat, Lon: cfg.Weather.Lon,
		Interval:      cfg.Weather.Interval.D(),
		SunTransition: cfg.Weather.SunTransition.D(),
		Timeout:       cfg.Weather.Timeout.D(),
		Endpoint:      cfg.Weather.Endpoint,
		WindBeaufort:  cfg.Weather.WindBeaufort,
		Logger:        log.With("part", "weather"),
		Publish:       func(r weather.Report) { applyWeather(store, bus, log, r) },
	})
	if err != nil {
		return fmt.Errorf("weather: %w", err)
	}
	applyWeather(store, bus, log, poller.Report())
	registry.MustRegister(metrics.NewDeviceCollector(gw.Stats()), metrics.NewWeatherCollector(poller.Report))

	ui, err := web.New(web.Options{
		Username: cfg.Web.Username, Password: password,
		SessionKey: creds.Key(), SessionTTL: cfg.Web.SessionTTL.D(),
		Proxies: proxies, DataDir: dir, Logger: log.With("part", "web"),
		Registry: registry, Version: o.Version, FirmwareHandler: fwHandler,
		FirmwareMaxSize: int64(cfg.Firmware.MaxSize), FirmwareChip: cfg.Firmware.Chip,
	}, web.Deps{State: store, Devices: gw, Weather: poller, Events: bus, Firmware: fw, Rollout: updates})
	if err != nil {
		return err
	}

	deviceMux := http.NewServeMux()
	deviceMux.Handle("/firmware.bin", fwHandler)
	deviceMux.Handle("/", gw)
	deviceSrv := newHTTPServer(deviceMux, log)

	// The base context ends with the server, so long-lived requests (the
	// SSE stream) return and Shutdown does not wait for them in vain.
	webCtx, stopWeb := context.WithCancel(context.Background())
	defer stopWeb()
	webSrv := newHTTPServer(ui.Handler(), log)
	webSrv.BaseContext = func(net.Listener) context.Context { return webCtx }

	webLn, err := net.Listen("tcp", cfg.Web.Listen)
	if err != nil {
		return fmt.Errorf("web.listen %s: %w", cfg.Web.Listen, err)
	}
	deviceLn, err := net.Listen("tcp", cfg.Device.Listen)
	if err != nil {
		webLn.Close()
		return fmt.Errorf("device.listen %s: %w", cfg.Device.Listen, err)
	}
	webMax := cfg.Web.MaxConnections
	if webMax == 0 {
		webMax = defaultWebConnections
	}
	webLn = connlimit.New(webLn, webMax, "the web port (web.max_connections)", "application/json",
		`{"error":"too many connections to the web port; try again in a moment or raise web.max_connections"}`, log)
	deviceLn = connlimit.New(deviceLn, maxConns, "the lamp port (device.max_connections)", "text/plain; charset=utf-8",
		"too many connections to the lamp port; raise device.max_connections\n", log)
	log.Info("cloudcloud is running", "version", o.Version,
		"ui", "http://"+displayAddr(webLn.Addr()), "lamps", "ws://"+displayAddr(deviceLn.Addr())+"/",
		"data", dir, "packet", store.Get().Packet)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	serve := func(name string, srv *http.Server, ln net.Listener) {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("%s server: %w", name, err)
			cancel()
		}
	}
	wg.Go(func() { serve("web", webSrv, webLn) })
	wg.Go(func() { serve("device", deviceSrv, deviceLn) })
	wg.Go(func() { poller.Run(runCtx) })
	wg.Go(func() { updates.Run(runCtx, bus) })
	if o.Ready != nil {
		o.Ready(Addrs{Web: webLn.Addr().String(), Device: deviceLn.Addr().String()})
	}

	<-runCtx.Done()
	log.Info("shutting down: closing lamp connections")
	sctx, scancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer scancel()
	stopWeb()
	var errs []error
	shutdownHTTP(deviceSrv, "lamp port", log)
	if err := gw.Shutdown(sctx); err != nil {
		errs = append(errs, err)
	}
	shutdownHTTP(webSrv, "web port", log)
	wg.Wait()
	close(errc)
	for err := range errc {
		errs = append(errs, err)
	}
	log.Info("stopped", "packet", store.Get().Packet)
	return errors.Join(errs...)
}

// httpLimits are the limits of both HTTP servers. A request has read for
// its headers and body and write for its answer; handlers that
// legitimately take longer (the event stream, firmware upload and
// download) push their own deadlines. A keep-alive connection may idle for
// idle. Larger headers than maxHeaderBytes get 431. A stopping server lets
// requests in flight finish for shutdownGrace, then closes them.
type httpLimits struct {
	readHeader, read, write, idle time.Duration
	maxHeaderBytes                int
	shutdownGrace                 time.Duration
}

// limits is a variable so that tests can shorten the timeouts.
var limits = httpLimits{
	readHeader:     10 * time.Second,
	read:           30 * time.Second,
	write:          60 * time.Second,
	idle:           60 * time.Second,
	maxHeaderBytes: 16 << 10,
	shutdownGrace:  2 * time.Second,
}

// defaultWebConnections is web.max_connections = 0: far more than the
// phones of a household, and within the descriptors connectionLimit keeps
// in reserve.
const defaultWebConnections = 100

// newHTTPServer is an http.Server for h with limits; errors of the
// server's own (bad requests, TLS noise) are logged at debug level.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: limits.readHeader,
		ReadTimeout:       limits.read,
		WriteTimeout:      limits.write,
		IdleTimeout:       limits.idle,
		MaxHeaderBytes:    limits.maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// shutdownHTTP stops srv: idle connections close at once, requests in
// flight get limits.shutdownGrace, then whatever is still open is closed. A
// client that never finishes its request must not turn a clean stop into
// an error.
func shutdownHTTP(srv *http.Server, what string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), limits.shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("closing "+what+" connections still busy at shutdown", "waited", limits.shutdownGrace, "err", err)
		_ = srv.Close()
	}
}

// withClientAddr puts the real client address (behind trusted proxies) in
// r.RemoteAddr for h.
func withClientAddr(proxies realip.Resolver, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r2 := r.Clone(r.Context())
		r2.RemoteAddr = proxies.ClientAddr(r)
		h.ServeHTTP(w, r2)
	})
}

// applyWeather records a weather report in the display state and tells the UI.
func applyWeather(store *state.Store, bus *events.Bus, log *slog.Logger, r weather.Report) {
	w := state.Weather{Code: int(r.Reading.Code), Intensity: r.Reading.Intensity, Description: r.Description, Source: r.Source}
	if _, err := store.SetWeather(w); err != nil {
		log.Error("could not record the weather", "err", err)
	}
	bus.Publish(events.Event{Type: events.TypeWeather, Data: r})
}

func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
