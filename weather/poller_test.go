package weather

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	owm "github.com/briandowns/openweathermap"
)

const testKey = "0123456789abcdef0123456789abcdef"

// harness runs a Poller against a fake OpenWeatherMap with a fake clock.
type harness struct {
	t         *testing.T
	p         *Poller
	clock     *fakeClock
	owm       *fakeOWM
	logs      *logRecorder
	published chan Report
	cancel    context.CancelFunc
	done      chan struct{}
}

// start runs a poller for London against fake; adjust changes the options.
func start(t *testing.T, fake *fakeOWM, adjust func(*Options)) *harness {
	t.Helper()
	h := &harness{
		t:         t,
		clock:     newFakeClock(testNow),
		owm:       fake,
		logs:      &logRecorder{},
		published: make(chan Report, 1000),
		done:      make(chan struct{}),
	}
	o := Options{
		APIKey:   testKey,
		City:     "London,GB",
		Endpoint: fake.srv.URL,
		Clock:    h.clock,
		Logger:   slog.New(h.logs),
		Publish:  func(r Report) { h.published <- r },
	}
	if adjust != nil {
		adjust(&o)
	}
	p, err := NewPoller(o)
	if err != nil {
		t.Fatalf("NewPoller: %v", err)
	}
	h.p = p
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		defer close(h.done)
		p.Run(ctx)
	}()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	h.cancel()
	select {
	case <-h.done:
	case <-time.After(guard):
		h.t.Error("Run did not return after its context ended")
	}
}

// advance moves the clock and waits until the poller waits again; it
// returns the poller's next timer.
func (h *harness) advance(d time.Duration) time.Duration {
	h.t.Helper()
	h.clock.Advance(d)
	return h.clock.waitTimer(h.t)
}

// takePublished returns what was published since the last call.
func (h *harness) takePublished() []Report {
	var out []Report
	for {
		select {
		case r := <-h.published:
			out = append(out, r)
		default:
			return out
		}
	}
}

func TestPollerSuccess(t *testing.T) {
	fake := newFakeOWM(t, brokenClouds)
	h := start(t, fake, nil)
	if d := h.clock.waitTimer(t); d != recomputeEvery {
		t.Errorf("after a fetch the poller waits %s, want the recompute interval %s", d, recomputeEvery)
	}

	req := fake.lastRequest()
	if req.Path != "/data/2.5/weather" {
		t.Errorf("path %q, want /data/2.5/weather", req.Path)
	}
	q := req.Query()
	for key, want := range map[string]string{"appid": testKey, "q": "London,GB", "units": "metric", "lang": "EN"} {
		if got := q.Get(key); got != want {
			t.Errorf("query %s = %q, want %q", key, got, want)
		}
	}

	r := h.p.Report()
	if r.Reading != (Reading{CodeCloudy, 8}) || r.Status != StatusOK || r.Error != "" || r.Failures != 0 || r.Source != SourceOpenWeatherMap {
		t.Errorf("report %+v, want cloudy 8, ok, no error, openweathermap", r)
	}
	if want := "broken clouds, 75 % cover → cloudy, intensity 8"; r.Description != want {
		t.Errorf("description %q, want %q", r.Description, want)
	}
	if !r.FetchedAt.Equal(testNow) || !r.NextFetch.Equal(testNow.Add(DefaultInterval)) {
		t.Errorf("fetched %s next %s, want %s and %s", r.FetchedAt, r.NextFetch, testNow, testNow.Add(DefaultInterval))
	}
	want := Observation{
		ConditionID: 803, Main: "Clouds", Description: "broken clouds", CloudCover: 75, WindSpeed: 4.63,
		TempC: 14.72, Place: "London, GB", Lat: 51.5085, Lon: -0.1257, Sunrise: testSunrise, Sunset: testSunset, ObservedAt: testNow.Add(-4 * time.Minute),
	}
	if r.Observation == nil || *r.Observation != want {
		t.Errorf("observation %+v, want %+v", r.Observation, want)
	}
	if got := h.takePublished(); len(got) != 1 || got[0].Reading != r.Reading {
		t.Errorf("published %d reports (%+v), want one with the reading", len(got), got)
	}

	// The report handed out is a copy: changing it changes nothing inside.
	r.Observation.CloudCover = 0
	if h.p.Report().Observation.CloudCover != 75 {
		t.Error("changing a returned Observation changed the poller's")
	}
}

