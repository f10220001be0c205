package weather

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	owm "github.com/briandowns/openweathermap"
)

// Report.Status values.
const (
	StatusOK           = "ok"
	StatusNoAPIKey     = "no_api_key"
	StatusBadAPIKey    = "bad_api_key"
	StatusUnknownPlace = "unknown_place"
	StatusRateLimited  = "rate_limited"
	StatusError        = "error"
)

// Report.Source values.
const (
	SourceOpenWeatherMap = "openweathermap"
	// SourceDefault: the reading is the clear-sky default because there is
	// no key or no observation yet.
	SourceDefault = "default"
)

// Report is the poller's latest word: what the lamp shows, why, and how
// fetching goes.
type Report struct {
	Reading     Reading      `json:"reading"`
	Description string       `json:"description"` // what it shows and why, e.g. "broken clouds, 75 % cover → cloudy, intensity 8"
	Source      string       `json:"source"`      // SourceOpenWeatherMap, or SourceDefault without key or observation
	Observation *Observation `json:"observation"` // last good observation, nil before the first success
	FetchedAt   time.Time    `json:"fetched_at"`  // of the last good observation
	Status      string       `json:"status"`      // one of the Status constants
	Error       string       `json:"error"`       // last error, a sentence that says what to do; "" when ok
	Failures    int          `json:"failures"`    // consecutive failed fetches
	NextFetch   time.Time    `json:"next_fetch"`  // zero when nothing will be fetched
}

// Defaults of Options.
const (
	DefaultEndpoint      = "https://api.openweathermap.org"
	DefaultInterval      = 10 * time.Minute
	DefaultSunTransition = 40 * time.Minute
	DefaultTimeout       = 10 * time.Second
)

const (
	// minInterval keeps a typo ("10s") from burning a free key's quota;
	// OpenWeatherMap refreshes its data about every 10 minutes anyway.
	minInterval = time.Minute
	// maxSunTransition keeps the sunrise and sunset windows from swallowing
	// the day.
	maxSunTransition = 6 * time.Hour
	// firstRetry is the pause after the first failure; it doubles with
	// every further failure up to the interval.
	firstRetry = 30 * time.Second
	// minRefreshGap stops a hammered UI button from hammering the API.
	minRefreshGap = 10 * time.Second
	// recomputeEvery is the longest pause between two recomputations of
	// the reading, so sun ramps move without waiting for the next poll.
	recomputeEvery = time.Minute
	// maxAPIKeyLength is what the library accepts.
	maxAPIKeyLength = 64
)

// Options configures a Poller. Zero values mean the defaults.
type Options struct {
	APIKey string // empty: no fetches, clear sky
	// The place: exactly one of CityID, City, or Lat and Lon.
	CityID int
	City   string
	Lat    *float64
	Lon    *float64

	Interval      time.Duration // between polls; default 10m, at least 1m
	SunTransition time.Duration // length of the sunrise and sunset ramps; default 40m, at most 6h
	Timeout       time.Duration // of one fetch; default 10s
	Endpoint      string        // base URL, default "https://api.openweathermap.org"
	WindBeaufort  int           // Beaufort number from which wind shows as windy; default 6, 1-12
	// HTTPClient is optional; the poller uses a copy whose Transport is
	// wrapped to send requests to Endpoint.
	HTTPClient *http.Client
	Clock      Clock        // nil: the real clock
	Logger     *slog.Logger // nil: slog.Default()
	// Publish is called, from the goroutine running Run, with every new
	// Report whose Reading, Status or Error changed.
	Publish func(Report)
}

// place is where the weather is asked for.
type place struct {
	cityID   int
	city     string
	lat, lon float64
	byCoords bool
}

// String names the place the way the config does, for messages.
func (pl place) String() string {
	switch {
	case pl.cityID != 0:
		return "city id " + strconv.Itoa(pl.cityID)
	case pl.city != "":
		return strconv.Quote(pl.city)
	case pl.byCoords:
		return fmt.Sprintf("lat %s, lon %s", formatCoordinate(pl.lat), formatCoordinate(pl.lon))
	}
	return "(no place)"
}

