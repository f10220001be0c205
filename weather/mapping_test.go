package weather

import (
	"math"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/protocol"
)

// TestMapConditionTable checks every id of the OpenWeatherMap condition
// list, one row each, with calm wind and a cloud cover that fits the id.
func TestMapConditionTable(t *testing.T) {
	tests := []struct {
		id            int
		cover         int
		wantCode      Code
		wantIntensity float64
	}{
		// thunderstorm
		{200, 90, CodeStorm, 6},
		{201, 90, CodeStorm, 7},
		{202, 90, CodeStorm, 9},
		{210, 90, CodeStorm, 5},
		{211, 90, CodeStorm, 7},
		{212, 90, CodeStorm, 9},
		{221, 90, CodeStorm, 8},
		{230, 90, CodeStorm, 5},
		{231, 90, CodeStorm, 6},
		{232, 90, CodeStorm, 7},
		// drizzle
		{300, 90, CodeRain, 1},
		{301, 90, CodeRain, 2},
		{302, 90, CodeRain, 3},
		{310, 90, CodeRain, 2},
		{311, 90, CodeRain, 3},
		{312, 90, CodeRain, 4},
		{313, 90, CodeRain, 4},
		{314, 90, CodeRain, 5},
		{321, 90, CodeRain, 3},
		// rain
		{500, 90, CodeRain, 3},
		{501, 90, CodeRain, 5},
		{502, 90, CodeRain, 7},
		{503, 90, CodeRain, 8},
		{504, 90, CodeRain, 9},
		{511, 90, CodeSnow, 6},
		{520, 90, CodeRain, 4},
		{521, 90, CodeRain, 6},
		{522, 90, CodeRain, 8},
		{531, 90, CodeRain, 6},
		// snow
		{600, 90, CodeSnow, 3},
		{601, 90, CodeSnow, 5},
		{602, 90, CodeSnow, 8},
		{611, 90, CodeSnow, 5},
		{612, 90, CodeSnow, 4},
		{613, 90, CodeSnow, 5},
		{615, 90, CodeSnow, 4},
		{616, 90, CodeSnow, 6},
		{620, 90, CodeSnow, 4},
		{621, 90, CodeSnow, 6},
		{622, 90, CodeSnow, 9},
		// atmosphere
		{701, 20, CodeMist, 4},
		{711, 20, CodeMist, 6},
		{721, 20, CodeMist, 3},
		{731, 20, CodeMist, 7},
		{741, 20, CodeMist, 7},
		{751, 20, CodeMist, 6},
		{761, 20, CodeMist, 6},
		{762, 20, CodeMist, 9},
		{771, 20, CodeWindy, 8},
		{781, 20, CodeWindy, 9},
		// clear and clouds
		{800, 0, CodeClear, 9},
		{801, 20, CodeCloudy, 2},
		{802, 40, CodeCloudy, 4},
		{803, 75, CodeCloudy, 8},
		{804, 100, CodeCloudy, 10},
	}
	tested := make(map[int]bool)
	for _, tt := range tests {
		tested[tt.id] = true
		o := Observation{ConditionID: tt.id, CloudCover: tt.cover, WindSpeed: 2}
		got := mapReading(o, DefaultWindBeaufort)
		if got.Code != tt.wantCode || got.Intensity != tt.wantIntensity {
			t.Errorf("id %d (%s): got code %d intensity %v, want code %d intensity %v",
				tt.id, conditionByID[tt.id].name, got.Code, got.Intensity, tt.wantCode, tt.wantIntensity)
		}
	}
	// The table in the code and this test must list the same ids.
	for _, c := range conditionTable {
		if !tested[c.id] {
			t.Errorf("id %d (%s) is in the condition table but not in this test", c.id, c.name)
		}
	}
	if len(tested) != len(conditionTable) {
		t.Errorf("this test has %d ids, the condition table %d", len(tested), len(conditionTable))
	}
}