func TestPollerPlaceQuery(t *testing.T) {
	lat, lon := 51.5085, -0.1257
	tests := []struct {
		name   string
		adjust func(*Options)
		want   map[string]string
	}{
		{"city id", func(o *Options) { o.City, o.CityID = "", 2643743 }, map[string]string{"id": "2643743"}},
		{"city name", func(o *Options) { o.City = " Zocca,IT " }, map[string]string{"q": "Zocca,IT"}},
		{"coordinates", func(o *Options) { o.City, o.Lat, o.Lon = "", &lat, &lon }, map[string]string{"lat": "51.508500", "lon": "-0.125700"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFakeOWM(t, brokenClouds)
			h := start(t, fake, tt.adjust)
			h.clock.waitTimer(t)
			q := fake.lastRequest().Query()
			for key, want := range tt.want {
				if got := q.Get(key); got != want {
					t.Errorf("query %s = %q, want %q (query %s)", key, got, want, q.Encode())
				}
			}
		})
	}
}

// TestPollerFailureKeepsLastGood: after a good observation every kind of
// failure is counted and explained, and the lamp keeps the good reading.
func TestPollerFailureKeepsLastGood(t *testing.T) {
	tests := []struct {
		name       string
		failure    owmResponse
		wantStatus string
		wantError  []string
	}{
		{"bad key", badKey, StatusBadAPIKey, []string{"rejected the API key", "HTTP 401", "Invalid API key", "weather.api_key", "CLOUDCLOUD_WEATHER_API_KEY"}},
		{"unknown city", cityNotFound, StatusUnknownPlace, []string{`"London,GB"`, "HTTP 404", "city not found", "weather.city"}},
		{"bad request", wrongLat, StatusUnknownPlace, []string{"HTTP 400", "wrong latitude", "weather.lat"}},
		{"rate limited", rateLimited, StatusRateLimited, []string{"HTTP 429", "too many requests", "weather.interval"}},
		{"server error", internalError, StatusError, []string{"server error", "HTTP 500", "Internal error", "retries"}},
		{"bad gateway page", badGateway, StatusError, []string{"server error (HTTP 502)", "retries"}},
		{"truncated JSON", truncatedJSON, StatusError, []string{"not weather data", "unexpected EOF", "weather.endpoint"}},
		{"captive portal page", captivePortal, StatusError, []string{"not weather data", "invalid character", "weather.endpoint"}},
		{"no conditions", noConditions, StatusError, []string{"without any weather condition"}},
		{"connection dropped", dropped, StatusError, []string{"Could not reach OpenWeatherMap", "internet connection"}},
		{"timeout", hangs, StatusError, []string{"did not answer within 300ms", "internet connection"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFakeOWM(t, brokenClouds, tt.failure)
			h := start(t, fake, func(o *Options) { o.Timeout = 300 * time.Millisecond })
			h.clock.waitTimer(t)
			good := h.p.Report()
			h.takePublished()

			if d := h.advance(DefaultInterval); d != firstRetry {
				t.Errorf("after a failure the poller waits %s, want %s", d, firstRetry)
			}
			// http.Transport itself retries a GET once when a reused
			// connection drops, so a dropped connection may count twice.
			if n := fake.requestCount(); n < 2 {
				t.Fatalf("%d requests, want at least 2", n)
			}
			r := h.p.Report()
			if r.Status != tt.wantStatus || r.Failures != 1 {
				t.Errorf("status %q failures %d, want %q 1", r.Status, r.Failures, tt.wantStatus)
			}
			for _, want := range tt.wantError {
				if !strings.Contains(r.Error, want) {
					t.Errorf("error %q does not contain %q", r.Error, want)
				}
			}
			if r.Reading != good.Reading || r.Source != SourceOpenWeatherMap || r.Description != good.Description {
				t.Errorf("reading %+v (%s, %q), want the last good %+v", r.Reading, r.Source, r.Description, good.Reading)
			}
			if r.Observation == nil || *r.Observation != *good.Observation || !r.FetchedAt.Equal(good.FetchedAt) {
				t.Errorf("observation %+v fetched %s, want the last good one from %s", r.Observation, r.FetchedAt, good.FetchedAt)
			}
			if want := h.clock.Now().Add(firstRetry); !r.NextFetch.Equal(want) {
				t.Errorf("next fetch %s, want %s", r.NextFetch, want)
			}
			if strings.Contains(r.Error, testKey) || strings.Contains(h.logs.allText(), testKey) {
				t.Error("the API key leaked into the error or the log")
			}
			// The status changed, so the change is published; the reading did not.
			if got := h.takePublished(); len(got) != 1 || got[0].Status != tt.wantStatus || got[0].Reading != good.Reading {
				t.Errorf("published %+v, want one report with status %q and the good reading", got, tt.wantStatus)
			}

			// The next success clears the error.
			fake.setResponses(heavyRain)
			h.advance(firstRetry)
			r = h.p.Report()
			if r.Status != StatusOK || r.Error != "" || r.Failures != 0 || r.Reading != (Reading{CodeRain, 7}) {
				t.Errorf("after recovery: %+v, want ok, no error, rain 7", r)
			}
			if h.logs.count("weather: OpenWeatherMap answers again", slog.LevelInfo) != 1 {
				t.Error("recovery was not logged")
			}
		})
	}
}