func formatCoordinate(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// Poller fetches the current weather and keeps a Report of what the lamp
// should show.
type Poller struct {
	apiKey        string
	place         place
	interval      time.Duration
	sunTransition time.Duration
	timeout       time.Duration
	windBeaufort  int
	client        http.Client // Transport is the endpointTransport
	clock         Clock
	logger        *slog.Logger
	publish       func(Report)

	refresh chan struct{}
	running atomic.Bool

	mu     sync.Mutex
	report Report // guarded by mu

	// Owned by the goroutine running Run (and NewPoller before that).
	obs           *Observation
	fetchedAt     time.Time
	status        string
	errMsg        string
	failures      int
	nextFetch     time.Time
	lastAttempt   time.Time
	lastPublished *Report
}

// NewPoller checks the options and returns a poller that does nothing
// until Run. The error names the setting to fix.
func NewPoller(o Options) (*Poller, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	key := o.APIKey
	endpoint, _ := parseEndpoint(o.Endpoint) // checked by Validate
	pl := place{cityID: o.CityID, city: o.City}
	if o.Lat != nil && o.Lon != nil {
		pl.lat, pl.lon, pl.byCoords = *o.Lat, *o.Lon, true
	}

	var client http.Client
	if o.HTTPClient != nil {
		client = *o.HTTPClient
	}
	next := client.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	client.Transport = &endpointTransport{next: next, endpoint: endpoint}

	p := &Poller{
		apiKey:        key,
		place:         pl,
		interval:      o.Interval,
		sunTransition: o.SunTransition,
		timeout:       o.Timeout,
		windBeaufort:  o.WindBeaufort,
		client:        client,
		clock:         o.Clock,
		logger:        o.Logger,
		publish:       o.Publish,
		refresh:       make(chan struct{}, 1),
		status:        StatusOK,
	}
	if p.clock == nil {
		p.clock = realClock{}
	}
	if p.logger == nil {
		p.logger = slog.Default()
	}
	if p.publish == nil {
		p.publish = func(Report) {}
	}
	if key == "" {
		p.status = StatusNoAPIKey
		p.errMsg = "No OpenWeatherMap API key, so weather mode shows a clear sky. Put a key in weather.api_key in the config file or in the CLOUDCLOUD_WEATHER_API_KEY environment variable (free keys: https://home.openweathermap.org/api_keys)."
	} else {
		p.nextFetch = p.clock.Now()
	}
	p.report = p.buildReport(p.clock.Now())
	return p, nil
}

// Report returns the latest report. It is safe for concurrent use.
func (p *Poller) Report() Report {
	p.mu.Lock()
	r := p.report
	p.mu.Unlock()
	r.Observation = cloneObservation(r.Observation)
	return r
}

// Refresh asks Run for a fetch now without waiting for it. Requests closer
// than 10 s to the previous fetch are delayed to that gap, and requests
// while one is pending are merged. Without an API key it does nothing.
func (p *Poller) Refresh() {
	select {
	case p.refresh <- struct{}{}:
	default: // one is already pending
	}
}

// Run fetches right away, then every Interval (sooner, with back-off,
// after a failure), recomputes the reading at least every minute for the
// sun ramps, and publishes changes. It returns when ctx ends. Without an
// API key it fetches nothing and only publishes the clear-sky report.
func (p *Poller) Run(ctx context.Context) {
	if !p.running.CompareAndSwap(false, true) {
		p.logger.Error("weather: Run called while the poller is already running; ignoring this call")
		return
	}
	defer p.running.Store(false)

	if p.apiKey == "" {
		p.logger.Warn("weather: no OpenWeatherMap API key; weather mode shows a clear sky",
			"fix", "set weather.api_key in the config file or CLOUDCLOUD_WEATHER_API_KEY")
		p.updateReport(p.clock.Now())
		<-ctx.Done()
		return
	}

	for {
		now := p.clock.Now()
		if !now.Before(p.nextFetch) {
			p.fetchAndRecord(ctx, now)
			if ctx.Err() != nil {
				return
			}
			now = p.clock.Now()
		}
		p.updateReport(now)

		wait := p.nextFetch.Sub(now)
		if p.obs != nil {
			wait = min(wait, p.recomputeInterval(now))
		}
		timer := p.clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C():
		case <-p.refresh:
			timer.Stop()
			if earliest := p.lastAttempt.Add(minRefreshGap); earliest.Before(p.nextFetch) {
				p.nextFetch = earliest
			}
		}
	}
}

