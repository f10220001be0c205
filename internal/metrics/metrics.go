// Package metrics exposes cloudcloud's health to Prometheus: the lamp
// gateway's counters, how long a display change takes to reach every lamp,
// how weather fetching goes, and HTTP requests by route and status.
//
// The collectors read their sources at scrape time (device.Stats, the weather
// Report) instead of being pushed to, so a counter can never drift from the
// number the rest of the program uses. Wiring, in package server:
//
//	reg := prometheus.NewRegistry()
//	fanout := metrics.NewFanout()
//	reg.MustRegister(metrics.NewDeviceCollector(gw.Stats()), fanout,
//		metrics.NewWeatherCollector(poller.Report))
//	// device.Options{OnFanout: fanout.ObserveFanout, ...}
//	// web.Options{Registry: reg} registers the HTTP metrics itself.
package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/atomicfile"
	"github.com/cloudcloud/cloudcloud/weather"
)

// Namespace prefixes every metric name.
const Namespace = "cloudcloud"

// DeviceCollector reports device.Stats. Counters since start are Prometheus
// counters; "now" values are gauges.
type DeviceCollector struct {
	stats *device.Stats

	lamps, connections, handshakes, refused *prometheus.Desc
	sent, received, ignored, dropped        *prometheus.Desc
	throttled                               *prometheus.Desc
}

// NewDeviceCollector reads stats (device.Gateway.Stats()) at every scrape.
func NewDeviceCollector(stats *device.Stats) *DeviceCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
	}
	return &DeviceCollector{
		stats:       stats,
		lamps:       d("lamps_connected", "Lamps connected and authenticated now."),
		connections: d("lamp_connections", "Open lamp WebSocket connections now, including ones still in the handshake."),
		handshakes:  d("lamp_handshakes_total", "Lamp handshakes by result: ok, or failed (wrong or missing secret).", "result"),
		refused:     d("lamp_connections_refused_total", "Lamp connections refused because the connection cap was reached or the server was shutting down."),
		throttled:   d("lamp_handshakes_throttled_total", "Lamp connections answered 429 before the upgrade: their address is in back-off after wrong secrets, or has too many handshakes open."),
		sent:        d("lamp_packets_sent_total", "Text frames sent to lamps."),
		received:    d("lamp_packets_received_total", "Frames received from lamps after the handshake."),
		ignored:     d("lamp_frames_ignored_total", "Frames from lamps that the protocol does not define (ignored, connection kept)."),
		dropped:     d("lamps_dropped_total", "Lamps the server disconnected: slow (full send queue or write timeout) or silent (no sign of life).", "reason"),
	}
}

// Describe implements prometheus.Collector.
func (c *DeviceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.lamps, c.connections, c.handshakes, c.refused, c.throttled, c.sent, c.received, c.ignored, c.dropped} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *DeviceCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats
	gauge := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(c.lamps, s.Lamps.Load())
	gauge(c.connections, s.Connections.Load())
	counter(c.handshakes, s.HandshakesOK.Load(), "ok")
	counter(c.handshakes, s.HandshakesFailed.Load(), "failed")
	counter(c.refused, s.Refused.Load())
	counter(c.throttled, s.Throttled.Load())
	counter(c.sent, s.PacketsSent.Load())
	counter(c.received, s.PacketsReceived.Load())
	counter(c.ignored, s.Ignored.Load())
	counter(c.dropped, s.SlowDropped.Load(), "slow")
	counter(c.dropped, s.SilentDropped.Load(), "silent")
}

// Fanout measures how long a display change takes to reach every lamp (or
// be superseded there). Pass ObserveFanout as device.Options.OnFanout.
type Fanout struct {
	seconds prometheus.Histogram
	lamps   prometheus.Gauge
}

// NewFanout makes the histogram; buckets run from half a millisecond (a few
// lamps on a LAN) to half a minute (a lamp on a dying link at the write
// timeout).
func NewFanout() *Fanout {
	return &Fanout{
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace,
			Name:      "display_fanout_seconds",
			Help:      "Time from a display change until every lamp has written it or skipped it for a newer one.",
			Buckets:   prometheus.ExponentialBuckets(0.0005, 2.5, 12),
		}),
		lamps: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "display_fanout_lamps",
			Help:      "Lamps the last display change was sent to.",
		}),
	}
}