func TestPollerFirstFetchFails(t *testing.T) {
	fake := newFakeOWM(t, badKey)
	h := start(t, fake, nil)
	if d := h.clock.waitTimer(t); d != firstRetry {
		t.Errorf("waits %s, want %s", d, firstRetry)
	}
	r := h.p.Report()
	if r.Reading != clearSky || r.Source != SourceDefault || r.Observation != nil || r.Status != StatusBadAPIKey || r.Failures != 1 {
		t.Errorf("report %+v, want clear sky 9 from default, no observation, bad_api_key, 1 failure", r)
	}
	if !strings.HasPrefix(r.Description, "no answer from OpenWeatherMap yet") {
		t.Errorf("description %q", r.Description)
	}
	if !r.FetchedAt.IsZero() {
		t.Errorf("fetched at %s, want zero", r.FetchedAt)
	}
}

func TestPollerNetworkUnreachable(t *testing.T) {
	// A port that was just free: nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	fake := newFakeOWM(t) // only to satisfy start; the endpoint points elsewhere
	h := start(t, fake, func(o *Options) { o.Endpoint = "http://" + addr })
	h.clock.waitTimer(t)
	r := h.p.Report()
	if r.Status != StatusError || !strings.Contains(r.Error, "Could not reach OpenWeatherMap") || !strings.Contains(r.Error, addr) {
		t.Errorf("status %q error %q, want error naming %s", r.Status, r.Error, addr)
	}
	if strings.Contains(r.Error, testKey) || strings.Contains(h.logs.allText(), testKey) {
		t.Error("the API key leaked into the error or the log")
	}
	if fake.requestCount() != 0 {
		t.Error("the request went to the default server instead of the endpoint")
	}
}

func TestPollerLogsPersistentErrorsOnce(t *testing.T) {
	fake := newFakeOWM(t, badKey)
	h := start(t, fake, nil)
	d := h.clock.waitTimer(t)
	for range 3 {
		d = h.advance(d)
	}
	const msg = "weather: fetch failed"
	if e, dbg := h.logs.count(msg, slog.LevelError), h.logs.count(msg, slog.LevelDebug); e != 1 || dbg != 3 {
		t.Errorf("bad key 4 times: %d error and %d debug records, want 1 and 3", e, dbg)
	}
	if got := h.takePublished(); len(got) != 1 {
		t.Errorf("published %d reports for the same failure, want 1", len(got))
	}

	// A different problem is news again.
	fake.setResponses(cityNotFound)
	d = h.advance(d)
	d = h.advance(d)
	if e, dbg := h.logs.count(msg, slog.LevelError), h.logs.count(msg, slog.LevelDebug); e != 2 || dbg != 4 {
		t.Errorf("then unknown place twice: %d error and %d debug records, want 2 and 4", e, dbg)
	}

	// Transient errors warn each time: someone may be watching the log.
	fake.setResponses(internalError)
	d = h.advance(d)
	h.advance(d)
	if w := h.logs.count(msg, slog.LevelWarn); w != 2 {
		t.Errorf("server errors twice: %d warnings, want 2", w)
	}
	if f := h.p.Report().Failures; f != 8 {
		t.Errorf("failures %d, want 8", f)
	}
}