// recomputeInterval is how long the reading may stay as it is: a minute,
// or a hundredth of the transition during a sun ramp so the glow moves in
// small steps.
func (p *Poller) recomputeInterval(now time.Time) time.Duration {
	if _, inRamp := findSunRamp(now, p.obs.Sunrise, p.obs.Sunset, p.sunTransition); inRamp {
		return min(recomputeEvery, max(time.Second, p.sunTransition/100))
	}
	return recomputeEvery
}

// fetchAndRecord fetches once and records the outcome: a success replaces
// the observation, a failure only the status, so the lamp keeps showing the
// last good weather.
func (p *Poller) fetchAndRecord(ctx context.Context, now time.Time) {
	p.lastAttempt = now
	obs, fail := p.fetch(ctx)
	if ctx.Err() != nil {
		return // shutting down: not the API's fault
	}
	now = p.clock.Now()

	if fail == nil {
		if p.failures > 0 {
			p.logger.Info("weather: OpenWeatherMap answers again", "place", p.place.String(), "after_failures", p.failures)
		}
		p.obs = &obs
		p.fetchedAt = now
		p.failures = 0
		p.status = StatusOK
		p.errMsg = ""
		p.nextFetch = now.Add(p.interval)
		p.logger.Debug("weather: observation", "place", obs.Place, "condition", obs.ConditionID,
			"description", obs.Description, "cloud_cover", obs.CloudCover, "wind_speed", obs.WindSpeed)
		return
	}

	p.failures++
	delay := p.backoff(p.failures)
	p.nextFetch = now.Add(delay)
	// A bad key or an unknown place needs a person, and retrying will not
	// change that: say it loudly once, then quietly until something changes.
	level := slog.LevelWarn
	if fail.status == StatusBadAPIKey || fail.status == StatusUnknownPlace {
		level = slog.LevelError
		if p.status == fail.status {
			level = slog.LevelDebug
		}
	}
	p.logger.Log(ctx, level, "weather: fetch failed", "status", fail.status, "error", fail.message,
		"place", p.place.String(), "failures", p.failures, "retry_in", delay)
	p.status = fail.status
	p.errMsg = fail.message
}

// backoff is the pause after the given number of consecutive failures:
// 30 s, doubling, at most the interval.
func (p *Poller) backoff(failures int) time.Duration {
	d := firstRetry
	for i := 1; i < failures && d < p.interval; i++ {
		d *= 2
	}
	return min(d, p.interval)
}

// updateReport rebuilds the report for now, stores it, and publishes it
// when the reading, status or error changed since the last publication.
func (p *Poller) updateReport(now time.Time) {
	r := p.buildReport(now)
	p.mu.Lock()
	p.report = r
	p.mu.Unlock()

	if last := p.lastPublished; last != nil && last.Reading == r.Reading && last.Status == r.Status && last.Error == r.Error {
		return
	}
	p.lastPublished = &r
	published := r
	published.Observation = cloneObservation(r.Observation)
	p.publish(published)
}