// TestSeverityGrows checks the promise of the table: within each family
// the plainly "heavier" id never reads weaker.
func TestSeverityGrows(t *testing.T) {
	chains := [][]int{
		{210, 211, 212},
		{230, 231, 232},
		{300, 301, 302},
		{310, 311, 312},
		{500, 501, 502, 503, 504},
		{520, 521, 522},
		{600, 601, 602},
		{620, 621, 622},
	}
	for _, chain := range chains {
		for i := 1; i < len(chain); i++ {
			lo, hi := conditionByID[chain[i-1]], conditionByID[chain[i]]
			if hi.intensity <= lo.intensity {
				t.Errorf("%d %q (%v) should read stronger than %d %q (%v)", hi.id, hi.name, hi.intensity, lo.id, lo.name, lo.intensity)
			}
		}
	}
}

func TestMapCloudCover(t *testing.T) {
	tests := []struct {
		name  string
		id    int
		cover int
		want  float64
	}{
		{"few clouds at 0 % still shows some", 801, 0, 1},
		{"few clouds 11 %", 801, 11, 1},
		{"few clouds 25 % rounds up", 801, 25, 3},
		{"scattered 25 %", 802, 25, 3},
		{"scattered 40 %", 802, 40, 4},
		{"scattered 50 %", 802, 50, 5},
		{"broken 51 %", 803, 51, 5},
		{"broken 75 % rounds half up", 803, 75, 8},
		{"broken 84 %", 803, 84, 8},
		{"overcast 85 % rounds half up", 804, 85, 9},
		{"overcast 100 %", 804, 100, 10},
		{"overcast with an impossible 0 % keeps its band", 804, 0, 8},
		{"negative cover is clamped", 803, -40, 5},
		{"cover above 100 is clamped", 804, 250, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mapReading(Observation{ConditionID: tt.id, CloudCover: tt.cover}, 0)
			if got.Code != CodeCloudy || got.Intensity != tt.want {
				t.Errorf("got %+v, want cloudy %v", got, tt.want)
			}
		})
	}
}