func TestPollerBackoff(t *testing.T) {
	tests := []struct {
		name     string
		interval time.Duration
		want     []time.Duration
	}{
		{"default interval", 10 * time.Minute, []time.Duration{
			30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute, 10 * time.Minute}},
		{"short interval caps early", time.Minute, []time.Duration{30 * time.Second, time.Minute, time.Minute}},
		{"long interval", time.Hour, []time.Duration{
			30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute,
			32 * time.Minute, time.Hour, time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFakeOWM(t, rateLimited)
			h := start(t, fake, func(o *Options) { o.Interval = tt.interval })
			d := h.clock.waitTimer(t)
			for i, want := range tt.want {
				r := h.p.Report()
				if d != want || r.Failures != i+1 || !r.NextFetch.Equal(h.clock.Now().Add(want)) {
					t.Errorf("failure %d: waits %s (next fetch %s, failures %d), want %s", i+1, d, r.NextFetch, r.Failures, want)
				}
				if i < len(tt.want)-1 {
					d = h.advance(d)
				}
			}
			fake.setResponses(brokenClouds)
			h.advance(d)
			if r := h.p.Report(); r.Failures != 0 || !r.NextFetch.Equal(h.clock.Now().Add(tt.interval)) {
				t.Errorf("after a success: failures %d next fetch %s, want 0 and a full interval", r.Failures, r.NextFetch)
			}
		})
	}
}

func TestPollerNoAPIKey(t *testing.T) {
	fake := newFakeOWM(t, brokenClouds)
	h := start(t, fake, func(o *Options) { o.APIKey, o.City = "", "" })

	var r Report
	select {
	case r = <-h.published:
	case <-time.After(guard):
		t.Fatal("nothing was published")
	}
	if r.Reading != (Reading{CodeClear, 9}) || r.Source != SourceDefault || r.Status != StatusNoAPIKey || r.Observation != nil {
		t.Errorf("report %+v, want clear 9, default, no_api_key", r)
	}
	for _, want := range []string{"weather.api_key", "CLOUDCLOUD_WEATHER_API_KEY"} {
		if !strings.Contains(r.Error, want) {
			t.Errorf("error %q does not say where the key goes (%s)", r.Error, want)
		}
	}
	if !r.NextFetch.IsZero() {
		t.Errorf("next fetch %s, want none", r.NextFetch)
	}
	if r != h.p.Report() {
		t.Errorf("Report() %+v differs from the published %+v", h.p.Report(), r)
	}
	h.p.Refresh()
	h.stop()
	if n := fake.requestCount(); n != 0 {
		t.Errorf("%d requests without a key, want none", n)
	}
	if len(h.takePublished()) != 0 {
		t.Error("published more than once without a key")
	}
}

func TestPollerRefresh(t *testing.T) {
	fake := newFakeOWM(t, brokenClouds)
	h := start(t, fake, nil)
	h.clock.waitTimer(t)

	// Right after a fetch, a refresh waits for the 10 s gap.
	h.p.Refresh()
	if d := h.clock.waitTimer(t); d != minRefreshGap {
		t.Errorf("refresh right after a fetch waits %s, want %s", d, minRefreshGap)
	}
	if n := fake.requestCount(); n != 1 {
		t.Errorf("%d requests before the gap passed, want 1", n)
	}
	h.advance(minRefreshGap)
	if n := fake.requestCount(); n != 2 {
		t.Errorf("%d requests after the gap, want 2", n)
	}

	// Later, a refresh fetches at once.
	h.advance(time.Minute)
	h.p.Refresh()
	h.clock.waitTimer(t)
	if n := fake.requestCount(); n != 3 {
		t.Errorf("%d requests after a later refresh, want 3", n)
	}
	if r := h.p.Report(); !r.NextFetch.Equal(h.clock.Now().Add(DefaultInterval)) {
		t.Errorf("next fetch %s, want a full interval after the refresh", r.NextFetch)
	}
}

