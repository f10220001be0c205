package weather

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"unicode"

	"github.com/cloudcloud/cloudcloud/internal/invalid"
)

// withDefaults fills the zero values of o with the defaults.
func (o Options) withDefaults() Options {
	o.APIKey = strings.TrimSpace(o.APIKey)
	o.City = strings.TrimSpace(o.City)
	o.Interval = orDefault(o.Interval, DefaultInterval)
	o.SunTransition = orDefault(o.SunTransition, DefaultSunTransition)
	o.Timeout = orDefault(o.Timeout, DefaultTimeout)
	o.WindBeaufort = orDefault(o.WindBeaufort, DefaultWindBeaufort)
	o.Endpoint = orDefault(strings.TrimSpace(o.Endpoint), DefaultEndpoint)
	return o
}

// Validate checks the options as NewPoller takes them (zero values are the
// defaults) and returns every problem at once, each an *invalid.Error that
// names the setting (weather.city, ...). It is the one place these rules
// live: the config loader calls it at start, NewPoller again.
func (o Options) Validate() error {
	o = o.withDefaults()
	var errs []error
	add := func(key, format string, args ...any) { errs = append(errs, invalid.Field(key, format, args...)) }

	if len(o.APIKey) > maxAPIKeyLength {
		add("weather.api_key", "is %d characters long; OpenWeatherMap keys have 32 (at most %d), check that nothing was pasted with it", len(o.APIKey), maxAPIKeyLength)
	} else if i := strings.IndexFunc(o.APIKey, func(r rune) bool {
		return !(r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_'))
	}); i >= 0 {
		// The library puts the key into the URL unescaped; the key itself
		// never appears in the message.
		add("weather.api_key", "contains %q; OpenWeatherMap keys are letters and digits only, check for quotes or spaces copied with it", []rune(o.APIKey[i:])[0])
	}

	var where []string
	if o.CityID != 0 {
		where = append(where, fmt.Sprintf("city_id (%d)", o.CityID))
	}
	if o.City != "" {
		where = append(where, fmt.Sprintf("city (%q)", o.City))
	}
	if o.Lat != nil || o.Lon != nil {
		where = append(where, "lat+lon")
	}
	switch {
	case len(where) > 1:
		verb := "are both set"
		if len(where) > 2 {
			verb = "are all set"
		}
		add("weather", "%s and %s %s; set only one of city_id, city or lat+lon", strings.Join(where[:len(where)-1], ", "), where[len(where)-1], verb)
	case len(where) == 0 && o.APIKey != "":
		add("weather", "an API key is set but no place: set weather.city_id, weather.city, or weather.lat and weather.lon")
	}
	if o.CityID < 0 {
		add("weather.city_id", "%d is negative; use the positive id from openweathermap.org (look yours up at https://openweathermap.org/find), or 0 for unset", o.CityID)
	}
	switch {
	case o.Lat != nil && o.Lon == nil:
		add("weather.lat", "%g is set but weather.lon is not; set both or neither", *o.Lat)
	case o.Lon != nil && o.Lat == nil:
		add("weather.lon", "%g is set but weather.lat is not; set both or neither", *o.Lon)
	}
	checkCoordinate := func(key string, v *float64, limit float64) {
		if v != nil && (math.IsNaN(*v) || *v < -limit || *v > limit) {
			add(key, "%s is out of range -%s to %s", formatCoordinate(*v), formatCoordinate(limit), formatCoordinate(limit))
		}
	}
	checkCoordinate("weather.lat", o.Lat, 90)
	checkCoordinate("weather.lon", o.Lon, 180)

	if o.Interval < minInterval {
		add("weather.interval", "%s is too short; use %s or more (OpenWeatherMap updates about every 10 minutes)", o.Interval, minInterval)
	}
	if o.SunTransition < 0 || o.SunTransition > maxSunTransition {
		add("weather.sun_transition", "%s is out of range 0s-%s", o.SunTransition, maxSunTransition)
	}
	if o.Timeout < 0 || o.Timeout > o.Interval {
		add("weather.timeout", "%s must be positive and at most weather.interval (%s)", o.Timeout, o.Interval)
	}
	if o.WindBeaufort < 1 || o.WindBeaufort > 12 {
		add("weather.wind_beaufort", "%d is out of range 1-12", o.WindBeaufort)
	}
	if _, err := parseEndpoint(o.Endpoint); err != nil {
		add("weather.endpoint", "%v", err)
	}
	return errors.Join(errs...)
}

// parseEndpoint reads weather.endpoint.
func parseEndpoint(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an absolute http(s) URL; write e.g. %q", raw, DefaultEndpoint)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q must not have a query or fragment; give only scheme, host and an optional path", raw)
	}
	return u, nil
}

// orDefault returns v, or def when v is the zero value.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
