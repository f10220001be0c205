// Package server is cloudcloud's composition root: New builds every part
// (display state, lamp gateway, weather poller, firmware store, web UI) and
// the two HTTP handlers from the configuration; Run listens, serves until its
// context ends, then shuts down gracefully: lamps get a close frame with
// code 1001, state is on disk, and it all takes a few seconds at most.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/atomicfile"
	"github.com/cloudcloud/cloudcloud/internal/automation"
	"github.com/cloudcloud/cloudcloud/internal/backoff"
	"github.com/cloudcloud/cloudcloud/internal/cluster"
	"github.com/cloudcloud/cloudcloud/internal/config"
	"github.com/cloudcloud/cloudcloud/internal/connlimit"
	"github.com/cloudcloud/cloudcloud/internal/credentials"
	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/favorites"
	"github.com/cloudcloud/cloudcloud/internal/firmware"
	"github.com/cloudcloud/cloudcloud/internal/lamps"
	"github.com/cloudcloud/cloudcloud/internal/metrics"
	"github.com/cloudcloud/cloudcloud/internal/mqtt"
	"github.com/cloudcloud/cloudcloud/internal/realip"
	"github.com/cloudcloud/cloudcloud/internal/rollout"
	"github.com/cloudcloud/cloudcloud/internal/state"
	"github.com/cloudcloud/cloudcloud/internal/storage"
	"github.com/cloudcloud/cloudcloud/internal/storage/jetstore"
	"github.com/cloudcloud/cloudcloud/weather"
	"github.com/cloudcloud/cloudcloud/web"
)

// ShutdownTimeout bounds a graceful shutdown.
const ShutdownTimeout = 5 * time.Second

// Addrs are the addresses the server listens on, once it does.
type Addrs struct {
	Web, Device string
	Firmware    string // firmware.listen; empty when it is not set
}

// Options are what New needs besides the configuration.
type Options struct {
	Version string
	Logger  *slog.Logger
	// Ready, if set, is called by Run once every port listens (tests use
	// it to learn the ports when the config says ":0").
	Ready func(Addrs)
}

// Server is a built cloudcloud, ready to Run.
type Server struct {
	cfg config.Config
	opt Options
	log *slog.Logger

	bus     *events.Bus
	state   *state.Store
	lamps   *lamps.Registry
	gateway *device.Gateway
	poller  *weather.Poller
	updates *rollout.Tracker
	sched   *automation.Scheduler
	mqtt    *mqtt.Bridge // nil unless mqtt.url is set
	// cluster is this node's part in a cluster, nil without
	// cluster.nats_url; devices is the lamps of every node: the cluster,
	// or the gateway.
	cluster *cluster.Cluster
	devices lampGateway
	nats    *nats.Conn // cluster.nats_url's connection, nil without it
	node    string     // cluster.node, or the host name; "" without a cluster

	maxLamps int      // device.max_connections, or what the open-file limit allows
	closers  []func() // what Run closes last (the NATS connection)

	webHandler      http.Handler // the UI, the API, /healthz and /metrics
	deviceHandler   http.Handler // the lamps' WebSocket and /firmware.bin
	firmwareHandler http.Handler // firmware.listen: /firmware.bin and nothing else
}