func TestPollerSunriseRamp(t *testing.T) {
	sunrise := testNow.Add(30 * time.Minute)
	body := currentJSON(803, "Clouds", "broken clouds", 75, 3, "", sunrise, sunrise.Add(12*time.Hour))
	fake := newFakeOWM(t, owmResponse{status: http.StatusOK, body: body})
	h := start(t, fake, nil)

	d := h.clock.waitTimer(t)
	if want := DefaultSunTransition / 100; d != want {
		t.Errorf("during a ramp the poller waits %s, want %s", d, want)
	}
	r := h.p.Report()
	if r.Reading != (Reading{CodeSunrise, 2.5}) {
		t.Errorf("10 minutes into the sunrise window: %+v, want sunrise 2.5", r.Reading)
	}
	if want := "sunrise in 30 min → sunrise, intensity 2.5; weather: broken clouds, 75 % cover → cloudy, intensity 8"; r.Description != want {
		t.Errorf("description %q, want %q", r.Description, want)
	}

	last := h.takePublished()[0].Reading.Intensity
	for i := 0; h.clock.Now().Before(sunrise); i++ {
		if i > 200 {
			t.Fatal("sunrise never came")
		}
		d = h.advance(d)
		r := h.p.Report()
		published := h.takePublished()
		if !h.clock.Now().Before(sunrise) {
			break
		}
		if r.Reading.Code != CodeSunrise || r.Reading.Intensity <= last || r.Reading.Intensity > 10 {
			t.Fatalf("at %s: %+v, want sunrise above %v", h.clock.Now(), r.Reading, last)
		}
		if len(published) != 1 || published[0].Reading != r.Reading {
			t.Fatalf("at %s: published %+v, want the new reading once", h.clock.Now(), published)
		}
		last = r.Reading.Intensity
	}
	if r := h.p.Report(); r.Reading != (Reading{CodeCloudy, 8}) {
		t.Errorf("at sunrise: %+v, want the weather (cloudy 8)", r.Reading)
	}
	if d != recomputeEvery {
		t.Errorf("after the ramp the poller waits %s, want %s", d, recomputeEvery)
	}
}

func TestPollerPublishesOnlyChanges(t *testing.T) {
	fake := newFakeOWM(t, brokenClouds)
	h := start(t, fake, nil)
	d := h.clock.waitTimer(t)
	h.takePublished()

	// Ticks and a refetch of the same weather change nothing.
	for range 12 {
		d = h.advance(d)
	}
	if n := fake.requestCount(); n != 2 {
		t.Fatalf("%d requests after 12 minutes, want 2", n)
	}
	if got := h.takePublished(); len(got) != 0 {
		t.Errorf("published %d unchanged reports, want none", len(got))
	}
	fake.setResponses(heavyRain)
	h.p.Refresh()
	h.clock.waitTimer(t)
	if got := h.takePublished(); len(got) != 1 || got[0].Reading != (Reading{CodeRain, 7}) {
		t.Errorf("published %+v, want one report with rain 7", got)
	}
	if r := h.p.Report(); r.Observation.RainMM != 8.4 {
		t.Errorf("rain %v mm, want 8.4", r.Observation.RainMM)
	}
}

func TestPollerStopsDuringFetch(t *testing.T) {
	fake := newFakeOWM(t, hangs)
	h := start(t, fake, nil)
	select {
	case <-fake.arrived:
	case <-time.After(guard):
		t.Fatal("no request arrived")
	}
	h.stop()
	if r := h.p.Report(); r.Failures != 0 || r.Status != StatusOK {
		t.Errorf("shutting down counted as a failure: %+v", r)
	}
	if n := h.logs.count("weather: fetch failed", slog.LevelWarn); n != 0 {
		t.Errorf("shutting down logged %d warnings", n)
	}
}

func TestPollerRunTwice(t *testing.T) {
	fake := newFakeOWM(t, brokenClouds)
	h := start(t, fake, nil)
	h.clock.waitTimer(t)
	returned := make(chan struct{})
	go func() {
		h.p.Run(context.Background())
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(guard):
		t.Fatal("a second Run did not return")
	}
	if h.logs.count("weather: Run called while the poller is already running; ignoring this call", slog.LevelError) != 1 {
		t.Error("the second Run was not logged")
	}
}

