package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/weather"
)

func TestDeviceCollector(t *testing.T) {
	var s device.Stats
	s.Lamps.Store(3)
	s.Connections.Store(4)
	s.HandshakesOK.Store(10)
	s.HandshakesFailed.Store(2)
	s.Refused.Store(1)
	s.PacketsSent.Store(100)
	s.PacketsReceived.Store(50)
	s.Ignored.Store(5)
	s.SlowDropped.Store(6)
	s.SilentDropped.Store(7)
	want := `
# HELP cloudcloud_lamps_connected Lamps connected and authenticated now.
# TYPE cloudcloud_lamps_connected gauge
cloudcloud_lamps_connected 3
# HELP cloudcloud_lamp_handshakes_total Lamp handshakes by result: ok, or failed (wrong or missing secret).
# TYPE cloudcloud_lamp_handshakes_total counter
cloudcloud_lamp_handshakes_total{result="failed"} 2
cloudcloud_lamp_handshakes_total{result="ok"} 10
# HELP cloudcloud_lamps_dropped_total Lamps the server disconnected: slow (full send queue or write timeout) or silent (no sign of life).
# TYPE cloudcloud_lamps_dropped_total counter
cloudcloud_lamps_dropped_total{reason="silent"} 7
cloudcloud_lamps_dropped_total{reason="slow"} 6
`
	c := NewDeviceCollector(&s)
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"cloudcloud_lamps_connected", "cloudcloud_lamp_handshakes_total", "cloudcloud_lamps_dropped_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c); n != 11 {
		t.Errorf("%d series, want 11", n)
	}
	// Values are read at scrape time, not copied at construction.
	s.Lamps.Store(4)
	if err := testutil.CollectAndCompare(c, strings.NewReader("# HELP cloudcloud_lamps_connected Lamps connected and authenticated now.\n# TYPE cloudcloud_lamps_connected gauge\ncloudcloud_lamps_connected 4\n"), "cloudcloud_lamps_connected"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", err, problems)
	}
}

func TestFanout(t *testing.T) {
	f := NewFanout()
	f.ObserveFanout(12, 3*time.Millisecond)
	f.ObserveFanout(2, time.Second)
	if got := testutil.ToFloat64(f.lamps); got != 2 {
		t.Errorf("lamps gauge %v, want the last value 2", got)
	}
	if n := testutil.CollectAndCount(f, "cloudcloud_display_fanout_seconds"); n != 1 {
		t.Errorf("histogram series %d", n)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(f)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "cloudcloud_display_fanout_seconds" {
			if h := mf.GetMetric()[0].GetHistogram(); h.GetSampleCount() != 2 || h.GetSampleSum() < 1.003 || h.GetSampleSum() > 1.0031 {
				t.Errorf("histogram count %d sum %v", h.GetSampleCount(), h.GetSampleSum())
			}
		}
	}
}

func TestWeatherCollector(t *testing.T) {
	tests := []struct {
		name   string
		report weather.Report
		want   string
	}{
		{"no key", weather.Report{Status: weather.StatusNoAPIKey, Reading: weather.Reading{Code: 3, Intensity: 9}}, `
# HELP cloudcloud_weather_fetch_failures Weather fetches that failed in a row; 0 after a success. Alert when it stays above a few.
# TYPE cloudcloud_weather_fetch_failures gauge
cloudcloud_weather_fetch_failures 0
# HELP cloudcloud_weather_status 1 for the poller's current status (ok, no_api_key, bad_api_key, unknown_place, rate_limited, error).
# TYPE cloudcloud_weather_status gauge
cloudcloud_weather_status{status="no_api_key"} 1
# HELP cloudcloud_weather_code Weather code 1-9 that weather mode shows now.
# TYPE cloudcloud_weather_code gauge
cloudcloud_weather_code 3
# HELP cloudcloud_weather_intensity Intensity 0-10 that weather mode shows now.
# TYPE cloudcloud_weather_intensity gauge
cloudcloud_weather_intensity 9
`},
		{"failing after a success", weather.Report{Status: weather.StatusRateLimited, Failures: 3, FetchedAt: time.Unix(1700000000, 500e6), Reading: weather.Reading{Code: 4, Intensity: 7.5}}, `
# HELP cloudcloud_weather_fetch_failures Weather fetches that failed in a row; 0 after a success. Alert when it stays above a few.
# TYPE cloudcloud_weather_fetch_failures gauge
cloudcloud_weather_fetch_failures 3
# HELP cloudcloud_weather_last_success_timestamp_seconds Unix time of the last good observation; absent before the first.
# TYPE cloudcloud_weather_last_success_timestamp_seconds gauge
cloudcloud_weather_last_success_timestamp_seconds 1.7000000005e+09
# HELP cloudcloud_weather_status 1 for the poller's current status (ok, no_api_key, bad_api_key, unknown_place, rate_limited, error).
# TYPE cloudcloud_weather_status gauge
cloudcloud_weather_status{status="rate_limited"} 1
# HELP cloudcloud_weather_code Weather code 1-9 that weather mode shows now.
# TYPE cloudcloud_weather_code gauge
cloudcloud_weather_code 4
# HELP cloudcloud_weather_intensity Intensity 0-10 that weather mode shows now.
# TYPE cloudcloud_weather_intensity gauge
cloudcloud_weather_intensity 7.5
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewWeatherCollector(func() weather.Report { return tt.report })
			if err := testutil.CollectAndCompare(c, strings.NewReader(tt.want)); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestHTTPRequests(t *testing.T) {
	h := NewHTTP()
	for _, r := range []Request{
		{Route: "/things/:id", Method: "GET", Code: 200, Duration: time.Millisecond},
		{Route: "/things/:id", Method: "GET", Code: 200, Duration: time.Millisecond},
		{Route: "/broken", Method: "GET", Code: 418},
		{Route: "", Method: "GET", Code: 404},
		{Route: "/things/:id", Method: "BREW", Code: 405},
		{Route: "/api/events", Method: "GET", Code: 200, Duration: time.Hour, Streaming: true},
	} {
		h.Observe(r)
	}
	want := `
# HELP cloudcloud_http_requests_total HTTP requests to the web port by route pattern, method and status code.
# TYPE cloudcloud_http_requests_total counter
cloudcloud_http_requests_total{code="200",method="GET",route="/api/events"} 1
cloudcloud_http_requests_total{code="200",method="GET",route="/things/:id"} 2
cloudcloud_http_requests_total{code="404",method="GET",route="unmatched"} 1
cloudcloud_http_requests_total{code="405",method="other",route="/things/:id"} 1
cloudcloud_http_requests_total{code="418",method="GET",route="/broken"} 1
`
	if err := testutil.CollectAndCompare(h, strings.NewReader(want), "cloudcloud_http_requests_total"); err != nil {
		t.Error(err)
	}
	// A stream is counted but kept out of the latency histogram.
	if n := testutil.CollectAndCount(h, "cloudcloud_http_request_duration_seconds"); n != 3 {
		t.Errorf("latency series: %d, want 3 (the stream left out)", n)
	}
}