// New builds every part from cfg. Nothing listens yet; on an error nothing
// is left running.
func New(cfg config.Config, o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, opt: o, log: o.Logger, bus: events.NewBus()}
	log := s.log
	dir := cfg.Storage.Dir
	backend, err := s.openStorage()
	if err != nil {
		return nil, err
	}
	data, err := backend.Bucket("")
	if err != nil {
		return nil, err
	}
	// A process killed in the middle of a write leaves its temporary file.
	removed, err := atomicfile.RemoveTemps(dir)
	if len(removed) > 0 {
		log.Info("removed temporary files of writes interrupted by a crash", "files", removed)
	}
	if err != nil {
		return nil, fmt.Errorf("storage.dir %q: %w", dir, err)
	}
	creds, password, secret, err := s.credentials(data)
	if err != nil {
		return nil, err
	}
	if s.state, err = state.Open(data, s.bus, log); err != nil {
		return nil, err
	}
	favs, err := favorites.Open(data, s.bus, log.With("part", "favorites"))
	if err != nil {
		return nil, err
	}
	if s.lamps, err = lamps.Open(lamps.Options{Records: data, Shared: s.state, Bus: s.bus, Logger: log.With("part", "lamps")}); err != nil {
		return nil, err
	}
	// From here on a failure must stop the registry's flusher too.
	built := false
	defer func() {
		if !built {
			s.lamps.Close()
		}
	}()
	proxies, err := realip.New(cfg.Web.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("web.trusted_proxies: %w", err)
	}
	fw, err := openFirmware(backend, s.bus, log.With("part", "firmware"))
	if err != nil {
		return nil, err
	}
	s.updates, err = rollout.Open(data, s.bus, log.With("part", "rollout"), 5*time.Minute, func() string {
		info, _ := fw.Current()
		return info.Version
	})
	if err != nil {
		return nil, err
	}
	wo := cfg.Weather.Options()
	wo.Logger, wo.Publish = log.With("part", "weather"), s.applyWeather
	s.poller, err = weather.NewPoller(wo)
	if err != nil {
		return nil, err
	}
	s.applyWeather(s.poller.Report())

	scenes, err := s.newAutomation(data)
	if err != nil {
		return nil, err
	}
	// Scenes and schedules are records: their changes, made here or on
	// another node, reach the open pages from the storage's watch.
	for prefix, t := range map[string]events.Type{automation.ScenePrefix: events.TypeScenes, automation.SchedulePrefix: events.TypeSchedules} {
		data.Watch(prefix, func(e storage.Entry) {
			s.bus.Publish(events.Event{Type: t, Data: map[string]string{"id": strings.TrimPrefix(e.Key, prefix)}})
		})
	}

	registry := prometheus.NewRegistry()
	fanout := metrics.NewFanout()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), fanout, metrics.NewStorageCollector())

	// The gateway starts its writers and keepalive at once, so it is built
	// after everything that can fail on a bad setting or file.
	if s.gateway, err = s.newGateway(data, secret, proxies, fanout); err != nil {
		return nil, err
	}
	// Every display change reaches the gateway in order, straight from the
	// store's commit; see state.Store.Watch.
	s.state.Watch(func(st state.State) { _ = s.gateway.SetDisplay(st.DisplayPacket()) })
	if s.devices, err = s.joinCluster(data); err != nil {
		s.gateway.Shutdown(context.Background())
		return nil, err
	}
	s.lamps.Attach(s.devices)
	if s.cluster != nil {
		registry.MustRegister(metrics.NewClusterCollector(clusterMetrics{s.cluster}))
	}
	registry.MustRegister(metrics.NewDeviceCollector(s.gateway.Stats()), metrics.NewWeatherCollector(s.poller.Report))
	if cfg.MQTT.URL != "" {
		if s.mqtt, err = s.newMQTT(fw, scenes); err != nil {
			s.gateway.Shutdown(context.Background())
			return nil, err
		}
		registry.MustRegister(metrics.NewMQTTCollector(s.mqtt))
	}

	access := firmwareAccess(cfg, password, secret)
	access.Logger = log.With("part", "firmware")
	if access.Open {
		log.Warn("firmware.download_auth is false: /firmware.bin is served without a login to anyone who can reach a port, with the Wi-Fi credentials and lamp secret compiled into it")
	}
	// Lamps download through nginx too: progress and the back-off of wrong
	// logins are keyed by the real client.
	served := func(d firmware.Download) {
		s.updates.Served(d)
		s.lamps.FirmwareFromAddress(realip.IP(d.RemoteAddr), d.ClientVersion)
	}
	fwHandler := withClientAddr(proxies, access.Guard(fw.Handler(firmware.Hooks{Served: served})))
	ui, err := web.New(web.Options{
		Username: cfg.Web.Username, Password: password,
		SessionKey: creds.Key(), SessionTTL: cfg.Web.SessionTTL.D(),
		Proxies: proxies, DataDir: dir, Sessions: data, Logger: log.With("part", "web"),
		Registry: registry, Version: o.Version, FirmwareHandler: fwHandler,
		FirmwareMaxSize: int64(cfg.Firmware.MaxSize), FirmwareChip: cfg.Firmware.Chip,
	}, s.webDeps(web.Deps{State: s.lamps, Lamps: s.lamps, Devices: s.devices, Favorites: favs, Weather: s.poller, Events: s.bus, Firmware: fw, Rollout: s.updates,
		Scenes: scenes, Schedules: s.sched, LampList: func() any { return s.lamps.Lamps() }}))
	if err != nil {
		s.gateway.Shutdown(context.Background())
		return nil, err
	}
	s.webHandler = ui.Handler()
	deviceMux := http.NewServeMux()
	deviceMux.Handle("/firmware.bin", fwHandler)
	deviceMux.Handle("/", s.gateway)
	s.deviceHandler = deviceMux
	// firmware.listen serves the image and nothing else, for lamps built
	// for the original server, which download from its HTTP port.
	firmwareMux := http.NewServeMux()
	firmwareMux.Handle("/firmware.bin", fwHandler)
	s.firmwareHandler = firmwareMux
	built = true
	return s, nil
}