// countingTransport counts the requests that pass through it.
type countingTransport struct{ n atomic.Int32 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

func TestPollerUsesGivenHTTPClient(t *testing.T) {
	fake := newFakeOWM(t, brokenClouds)
	counting := &countingTransport{}
	client := &http.Client{Transport: counting}
	h := start(t, fake, func(o *Options) { o.HTTPClient = client })
	h.clock.waitTimer(t)
	if counting.n.Load() != 1 {
		t.Errorf("the given transport saw %d requests, want 1", counting.n.Load())
	}
	if client.Transport != counting {
		t.Error("NewPoller changed the caller's http.Client")
	}
	if h.p.Report().Status != StatusOK {
		t.Errorf("report %+v", h.p.Report())
	}
}

func TestNewPollerValidation(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	tests := []struct {
		name    string
		o       Options
		wantErr string // "" for valid options
	}{
		{"nothing set: clear sky", Options{}, ""},
		{"key and city", Options{APIKey: testKey, City: "London"}, ""},
		{"key with spaces around", Options{APIKey: " " + testKey + "\n", CityID: 1}, ""},
		{"key and coordinates", Options{APIKey: testKey, Lat: f(-33.9), Lon: f(151.2)}, ""},
		{"all settings", Options{APIKey: testKey, CityID: 2643743, Interval: time.Hour, SunTransition: time.Hour,
			Timeout: 5 * time.Second, Endpoint: "http://127.0.0.1:9/owm", WindBeaufort: 8}, ""},
		{"key without place", Options{APIKey: testKey}, "no place"},
		{"two places", Options{APIKey: testKey, City: "London", CityID: 5}, `city_id (5) and city ("London") are both set; set only one`},
		{"negative city id", Options{APIKey: testKey, CityID: -4}, "weather.city_id: -4 is negative"},
		{"lat without lon", Options{APIKey: testKey, Lat: f(1)}, "set both"},
		{"lat out of range", Options{APIKey: testKey, Lat: f(91), Lon: f(0)}, "weather.lat: 91 is out of range -90 to 90"},
		{"lon out of range", Options{APIKey: testKey, Lat: f(0), Lon: f(-181)}, "weather.lon: -181 is out of range"},
		{"NaN lat", Options{APIKey: testKey, Lat: f(math.NaN()), Lon: f(0)}, "weather.lat: NaN"},
		{"key too long", Options{APIKey: strings.Repeat("a", 65), City: "x"}, "65 characters"},
		{"key with a quote", Options{APIKey: `"` + testKey + `"`, City: "x"}, `contains '"'`},
		{"key with an ampersand", Options{APIKey: "ab&c", City: "x"}, "contains '&'"},
		{"interval too short", Options{APIKey: testKey, City: "x", Interval: 10 * time.Second}, "weather.interval: 10s is too short"},
		{"negative transition", Options{City: "x", SunTransition: -time.Minute}, "weather.sun_transition: -1m0s is out of range"},
		{"transition too long", Options{SunTransition: 7 * time.Hour}, "weather.sun_transition: 7h0m0s"},
		{"negative timeout", Options{Timeout: -time.Second}, "timeout"},
		{"timeout beyond interval", Options{Timeout: time.Hour}, "timeout"},
		{"Beaufort 13", Options{WindBeaufort: 13}, "weather.wind_beaufort: 13 is out of range 1-12"},
		{"endpoint without scheme", Options{Endpoint: "api.openweathermap.org"}, "not an absolute http(s) URL"},
		{"endpoint ftp", Options{Endpoint: "ftp://example.com"}, "not an absolute http(s) URL"},
		{"endpoint with query", Options{Endpoint: "http://example.com/?x=1"}, "query"},
		{"endpoint unparsable", Options{Endpoint: "http://[::1"}, "not a URL"},
		{"every problem at once", Options{APIKey: "a b", Lat: f(100), Interval: time.Second}, "weather.lat: 100 is set but weather.lon is not"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPoller(tt.o)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr == "" && p == nil:
				t.Fatal("no poller")
			case tt.wantErr != "" && err == nil:
				t.Fatalf("no error, want one containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("error %q does not contain %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), testKey) {
				t.Error("the error repeats the key")
			}
		})
	}
}