func TestMapWind(t *testing.T) {
	tests := []struct {
		name     string
		id       int
		cover    int
		speed    float64
		beaufort int
		want     Reading
	}{
		{"clear, just below Beaufort 6", 800, 0, 10.7, 6, Reading{CodeClear, 9}},
		{"clear at Beaufort 6", 800, 0, 10.8, 6, Reading{CodeWindy, 5}},
		{"clouds at Beaufort 7", 803, 75, 15, 6, Reading{CodeWindy, 6}},
		{"mist at Beaufort 9", 701, 20, 21, 6, Reading{CodeWindy, 8}},
		{"haze at Beaufort 10", 721, 0, 25, 6, Reading{CodeWindy, 8}},
		{"clear at Beaufort 11", 800, 0, 30, 6, Reading{CodeWindy, 9}},
		{"clear at Beaufort 12", 800, 0, 32.7, 6, Reading{CodeWindy, 9}},
		{"hurricane beyond the scale", 800, 0, 80, 6, Reading{CodeWindy, 9}},
		{"rain keeps its code in a gale", 501, 100, 30, 6, Reading{CodeRain, 5}},
		{"drizzle keeps its code", 300, 100, 12, 6, Reading{CodeRain, 1}},
		{"storm keeps its code", 211, 100, 40, 6, Reading{CodeStorm, 7}},
		{"snow keeps its code", 601, 100, 25, 6, Reading{CodeSnow, 5}},
		{"sleet keeps snow", 611, 100, 25, 6, Reading{CodeSnow, 5}},
		{"squalls keep the stronger of table and wind", 771, 20, 11, 6, Reading{CodeWindy, 8}},
		{"squalls grow with a hurricane", 771, 20, 33, 6, Reading{CodeWindy, 9}},
		{"lower threshold Beaufort 4", 800, 0, 5.5, 4, Reading{CodeWindy, 3}},
		{"lower threshold, below it", 800, 0, 5.4, 4, Reading{CodeClear, 9}},
		{"threshold 0 means the default 6", 800, 0, 10.8, 0, Reading{CodeWindy, 5}},
		{"threshold 0, default not reached", 800, 0, 9, 0, Reading{CodeClear, 9}},
		{"threshold above 12 switches wind off", 800, 0, 40, 13, Reading{CodeClear, 9}},
		{"NaN speed is calm", 800, 0, math.NaN(), 6, Reading{CodeClear, 9}},
		{"negative speed is calm", 800, 0, -20, 6, Reading{CodeClear, 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Observation{ConditionID: tt.id, CloudCover: tt.cover, WindSpeed: tt.speed}
			if got := mapReading(o, tt.beaufort); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestMapUnknownIDs(t *testing.T) {
	tests := []struct {
		id    int
		cover int
		want  Reading
	}{
		{299, 50, Reading{CodeStorm, 5}},
		{399, 50, Reading{CodeRain, 5}},
		{599, 50, Reading{CodeRain, 5}},
		{699, 50, Reading{CodeSnow, 5}},
		{799, 50, Reading{CodeMist, 5}},
		{899, 50, Reading{CodeCloudy, 5}},
		{905, 0, Reading{CodeWindy, 5}},
		{400, 0, Reading{CodeClear, 5}},
		{0, 0, Reading{CodeClear, 5}},
		{0, 63, Reading{CodeCloudy, 6}},
		{-250, 0, Reading{CodeClear, 5}},
		{150, 10, Reading{CodeClear, 5}},
		{1234, 95, Reading{CodeCloudy, 10}},
	}
	for _, tt := range tests {
		if got := mapReading(Observation{ConditionID: tt.id, CloudCover: tt.cover}, 0); got != tt.want {
			t.Errorf("id %d cover %d: got %+v, want %+v", tt.id, tt.cover, got, tt.want)
		}
	}
}

func TestBeaufort(t *testing.T) {
	tests := []struct {
		speed float64
		want  int
	}{
		{math.NaN(), 0}, {-1, 0}, {0, 0}, {0.49, 0}, {0.5, 1}, {1.6, 2}, {3.4, 3}, {5.5, 4},
		{8.0, 5}, {10.79, 5}, {10.8, 6}, {13.9, 7}, {17.2, 8}, {20.8, 9}, {24.5, 10},
		{28.5, 11}, {32.69, 11}, {32.7, 12}, {math.Inf(1), 12},
	}
	for _, tt := range tests {
		if got := Beaufort(tt.speed); got != tt.want {
			t.Errorf("Beaufort(%v) = %d, want %d", tt.speed, got, tt.want)
		}
	}
}

func TestMapDescription(t *testing.T) {
	tests := []struct {
		name string
		o    Observation
		want string
	}{
		{"clouds", Observation{ConditionID: 803, Description: "broken clouds", CloudCover: 75, WindSpeed: 3},
			"broken clouds, 75 % cover → cloudy, intensity 8"},
		{"rain with amount", Observation{ConditionID: 501, Description: "moderate rain", CloudCover: 100, RainMM: 3.16},
			"moderate rain, 3.16 mm rain in the last hour → rain, intensity 5"},
		{"freezing rain", Observation{ConditionID: 511, Description: "freezing rain", SnowMM: 0.5},
			"freezing rain, 0.5 mm snow in the last hour → snow, intensity 6"},
		{"wind over clear sky", Observation{ConditionID: 800, Description: "clear sky", WindSpeed: 14.2},
			"clear sky, wind 14.2 m/s (Beaufort 7) → windy, intensity 6"},
		{"no description falls back to main", Observation{ConditionID: 741, Main: "Fog"},
			"Fog → mist, intensity 7"},
		{"nothing but the id", Observation{ConditionID: 212},
			"heavy thunderstorm → storm, intensity 9"},
		{"unknown id with a description", Observation{ConditionID: 0, Description: "sparkles", CloudCover: 63},
			"sparkles, unknown id 0, 63 % cover → cloudy, intensity 6"},
		{"unknown id", Observation{ConditionID: 599},
			"unnamed condition, unknown id 599, read by its group → rain, intensity 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got := mapWithReason(tt.o, DefaultWindBeaufort)
			if got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestCodeString(t *testing.T) {
	for c := Code(0); c <= 10; c++ {
		if got := c.String(); got == "" {
			t.Errorf("Code(%d).String() is empty", c)
		}
		if want := c >= 1 && c <= 9; c.Valid() != want {
			t.Errorf("Code(%d).Valid() = %v, want %v", c, c.Valid(), want)
		}
	}
}

func TestRoundIntensity(t *testing.T) {
	tests := []struct {
		code     Code
		in, want float64
	}{
		{CodeCloudy, 0, 0}, {CodeCloudy, 4.374, 4.37}, {CodeCloudy, 4.375, 4.38}, {CodeCloudy, 9.999, 10}, {CodeCloudy, -3, 0}, {CodeCloudy, 12, 10},
		{CodeSunrise, math.NaN(), 0}, {CodeSunset, math.Inf(1), 10}, {CodeSunrise, math.Inf(-1), 0},
		// Codes 3 and 5-9 carry 1-9, as the original server sent.
		{CodeStorm, 10, 9}, {CodeRain, 9.999, 9}, {CodeWindy, 0, 1}, {CodeClear, math.NaN(), 1}, {CodeMist, 4.375, 4.38},
	}
	for _, tt := range tests {
		if got := roundIntensity(tt.code, tt.in); got != tt.want {
			t.Errorf("roundIntensity(%s, %v) = %v, want %v", tt.code, tt.in, got, tt.want)
		}
	}
}

// validReading reports what is wrong with r for a lamp, or "".
func validReading(r Reading) string {
	switch {
	case !r.Code.Valid():
		return "code out of range 1-9"
	case math.IsNaN(r.Intensity) || r.Intensity < 0 || r.Intensity > 10:
		return "intensity out of range 0-10"
	case math.Round(r.Intensity*100)/100 != r.Intensity:
		return "intensity has more than two decimals"
	}
	// 1-9 for codes 3 and 5-9, as the protocol says.
	if _, err := protocol.Weather(r.Code, protocol.RoundIntensity(r.Intensity)); err != nil {
		return err.Error()
	}
	return ""
}

// mapReading is mapWithReason without the explanation.
func mapReading(o Observation, windBeaufort int) Reading {
	r, _ := mapWithReason(o, windBeaufort)
	return r
}

// sunOnly is sunReading without the ramp.
func sunOnly(base Reading, now, sunrise, sunset time.Time, transition time.Duration) Reading {
	r, _ := sunReading(base, now, sunrise, sunset, transition)
	return r
}

func FuzzMap(f *testing.F) {
	f.Add(803, 75, 4.6, 0.0, 0.0, 6)
	f.Add(501, 100, 30.0, 3.2, 0.0, 6)
	f.Add(771, 20, 33.0, 0.0, 0.0, 4)
	f.Add(0, -5, math.NaN(), math.Inf(1), -1.0, -3)
	f.Add(-999999, 1000, math.Inf(-1), 0.0, 0.0, 99)
	f.Fuzz(func(t *testing.T, id, cover int, wind, rain, snow float64, beaufort int) {
		o := Observation{ConditionID: id, CloudCover: cover, WindSpeed: wind, RainMM: rain, SnowMM: snow}
		r, why := mapWithReason(o, beaufort)
		if problem := validReading(r); problem != "" {
			t.Fatalf("mapReading(%+v, %d) = %+v: %s", o, beaufort, r, problem)
		}
		if r.Code == CodeSunrise || r.Code == CodeSunset {
			t.Fatalf("mapReading(%+v) = %+v: Map must not produce sun codes", o, r)
		}
		if why == "" {
			t.Fatalf("mapReading(%+v) gave no explanation", o)
		}
	})
}