// newAutomation opens the scenes and the scheduler on the lamp registry:
// they set the shared state and each lamp's own.
func (s *Server) newAutomation(data storage.Bucket) (*automation.Scenes, error) {
	loc, err := s.cfg.Time.Location()
	if err != nil {
		return nil, fmt.Errorf("time.zone: %w", err)
	}
	lamps := automationLamps{s.lamps}
	scenes, err := automation.OpenScenes(data, lamps, s.log.With("part", "scenes"))
	if err != nil {
		return nil, err
	}
	s.sched, err = automation.NewScheduler(automation.Options{
		Records: data, Lamps: lamps, Scenes: scenes, Location: loc, Sun: s.sunLocation,
		Logger: s.log.With("part", "schedules"),
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("schedules run in time zone "+loc.String(), "now", time.Now().In(loc).Format("2006-01-02 15:04 MST"))
	return scenes, nil
}

// sunLocation is where sunrise and sunset are computed: weather.lat and
// weather.lon (no API key needed), else the coordinates OpenWeatherMap
// gave for weather.city or weather.city_id.
func (s *Server) sunLocation() (lat, lon float64, ok bool) {
	if w := s.cfg.Weather; w.Lat != nil && w.Lon != nil {
		return *w.Lat, *w.Lon, true
	}
	if obs := s.poller.Report().Observation; obs != nil {
		return obs.Lat, obs.Lon, true
	}
	return 0, 0, false
}

// backend is where the server keeps what it keeps: storage.dir
// (storage.Dir), or NATS JetStream shared with other nodes
// (jetstore.Store).
type backend interface {
	Bucket(name string) (storage.Bucket, error)
	Objects(name string) (storage.Objects, error)
}

// openStorage opens storage.dir, or with cluster.nats_url the JetStream
// buckets (the directory then keeps only a copy of the firmware images).
func (s *Server) openStorage() (backend, error) {
	dir, url := s.cfg.Storage.Dir, s.cfg.Cluster.NATSURL
	if url == "" {
		return storage.OpenDir(dir)
	}
	js, err := jetstore.Open(url, s.cfg.Cluster.Replicas, filepath.Join(dir, "cluster-cache"))
	if err != nil {
		return nil, err
	}
	s.nats, s.node = js.Conn(), nodeName(s.cfg.Cluster.Node)
	s.closers = append(s.closers, js.Close)
	s.log.Info("state kept in NATS JetStream, shared with the other nodes", "nats", s.cfg.Cluster.NATSURL, "replicas", s.cfg.Cluster.Replicas)
	return js, nil
}

// lampGateway is the lamps of every node: what the registry and the web
// port need of the gateway (device.Gateway, or cluster.Cluster in a
// cluster).
type lampGateway interface {
	lamps.Gateway
	web.DeviceService
}

// joinCluster joins the cluster when there is one: the lamps of every node
// are then the cluster's, else the gateway's. records is the bucket the
// nodes share.
func (s *Server) joinCluster(records storage.Bucket) (lampGateway, error) {
	if s.nats == nil {
		return s.gateway, nil
	}
	c, err := cluster.New(cluster.Options{
		Conn: s.nats, Node: s.node, Gateway: s.gateway, Bus: s.bus, Records: records,
		// A lamp's card follows its connections on other nodes too.
		LampChanged: func(id string) { s.bus.Publish(events.Event{Type: events.TypeLamp, Data: lamps.Changed{ID: id}}) },
		// Each node's steps of firmware updates, so every node keeps the
		// same update history (rollout.Tracker.Remote).
		Forward: map[events.Type]func([]byte) (any, error){
			events.TypeFirmware: func(b []byte) (any, error) {
				var u rollout.Update
				err := json.Unmarshal(b, &u)
				return u, err
			},
		},
		Expiry: s.cfg.Device.KeepaliveTimeout.D(),
		Logger: s.log.With("part", "cluster"),
	})
	if err != nil {
		return nil, err
	}
	s.cluster = c
	s.log.Info("joined the cluster as node "+s.node, "nats", s.cfg.Cluster.NATSURL)
	return c, nil
}

// clusterMetrics is the cluster as the metrics read it.
type clusterMetrics struct{ c *cluster.Cluster }

func (m clusterMetrics) Nodes() (nodes map[string]int, connected bool) {
	st := m.c.Status()
	nodes = make(map[string]int, len(st.Nodes))
	for _, n := range st.Nodes {
		nodes[n.Name] = n.Lamps
	}
	return nodes, st.NATS == "connected"
}

// nodeName is cluster.node, or else the host name up to its first dot, in
// the letters a node name may have.
func nodeName(configured string) string {
	if configured != "" {
		return configured
	}
	host, _ := os.Hostname()
	host, _, _ = strings.Cut(host, ".")
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, host)
	if name == "" {
		name = "node"
	}
	return name
}

// webDeps adds the MQTT bridge and the cluster, when there are: a nil
// pointer in the interface would not read as "off".
func (s *Server) webDeps(d web.Deps) web.Deps {
	if s.mqtt != nil {
		d.MQTT = s.mqtt
	}
	if s.cluster != nil {
		d.Cluster = s.cluster
	}
	return d
}

// newMQTT builds the MQTT bridge on the lamp registry.
func (s *Server) newMQTT(fw *firmware.Store, scenes *automation.Scenes) (*mqtt.Bridge, error) {
	m := s.cfg.MQTT
	clientID := m.ClientID
	switch {
	case clientID != "":
	case s.node != "":
		// Nodes of one cluster may share a host; the broker keeps one
		// connection per client id.
		clientID = "cloudcloud-" + s.node
	default:
		host, _ := os.Hostname()
		clientID = "cloudcloud-" + host
	}
	shared := mqtt.StoreShared{Store: s.lamps}
	b, err := mqtt.New(mqtt.Options{
		URL: m.URL, Username: m.Username, Password: m.Password, ClientID: clientID,
		BaseTopic: m.BaseTopic, Discovery: m.Discovery, DiscoveryPrefix: m.DiscoveryPrefix,
		PublicURL: s.cfg.Web.PublicURL, Version: s.opt.Version,
		Bus: s.bus, Shared: shared, Lamps: mqttLamps{r: s.lamps, gw: s.devices},
		Firmware: fw, Weather: s.poller, Scenes: mqttScenes{scenes},
		// A lamp's own state and label, and lamps appearing or forgotten.
		MoreEvents: []events.Type{events.TypeLamp},
		// In a cluster every node's bridge shares the topics.
		Cluster: s.node != "",
		Logger:  s.log.With("part", "mqtt"),
	})
	if err != nil {
		return nil, fmt.Errorf("mqtt.url: %w", err)
	}
	return b, nil
}

// openFirmware opens the firmware store on the firmware bucket and objects.
func openFirmware(data backend, bus events.Publisher, log *slog.Logger) (*firmware.Store, error) {
	records, err := data.Bucket("firmware")
	if err != nil {
		return nil, err
	}
	images, err := data.Objects("firmware")
	if err != nil {
		return nil, err
	}
	return firmware.OpenStore(records, images, bus, log)
}

// credentials returns the generated credentials and the UI password and lamp
// secret in force: the configured ones, else the generated ones, which are
// printed once, on the start that made them up.
func (s *Server) credentials(records storage.Bucket) (creds credentials.Credentials, password, secret string, err error) {
	log := s.log
	file := filepath.Join(s.cfg.Storage.Dir, credentials.Key+".json")
	creds, generated, err := credentials.Ensure(records, file)
	if err != nil {
		return creds, "", "", err
	}
	password, secret = s.cfg.Web.Password, s.cfg.Device.AuthSecret
	if password == "" {
		password = creds.WebPassword
		if generated.WebPassword {
			log.Warn("generated a UI password (kept in "+file+"; set web.password to choose one)", "username", s.cfg.Web.Username, "password", password)
		} else {
			log.Info("UI password: the generated one in "+file, "username", s.cfg.Web.Username)
		}
	}
	if secret == "" {
		secret = creds.DeviceSecret
		if generated.DeviceSecret {
			log.Warn("generated the lamp secret (kept in "+file+"; flash it into your lamps or set device.auth_secret)", "secret", secret)
		} else {
			log.Info("lamp secret: the generated one in " + file)
		}
	}
	return creds, password, secret, nil
}

func (s *Server) newGateway(records storage.Bucket, secret string, proxies realip.Resolver, fanout *metrics.Fanout) (*device.Gateway, error) {
	d := s.cfg.Device
	named := make([]device.NamedSecret, len(d.Secrets))
	for i, n := range d.Secrets {
		named[i] = device.NamedSecret{Name: n.Name, Secret: n.Secret}
	}
	s.maxLamps = d.MaxConnections
	if s.maxLamps == 0 {
		s.maxLamps = connectionLimit(s.log)
	}
	return device.New(device.Options{
		Secret: secret, Named: named,
		HandshakeTimeout: d.HandshakeTimeout.D(),
		PingInterval:     d.PingInterval.D(),
		KeepaliveTimeout: d.KeepaliveTimeout.D(),
		WriteTimeout:     d.WriteTimeout.D(),
		MaxFrameSize:     int64(d.MaxFrameSize),
		MaxConnections:   s.maxLamps,
		SendQueue:        d.SendQueue,
		LogLines:         d.LogLines,
		LogBytes:         int(d.LogBytes),
		LogTotalBytes:    int(d.LogTotalBytes),
		AuthBackoff:      d.AuthBackoff.D(),
		AuthBackoffMax:   d.AuthBackoffMax.D(),
		MaxHandshakes:    d.MaxHandshakes,
		Proxies:          proxies,
		Records:          records,
		Bus:              s.bus,
		Node:             s.node,
		Logger:           s.log.With("part", "device"),
		OnFanout:         fanout.ObserveFanout,
		OnLamp:           s.lamps.Seen,
	}, s.state.Get().DisplayPacket())
}

// Run listens on the web and device ports (and firmware.listen when set),
// serves until ctx ends, then shuts down gracefully. A Server runs once.
func (s *Server) Run(ctx context.Context) error {
	cfg, log := s.cfg, s.log
	// The base context ends with the server, so long-lived requests (the
	// SSE stream) return and Shutdown does not wait for them in vain.
	webCtx, stopWeb := context.WithCancel(context.Background())
	defer stopWeb()
	webMax := cfg.Web.MaxConnections
	if webMax == 0 {
		webMax = defaultWebConnections
	}
	type port struct {
		key, addr, what string // the setting, its value, and the port in words
		srv             *http.Server
		max             int    // connections at once; beyond, busyType/busy is the answer
		maxKey          string // the setting of max
		busyType, busy  string
		ln              net.Listener
	}
	webBusy := `{"error":"too many connections to the web port; try again in a moment or raise web.max_connections"}`
	ports := []*port{
		{key: "web.listen", addr: cfg.Web.Listen, what: "web port", srv: newHTTPServer(s.webHandler, log),
			max: webMax, maxKey: "web.max_connections", busyType: "application/json", busy: webBusy},
		{key: "device.listen", addr: cfg.Device.Listen, what: "lamp port", srv: newHTTPServer(s.deviceHandler, log),
			max: s.maxLamps, maxKey: "device.max_connections", busyType: "text/plain; charset=utf-8",
			busy: "too many connections to the lamp port; raise device.max_connections\n"},
	}
	ports[0].srv.BaseContext = func(net.Listener) context.Context { return webCtx }
	if cfg.Firmware.Listen != "" {
		ports = append(ports, &port{key: "firmware.listen", addr: cfg.Firmware.Listen, what: "firmware port", srv: newHTTPServer(s.firmwareHandler, log),
			max: webMax, maxKey: "web.max_connections", busyType: "text/plain; charset=utf-8",
			busy: "too many connections to the firmware port; try again in a moment\n"})
	}
	for i, p := range ports {
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			for _, q := range ports[:i] {
				q.ln.Close()
			}
			s.gateway.Shutdown(context.Background())
			s.lamps.Close()
			return fmt.Errorf("%s %s: %w", p.key, p.addr, err)
		}
		p.ln = connlimit.New(ln, p.max, "the "+p.what+" ("+p.maxKey+")", p.busyType, p.busy, log)
	}
	addrs := Addrs{Web: ports[0].ln.Addr().String(), Device: ports[1].ln.Addr().String()}
	if len(ports) > 2 {
		addrs.Firmware = ports[2].ln.Addr().String()
		log.Info("firmware download listener", "url", "http://"+displayAddr(ports[2].ln.Addr())+"/firmware.bin")
	}
	log.Info("cloudcloud is running", "version", s.opt.Version,
		"ui", "http://"+displayAddr(ports[0].ln.Addr()), "lamps", "ws://"+displayAddr(ports[1].ln.Addr())+"/",
		"data", cfg.Storage.Dir, "packet", s.state.Get().Packet)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(ports))
	for _, p := range ports {
		wg.Go(func() {
			if err := p.srv.Serve(p.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s server: %w", p.key, err)
				cancel()
			}
		})
	}
	wg.Go(func() { s.poller.Run(runCtx) })
	wg.Go(func() { s.updates.Run(runCtx) })
	wg.Go(func() { s.sched.Run(runCtx) })
	if s.mqtt != nil {
		wg.Go(func() { _ = s.mqtt.Run(runCtx) })
	}
	if s.cluster != nil {
		wg.Go(func() { s.cluster.Run(runCtx) })
	}
	if s.opt.Ready != nil {
		s.opt.Ready(addrs)
	}

	<-runCtx.Done()
	log.Info("shutting down: closing lamp connections")
	sctx, scancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer scancel()
	stopWeb()
	var errs []error
	// The lamp side first, so lamps get their close frame at once; the web
	// side last, after the streams have ended.
	for _, p := range ports[1:] {
		shutdownHTTP(p.srv, p.what, log)
	}
	if err := s.gateway.Shutdown(sctx); err != nil {
		errs = append(errs, err)
	}
	// After the gateway: every lamp's last-seen time is final now.
	s.lamps.Close()
	shutdownHTTP(ports[0].srv, ports[0].what, log)
	wg.Wait()
	close(errc)
	for err := range errc {
		errs = append(errs, err)
	}
	for _, close := range s.closers {
		close()
	}
	log.Info("stopped", "packet", s.state.Get().Packet)
	return errors.Join(errs...)
}