// ObserveFanout records one display change that reached lamps lamps in d.
func (f *Fanout) ObserveFanout(lamps int, d time.Duration) {
	f.seconds.Observe(d.Seconds())
	f.lamps.Set(float64(lamps))
}

// Describe implements prometheus.Collector.
func (f *Fanout) Describe(ch chan<- *prometheus.Desc) {
	f.seconds.Describe(ch)
	f.lamps.Describe(ch)
}

// Collect implements prometheus.Collector.
func (f *Fanout) Collect(ch chan<- prometheus.Metric) {
	f.seconds.Collect(ch)
	f.lamps.Collect(ch)
}

// WeatherCollector reports the weather poller's state from its Report at
// every scrape. The Report keeps consecutive failures, not totals, so this
// collector exposes gauges to alert on (failures in a row, age of the last
// good observation, the status) rather than fetch counters; that needs no
// hook inside the poller and can never disagree with what the UI shows.
type WeatherCollector struct {
	report func() weather.Report

	failures, lastSuccess, status, code, intensity *prometheus.Desc
}

// NewWeatherCollector reads report (weather.(*Poller).Report) at every scrape.
func NewWeatherCollector(report func() weather.Report) *WeatherCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "weather", name), help, labels, nil)
	}
	return &WeatherCollector{
		report:      report,
		failures:    d("fetch_failures", "Weather fetches that failed in a row; 0 after a success. Alert when it stays above a few."),
		lastSuccess: d("last_success_timestamp_seconds", "Unix time of the last good observation; absent before the first."),
		status:      d("status", "1 for the poller's current status (ok, no_api_key, bad_api_key, unknown_place, rate_limited, error).", "status"),
		code:        d("code", "Weather code 1-9 that weather mode shows now."),
		intensity:   d("intensity", "Intensity 0-10 that weather mode shows now."),
	}
}

// Describe implements prometheus.Collector.
func (c *WeatherCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.failures, c.lastSuccess, c.status, c.code, c.intensity} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *WeatherCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.report()
	ch <- prometheus.MustNewConstMetric(c.failures, prometheus.GaugeValue, float64(r.Failures))
	if !r.FetchedAt.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.lastSuccess, prometheus.GaugeValue, float64(r.FetchedAt.UnixMilli())/1000)
	}
	status := r.Status
	if status == "" {
		status = "unknown"
	}
	ch <- prometheus.MustNewConstMetric(c.status, prometheus.GaugeValue, 1, status)
	ch <- prometheus.MustNewConstMetric(c.code, prometheus.GaugeValue, float64(r.Reading.Code))
	ch <- prometheus.MustNewConstMetric(c.intensity, prometheus.GaugeValue, r.Reading.Intensity)
}

// HTTP counts web requests by route pattern (never the raw path, which
// would let any visitor create series), method and status.
type HTTP struct {
	requests *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
}

// NewHTTP makes the HTTP metrics; register the result.
func NewHTTP() *HTTP {
	return &HTTP{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "http_requests_total",
			Help:      "HTTP requests to the web port by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace,
			Name:      "http_request_duration_seconds",
			Help:      "Time to answer HTTP requests by route pattern; streams (Server-Sent Events) are left out.",
			Buckets:   []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
	}
}

// Request is one finished HTTP request.
type Request struct {
	Route     string // the route pattern, "/api/state"; "" for an unknown path
	Method    string
	Code      int
	Duration  time.Duration
	Streaming bool // a long-lived stream: counted, but kept out of the latency histogram
}

// knownMethods bounds the method label: anything else is "other".
var knownMethods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "OPTIONS": true}

// Observe records r.
func (h *HTTP) Observe(r Request) {
	route := r.Route
	if route == "" {
		route = "unmatched"
	}
	method := r.Method
	if !knownMethods[method] {
		method = "other"
	}
	h.requests.WithLabelValues(route, method, strconv.Itoa(r.Code)).Inc()
	if !r.Streaming {
		h.seconds.WithLabelValues(route).Observe(r.Duration.Seconds())
	}
}