// buildReport computes the report from the poller's state at now.
func (p *Poller) buildReport(now time.Time) Report {
	r := Report{
		Status:    p.status,
		Error:     p.errMsg,
		Failures:  p.failures,
		NextFetch: p.nextFetch,
		FetchedAt: p.fetchedAt,
		Reading:   clearSky,
		Source:    SourceDefault,
	}
	switch {
	case p.apiKey == "":
		r.Description = "no OpenWeatherMap API key → clear sky, intensity 9"
	case p.obs == nil:
		r.Description = "no answer from OpenWeatherMap yet → clear sky, intensity 9"
	default:
		r.Observation = cloneObservation(p.obs)
		r.Source = SourceOpenWeatherMap
		base, why := mapWithReason(*p.obs, p.windBeaufort)
		var ramp *sunRamp
		r.Reading, ramp = sunReading(base, now, p.obs.Sunrise, p.obs.Sunset, p.sunTransition)
		r.Description = why
		if ramp != nil {
			r.Description = describeRamp(*ramp, r.Reading) + "; weather: " + why
		}
	}
	return r
}

func cloneObservation(o *Observation) *Observation {
	if o == nil {
		return nil
	}
	c := *o
	return &c
}

// fetchFailure is a failed fetch as the person sees it.
type fetchFailure struct {
	status  string // a Status constant
	message string // a sentence that says what to do
}

// fetch asks OpenWeatherMap for the current weather at the place.
func (p *Poller) fetch(ctx context.Context) (Observation, *fetchFailure) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()

	transport := &fetchTransport{next: p.client.Transport, ctx: ctx}
	client := p.client
	client.Transport = transport
	current, err := owm.NewCurrent("C", "EN", p.apiKey, owm.WithHttpClient(&client))
	if err != nil {
		// NewPoller checked the key; this is a library surprise.
		return Observation{}, p.failure(StatusError, "Could not set up the OpenWeatherMap client (%v); check weather.api_key.", err)
	}
	switch {
	case p.place.cityID != 0:
		err = current.CurrentByID(p.place.cityID)
	case p.place.city != "":
		err = current.CurrentByName(p.place.city)
	default:
		err = current.CurrentByCoordinates(&owm.Coordinates{Latitude: p.place.lat, Longitude: p.place.lon})
	}

	// The status first: the library reads most error bodies as weather.
	if s := transport.status; s != 0 && (s < 200 || s > 299) {
		return Observation{}, p.httpFailure(s, transport.errorBody)
	}
	if err != nil {
		return Observation{}, p.requestFailure(err)
	}
	if len(current.Weather) == 0 {
		return Observation{}, p.failure(StatusError, "OpenWeatherMap answered without any weather condition. The lamp keeps the last weather and retries; if it persists, check weather.endpoint and any proxy in between.")
	}
	return observationFrom(current), nil
}

// observationFrom keeps what the lamp and the UI need from an answer with
// at least one weather condition.
func observationFrom(c *owm.CurrentWeatherData) Observation {
	// OWM lists the primary condition first.
	w := c.Weather[0]
	rain, snow := c.Rain.OneH, c.Snow.OneH
	// Some stations only report a 3 h total; a third of it is the best
	// estimate of the last hour.
	if rain == 0 && c.Rain.ThreeH > 0 {
		rain = c.Rain.ThreeH / 3
	}
	if snow == 0 && c.Snow.ThreeH > 0 {
		snow = c.Snow.ThreeH / 3
	}
	placeName := strings.TrimSpace(c.Name)
	if country := strings.TrimSpace(c.Sys.Country); country != "" {
		if placeName != "" {
			placeName += ", "
		}
		placeName += country
	}
	return Observation{
		ConditionID: w.ID,
		Main:        w.Main,
		Description: w.Description,
		CloudCover:  c.Clouds.All,
		WindSpeed:   c.Wind.Speed,
		RainMM:      rain,
		SnowMM:      snow,
		TempC:       c.Main.Temp,
		Place:       placeName,
		Lat:         c.GeoPos.Latitude,
		Lon:         c.GeoPos.Longitude,
		Sunrise:     unixTime(c.Sys.Sunrise),
		Sunset:      unixTime(c.Sys.Sunset),
		ObservedAt:  unixTime(c.Dt),
	}
}

// unixTime converts OWM's Unix seconds; 0 (absent) stays the zero time.
func unixTime(sec int) time.Time {
	if sec <= 0 {
		return time.Time{}
	}
	return time.Unix(int64(sec), 0).UTC()
}