// firmwareAccess is who may download /firmware.bin (PROTOCOL.md "Firmware
// download"): the lamp secrets, the UI login and the extra download login.
// password and secret are the ones in effect (configured or generated).
func firmwareAccess(cfg config.Config, password, secret string) firmware.Access {
	a := firmware.Access{
		Open:    !cfg.Firmware.DownloadAuth,
		Secrets: []string{secret},
		Logins:  []firmware.Login{{Username: cfg.Web.Username, Password: password}},
		// Wrong logins are slowed down like wrong lamp secrets.
		Backoff: backoff.New(cfg.Device.AuthBackoff.D(), cfg.Device.AuthBackoffMax.D(), nil),
	}
	for _, s := range cfg.Device.Secrets {
		a.Secrets = append(a.Secrets, s.Secret)
	}
	if f := cfg.Firmware; f.DownloadUsername != "" {
		a.Logins = append(a.Logins, firmware.Login{Username: f.DownloadUsername, Password: f.DownloadPassword})
	}
	return a
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
func (s *Server) applyWeather(r weather.Report) {
	w := state.Weather{Code: int(r.Reading.Code), Intensity: r.Reading.Intensity, Description: r.Description, Source: r.Source}
	if _, err := s.state.SetWeather(w); err != nil {
		s.log.Error("could not record the weather", "err", err)
	}
	s.bus.Publish(events.Event{Type: events.TypeWeather, Data: r})
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
