package weather

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/cloudcloud/cloudcloud/protocol"
)

// Code is a weather code of the lamp protocol; protocol.WeatherCode owns
// the codes and their names.
type Code = protocol.WeatherCode

// The weather codes, by the names the condition table uses.
const (
	CodeSunrise = protocol.WeatherSunrise
	CodeSunset  = protocol.WeatherSunset
	CodeClear   = protocol.WeatherClear
	CodeCloudy  = protocol.WeatherCloudy
	CodeRain    = protocol.WeatherRain
	CodeStorm   = protocol.WeatherStorm
	CodeSnow    = protocol.WeatherSnow
	CodeMist    = protocol.WeatherMist
	CodeWindy   = protocol.WeatherWindy
)

// Reading is what the lamp shows in weather mode.
type Reading struct {
	Code      Code    `json:"code"`
	Intensity float64 `json:"intensity"` // in the code's range (protocol.IntensityRange), rounded to two decimals
}

// clearSky is what weather mode shows without any observation: the
// documented default of the HTTP contract (code 3, intensity 9).
var clearSky = Reading{Code: CodeClear, Intensity: 9}

// Observation is what OpenWeatherMap said, kept so the UI can explain the
// reading.
type Observation struct {
	ConditionID int       `json:"condition_id"` // the primary condition (the first one OWM lists)
	Main        string    `json:"main"`         // e.g. "Clouds"
	Description string    `json:"description"`  // e.g. "broken clouds"
	CloudCover  int       `json:"cloud_cover"`  // %
	WindSpeed   float64   `json:"wind_speed"`   // m/s
	RainMM      float64   `json:"rain_mm"`      // last 1h
	SnowMM      float64   `json:"snow_mm"`      // last 1h
	TempC       float64   `json:"temp_c"`
	Place       string    `json:"place"`
	Lat         float64   `json:"lat"` // where OWM says the place is: schedules' sunrise and sunset for a city
	Lon         float64   `json:"lon"`
	Sunrise     time.Time `json:"sunrise"` // zero when OWM gave none (polar day or night)
	Sunset      time.Time `json:"sunset"`
	ObservedAt  time.Time `json:"observed_at"`
}

// condition is one row of the OpenWeatherMap condition table.
type condition struct {
	id        int
	code      Code
	intensity float64
	name      string // OWM's own description, for the reader and the tests
}