// httpFailure explains a non-2xx answer.
func (p *Poller) httpFailure(status int, body []byte) *fetchFailure {
	said := ""
	if msg := apiErrorMessage(body); msg != "" {
		said = ": " + strconv.Quote(msg)
	}
	switch {
	case status == http.StatusUnauthorized:
		return p.failure(StatusBadAPIKey, "OpenWeatherMap rejected the API key (HTTP 401%s). Check weather.api_key or CLOUDCLOUD_WEATHER_API_KEY; a new key can take a couple of hours to become active.", said)
	case status == http.StatusNotFound:
		return p.failure(StatusUnknownPlace, "OpenWeatherMap does not know the place %s (HTTP 404%s). Check weather.city, weather.city_id, or weather.lat and weather.lon.", p.place, said)
	case status == http.StatusBadRequest:
		return p.failure(StatusUnknownPlace, "OpenWeatherMap rejected the place %s (HTTP 400%s). Check weather.city, weather.city_id, or weather.lat and weather.lon.", p.place, said)
	case status == http.StatusTooManyRequests:
		return p.failure(StatusRateLimited, "OpenWeatherMap says this key made too many requests (HTTP 429%s). The lamp keeps the last weather and retries with growing pauses; if it keeps happening, raise weather.interval or check the key's plan.", said)
	case status >= 500:
		return p.failure(StatusError, "OpenWeatherMap had a server error (HTTP %d%s). This is usually temporary; the lamp keeps the last weather and retries.", status, said)
	}
	return p.failure(StatusError, "OpenWeatherMap answered HTTP %d%s. The lamp keeps the last weather and retries; if it persists, check weather.endpoint and any proxy in between.", status, said)
}

// requestFailure explains an error from the request (wrapped in
// *url.Error by http.Client) or from reading and decoding the answer.
func (p *Poller) requestFailure(err error) *fetchFailure {
	// *url.Error repeats the request URL, which holds the API key: keep
	// only what went wrong.
	var urlErr *url.Error
	fromRequest := errors.As(err, &urlErr)
	if fromRequest {
		err = urlErr.Err
	}
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		return p.failure(StatusError, "OpenWeatherMap did not answer within %s. Check this server's internet connection; the lamp keeps the last weather and retries.", p.timeout)
	case !fromRequest:
		return p.failure(StatusError, "OpenWeatherMap sent an answer that is not weather data (%v). The lamp keeps the last weather and retries; if it persists, check weather.endpoint and any proxy in between.", err)
	}
	return p.failure(StatusError, "Could not reach OpenWeatherMap (%v). Check this server's internet connection and DNS; the lamp keeps the last weather and retries.", err)
}

// failure builds a fetchFailure and makes sure the API key never reaches a
// log or the UI.
func (p *Poller) failure(status, format string, args ...any) *fetchFailure {
	msg := fmt.Sprintf(format, args...)
	if p.apiKey != "" {
		msg = strings.ReplaceAll(msg, p.apiKey, "<api key>")
	}
	return &fetchFailure{status: status, message: msg}
}

// maxAPIMessage bounds the part of OpenWeatherMap's error message that is
// repeated to the person.
const maxAPIMessage = 200

// apiErrorMessage extracts "message" from an OpenWeatherMap error body
// such as {"cod":"404","message":"city not found"} ("cod" is a string or a
// number depending on the error). Anything else gives "". The message is
// cut to a readable length and stripped of control characters.
func apiErrorMessage(body []byte) string {
	var apiErr struct {
		Message string `json:"message"`
	}
	if err := json.Unmarshal(body, &apiErr); err != nil {
		return ""
	}
	var b strings.Builder
	n := 0
	for _, r := range strings.TrimSpace(apiErr.Message) {
		if n >= maxAPIMessage {
			b.WriteString("…")
			break
		}
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			r = ' '
		}
		b.WriteRune(r)
		n++
	}
	return strings.TrimSpace(b.String())
}