// Describe implements prometheus.Collector.
func (h *HTTP) Describe(ch chan<- *prometheus.Desc) {
	h.requests.Describe(ch)
	h.seconds.Describe(ch)
}

// Collect implements prometheus.Collector.
func (h *HTTP) Collect(ch chan<- prometheus.Metric) {
	h.requests.Collect(ch)
	h.seconds.Collect(ch)
}

// StorageCollector reports failed writes to the data directory by kind
// (atomicfile.Kinds): a full disk, a read-only one, missing permission,
// other disk errors.
type StorageCollector struct{ errors *prometheus.Desc }

// NewStorageCollector reads atomicfile.Failures at every scrape.
func NewStorageCollector() *StorageCollector {
	return &StorageCollector{errors: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "storage_errors_total"),
		"Writes to the data directory that failed, by kind: no_space, read_only, permission, other.", []string{"kind"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *StorageCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.errors }

// Collect implements prometheus.Collector.
func (c *StorageCollector) Collect(ch chan<- prometheus.Metric) {
	for _, k := range atomicfile.Kinds {
		ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(atomicfile.Failures(k)), string(k))
	}
}

// MQTTSource is the MQTT bridge as the collector reads it.
type MQTTSource interface {
	Connected() bool
	Counters() (received, published uint64)
}

// MQTTCollector exports the MQTT bridge's connection and traffic.
type MQTTCollector struct {
	src                            MQTTSource
	connected, received, published *prometheus.Desc
}

// NewMQTTCollector reads src at every scrape.
func NewMQTTCollector(src MQTTSource) *MQTTCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "mqtt", name), help, nil, nil)
	}
	return &MQTTCollector{
		src:       src,
		connected: d("connected", "1 while connected to the MQTT broker (mqtt.url), else 0."),
		received:  d("messages_received_total", "MQTT messages received: commands and Home Assistant's status."),
		published: d("messages_published_total", "MQTT messages published: states, availability and discovery."),
	}
}

// Describe implements prometheus.Collector.
func (c *MQTTCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.connected
	ch <- c.received
	ch <- c.published
}

// Collect implements prometheus.Collector.
func (c *MQTTCollector) Collect(ch chan<- prometheus.Metric) {
	connected := 0.0
	if c.src.Connected() {
		connected = 1
	}
	in, out := c.src.Counters()
	ch <- prometheus.MustNewConstMetric(c.connected, prometheus.GaugeValue, connected)
	ch <- prometheus.MustNewConstMetric(c.received, prometheus.CounterValue, float64(in))
	ch <- prometheus.MustNewConstMetric(c.published, prometheus.CounterValue, float64(out))
}

// ClusterSource is the cluster as the collector reads it: the lamps
// connected to each node it knows (itself included), and whether NATS can
// be reached.
type ClusterSource interface {
	Nodes() (lamps map[string]int, connected bool)
}

// ClusterCollector exports the cluster's nodes and this node's NATS link.
type ClusterCollector struct {
	src                    ClusterSource
	nodes, lamps, natsLink *prometheus.Desc
}

// NewClusterCollector reads src at every scrape.
func NewClusterCollector(src ClusterSource) *ClusterCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "cluster", name), help, labels, nil)
	}
	return &ClusterCollector{
		src:      src,
		nodes:    d("nodes", "Cluster nodes this node knows to be alive, itself included."),
		lamps:    d("node_lamps", "Lamp connections each node holds, as this node knows it.", "node"),
		natsLink: d("nats_connected", "1 while this node can reach NATS (cluster.nats_url), else 0."),
	}
}

// Describe implements prometheus.Collector.
func (c *ClusterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.nodes
	ch <- c.lamps
	ch <- c.natsLink
}

// Collect implements prometheus.Collector.
func (c *ClusterCollector) Collect(ch chan<- prometheus.Metric) {
	nodes, connected := c.src.Nodes()
	link := 0.0
	if connected {
		link = 1
	}
	ch <- prometheus.MustNewConstMetric(c.nodes, prometheus.GaugeValue, float64(len(nodes)))
	for name, n := range nodes {
		ch <- prometheus.MustNewConstMetric(c.lamps, prometheus.GaugeValue, float64(n), name)
	}
	ch <- prometheus.MustNewConstMetric(c.natsLink, prometheus.GaugeValue, link)
}