// conditionTable covers every id of the OpenWeatherMap condition list
// (https://openweathermap.org/weather-conditions). Within each group the
// intensity grows with severity. Rows are ordered by id.
var conditionTable = []condition{
	// 2xx thunderstorm → storm. Drizzle storms are the mildest, "heavy" the worst.
	{200, CodeStorm, 6, "thunderstorm with light rain"},
	{201, CodeStorm, 7, "thunderstorm with rain"},
	{202, CodeStorm, 9, "thunderstorm with heavy rain"},
	{210, CodeStorm, 5, "light thunderstorm"},
	{211, CodeStorm, 7, "thunderstorm"},
	{212, CodeStorm, 9, "heavy thunderstorm"},
	{221, CodeStorm, 8, "ragged thunderstorm"},
	{230, CodeStorm, 5, "thunderstorm with light drizzle"},
	{231, CodeStorm, 6, "thunderstorm with drizzle"},
	{232, CodeStorm, 7, "thunderstorm with heavy drizzle"},

	// 3xx drizzle → rain, at the low end of the rain scale.
	{300, CodeRain, 1, "light intensity drizzle"},
	{301, CodeRain, 2, "drizzle"},
	{302, CodeRain, 3, "heavy intensity drizzle"},
	{310, CodeRain, 2, "light intensity drizzle rain"},
	{311, CodeRain, 3, "drizzle rain"},
	{312, CodeRain, 4, "heavy intensity drizzle rain"},
	{313, CodeRain, 4, "shower rain and drizzle"},
	{314, CodeRain, 5, "heavy shower rain and drizzle"},
	{321, CodeRain, 3, "shower drizzle"},

	// 5xx rain → rain, light 3 up to very heavy and extreme 9. Freezing rain falls as ice: snow.
	{500, CodeRain, 3, "light rain"},
	{501, CodeRain, 5, "moderate rain"},
	{502, CodeRain, 7, "heavy intensity rain"},
	{503, CodeRain, 8, "very heavy rain"},
	{504, CodeRain, 9, "extreme rain"},
	{511, CodeSnow, 6, "freezing rain"},
	{520, CodeRain, 4, "light intensity shower rain"},
	{521, CodeRain, 6, "shower rain"},
	{522, CodeRain, 8, "heavy intensity shower rain"},
	{531, CodeRain, 6, "ragged shower rain"},

	// 6xx snow → snow; sleet and rain-and-snow read as snow too.
	{600, CodeSnow, 3, "light snow"},
	{601, CodeSnow, 5, "snow"},
	{602, CodeSnow, 8, "heavy snow"},
	{611, CodeSnow, 5, "sleet"},
	{612, CodeSnow, 4, "light shower sleet"},
	{613, CodeSnow, 5, "shower sleet"},
	{615, CodeSnow, 4, "light rain and snow"},
	{616, CodeSnow, 6, "rain and snow"},
	{620, CodeSnow, 4, "light shower snow"},
	{621, CodeSnow, 6, "shower snow"},
	{622, CodeSnow, 9, "heavy shower snow"},

	// 7xx atmosphere → mist, denser or more hazardous reads stronger.
	// Squalls and tornadoes are wind events: windy.
	{701, CodeMist, 4, "mist"},
	{711, CodeMist, 6, "smoke"},
	{721, CodeMist, 3, "haze"},
	{731, CodeMist, 7, "sand/dust whirls"},
	{741, CodeMist, 7, "fog"},
	{751, CodeMist, 6, "sand"},
	{761, CodeMist, 6, "dust"},
	{762, CodeMist, 9, "volcanic ash"},
	{771, CodeWindy, 8, "squalls"},
	{781, CodeWindy, 9, "tornado"},

	// 800 clear (9, the same as the no-key default), 80x clouds: the
	// intensity here is only the middle of the band in cloudBands; the
	// reported cloud cover decides.
	{800, CodeClear, 9, "clear sky"},
	{801, CodeCloudy, 2, "few clouds"},
	{802, CodeCloudy, 4, "scattered clouds"},
	{803, CodeCloudy, 7, "broken clouds"},
	{804, CodeCloudy, 9, "overcast clouds"},
}

// cloudBand bounds the cloud intensity of one cloud id, so that an
// inconsistent answer ("overcast" with 0 % cover) still reads like its name.
type cloudBand struct{ min, max float64 }

// cloudBands follow OWM's cover ranges for the ids (11-25 %, 25-50 %,
// 51-84 %, 85-100 %) after round(cover/10).
var cloudBands = map[int]cloudBand{
	801: {1, 3},
	802: {3, 5},
	803: {5, 8},
	804: {8, 10},
}

var conditionByID = func() map[int]condition {
	m := make(map[int]condition, len(conditionTable))
	for _, c := range conditionTable {
		m[c.id] = c
	}
	return m
}()

// fallbackByHundred maps an id OWM may add later to the code of its group.
var fallbackByHundred = map[int]Code{
	2: CodeStorm,
	3: CodeRain,
	5: CodeRain,
	6: CodeSnow,
	7: CodeMist,
	8: CodeCloudy,
	9: CodeWindy, // the retired 9xx ids were extreme and wind conditions
}

// fallbackIntensity is the intensity of an id missing from conditionTable.
const fallbackIntensity = 5

// DefaultWindBeaufort is the Beaufort number from which wind shows as windy
// (6, "strong breeze", 10.8 m/s) when no other is configured.
const DefaultWindBeaufort = 6

// beaufortFloor holds the lowest wind speed in m/s of Beaufort numbers
// 1-12 (WMO table); index 0 is Beaufort 1.
var beaufortFloor = [12]float64{0.5, 1.6, 3.4, 5.5, 8.0, 10.8, 13.9, 17.2, 20.8, 24.5, 28.5, 32.7}

// Beaufort returns the Beaufort number 0-12 of a wind speed in m/s.
// Negative or NaN speeds count as calm.
func Beaufort(speed float64) int {
	b := 0
	for i, floor := range beaufortFloor {
		if speed >= floor {
			b = i + 1
		}
	}
	return b
}

// windIntensity maps a Beaufort number onto the lamp scale: Beaufort 6 is
// 5, each step up about one more, whole numbers, 1 to 9 as windy allows
// (Beaufort 11 and 12 are both 9).
func windIntensity(beaufort int) float64 {
	v := math.Round(5 + float64(beaufort-6)*5/6)
	return math.Max(1, math.Min(9, v))
}