func TestPollerReportBeforeRun(t *testing.T) {
	p, err := NewPoller(Options{APIKey: testKey, City: "London", Clock: newFakeClock(testNow)})
	if err != nil {
		t.Fatal(err)
	}
	r := p.Report()
	if r.Reading != clearSky || r.Source != SourceDefault || r.Status != StatusOK || r.Error != "" || !r.NextFetch.Equal(testNow) {
		t.Errorf("before the first fetch: %+v, want clear sky by default, ok, fetch due now", r)
	}
	p.Refresh() // must not block without Run
	p.Refresh()
}

func TestReportJSON(t *testing.T) {
	fake := newFakeOWM(t, brokenClouds)
	h := start(t, fake, nil)
	h.clock.waitTimer(t)
	b, err := json.Marshal(h.p.Report())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"reading":{"code":4,"intensity":8}`, `"status":"ok"`, `"source":"openweathermap"`, `"cloud_cover":75`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
}

func TestAPIErrorMessage(t *testing.T) {
	tests := []struct {
		body string
		want string
	}{
		{`{"cod":"404","message":"city not found"}`, "city not found"},
		{`{"cod":401, "message": "Invalid API key."}`, "Invalid API key."},
		{`{"cod":"500","message":"line\none\ttab"}`, "line one tab"},
		{`{"cod":"500"}`, ""},
		{`<html>502</html>`, ""},
		{``, ""},
		{`{"message":"` + strings.Repeat("x", 300) + `"}`, strings.Repeat("x", maxAPIMessage) + "…"},
	}
	for _, tt := range tests {
		if got := apiErrorMessage([]byte(tt.body)); got != tt.want {
			t.Errorf("apiErrorMessage(%q) = %q, want %q", tt.body, got, tt.want)
		}
	}
}

func FuzzAPIErrorMessage(f *testing.F) {
	f.Add([]byte(`{"cod":"404","message":"city not found"}`))
	f.Add([]byte(`{"message":"\u0000\u00ff\ufffd"}`))
	f.Add([]byte("<html>"))
	f.Fuzz(func(t *testing.T, body []byte) {
		msg := apiErrorMessage(body)
		if len([]rune(msg)) > maxAPIMessage+1 {
			t.Fatalf("message of %d runes, want at most %d", len([]rune(msg)), maxAPIMessage+1)
		}
		for _, r := range msg {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("control character %q in %q", r, msg)
			}
		}
	})
}

// FuzzObservation feeds arbitrary answers through the same decoding the
// library does and through the mapping: nothing may panic and the reading
// must stay valid.
func FuzzObservation(f *testing.F) {
	f.Add([]byte(brokenClouds.body))
	f.Add([]byte(heavyRain.body))
	f.Add([]byte(`{"weather":[{"id":-1}],"clouds":{"all":-9},"sys":{"sunrise":-5,"sunset":99999999999},"dt":1}`))
	f.Add([]byte(`{"weather":[{"id":771}],"wind":{"speed":1e308},"rain":{"3h":7}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var current owm.CurrentWeatherData
		if json.Unmarshal(body, &current) != nil || len(current.Weather) == 0 {
			return
		}
		o := observationFrom(&current)
		r := sunOnly(mapReading(o, 0), testNow, o.Sunrise, o.Sunset, DefaultSunTransition)
		if problem := validReading(r); problem != "" {
			t.Fatalf("observation %+v gives %+v: %s", o, r, problem)
		}
	})
}

// TestPollerRealClock runs the poller on the wall clock: the first fetch
// happens at once, and ending the context stops the waiting.
func TestPollerRealClock(t *testing.T) {
	// The sun times are hours from now: with the fixtures' fixed ones the
	// real clock is in their sunset glow every day from 18:14 UTC.
	now := time.Now()
	fake := newFakeOWM(t, owmResponse{status: http.StatusOK, body: currentJSON(803, "Clouds", "broken clouds", 75, 4.63, "", now.Add(6*time.Hour), now.Add(12*time.Hour))})
	published := make(chan Report, 10)
	p, err := NewPoller(Options{APIKey: testKey, CityID: 2643743, Endpoint: fake.srv.URL,
		Logger: slog.New(&logRecorder{}), Publish: func(r Report) { published <- r }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	select {
	case r := <-published:
		if r.Reading != (Reading{CodeCloudy, 8}) {
			t.Errorf("published %+v, want cloudy 8", r.Reading)
		}
	case <-time.After(guard):
		t.Fatal("nothing was published")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(guard):
		t.Fatal("Run did not return after its context ended")
	}
}