// mapWithReason turns an observation into a lamp reading (the condition
// table, cloud cover and wind rules; sunrise and sunset are sunReading's
// job) and the sentence that explains it, e.g. "broken clouds, 75 % cover
// → cloudy, intensity 8". windBeaufort is the Beaufort number from which
// wind shows as windy; 0 or less means DefaultWindBeaufort, more than 12
// switches wind off.
func mapWithReason(o Observation, windBeaufort int) (Reading, string) {
	if windBeaufort <= 0 {
		windBeaufort = DefaultWindBeaufort
	}
	name := conditionName(o)
	cover := min(max(o.CloudCover, 0), 100)

	var r Reading
	var why []string // the facts behind the reading, after the condition name
	row, known := conditionByID[o.ConditionID]
	switch {
	case known:
		r = Reading{Code: row.code, Intensity: row.intensity}
	case fallbackByHundred[o.ConditionID/100] != 0 && o.ConditionID > 0:
		r = Reading{Code: fallbackByHundred[o.ConditionID/100], Intensity: fallbackIntensity}
		why = append(why, fmt.Sprintf("unknown id %d, read by its group", o.ConditionID))
	default:
		// Not an OWM id at all: let the cloud cover decide between clear and cloudy.
		why = append(why, fmt.Sprintf("unknown id %d", o.ConditionID))
		if cover > 10 {
			r = Reading{Code: CodeCloudy, Intensity: max(1, math.Round(float64(cover)/10))}
			why = append(why, fmt.Sprintf("%d %% cover", cover))
		} else {
			r = Reading{Code: CodeClear, Intensity: fallbackIntensity}
		}
	}

	if band, ok := cloudBands[o.ConditionID]; ok {
		r.Intensity = math.Min(band.max, math.Max(band.min, math.Round(float64(cover)/10)))
		why = append(why, fmt.Sprintf("%d %% cover", cover))
	}
	switch {
	case r.Code == CodeRain && o.RainMM > 0:
		why = append(why, fmt.Sprintf("%s mm rain in the last hour", formatNumber(o.RainMM)))
	case r.Code == CodeSnow && o.SnowMM > 0:
		why = append(why, fmt.Sprintf("%s mm snow in the last hour", formatNumber(o.SnowMM)))
	}

	// OWM has no wind condition ids, so strong wind is read from the speed.
	// Precipitation and storms say more about the sky and keep their code;
	// wind beats a calm-looking sky (clear, clouds, mist) and strengthens
	// squalls and tornadoes.
	if windBeaufort <= 12 {
		bft := Beaufort(o.WindSpeed)
		if bft >= windBeaufort {
			w := windIntensity(bft)
			switch r.Code {
			case CodeClear, CodeCloudy, CodeMist:
				r = Reading{Code: CodeWindy, Intensity: w}
				why = append(why, fmt.Sprintf("wind %s m/s (Beaufort %d)", formatNumber(o.WindSpeed), bft))
			case CodeWindy:
				r.Intensity = math.Max(r.Intensity, w)
				why = append(why, fmt.Sprintf("wind %s m/s (Beaufort %d)", formatNumber(o.WindSpeed), bft))
			}
		}
	}

	r.Intensity = roundIntensity(r.Code, r.Intensity)
	parts := append([]string{name}, why...)
	return r, fmt.Sprintf("%s → %s, intensity %s", strings.Join(parts, ", "), r.Code, formatNumber(r.Intensity))
}

// conditionName is how the explanation names what OWM reported.
func conditionName(o Observation) string {
	switch {
	case strings.TrimSpace(o.Description) != "":
		return strings.TrimSpace(o.Description)
	case strings.TrimSpace(o.Main) != "":
		return strings.TrimSpace(o.Main)
	}
	if row, ok := conditionByID[o.ConditionID]; ok {
		return row.name
	}
	return "unnamed condition"
}

// roundIntensity clamps to the range of the code (1-9 for codes 3 and
// 5-9, 0-10 for the others) and rounds to the two decimals the protocol
// allows. NaN reads as the lowest value so a broken input never reaches a
// lamp.
func roundIntensity(c Code, v float64) float64 {
	return protocol.ClampIntensity(c, protocol.RoundIntensity(v)).Float()
}

// formatNumber writes a number the way the protocol writes intensities:
// no trailing zeros, at most two decimals.
func formatNumber(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}
