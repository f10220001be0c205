package weather

import (
	"fmt"
	"time"
)

// day is the shift applied to the sunrise and sunset of an old
// observation. Sun times move by a few minutes a day at most, so the
// observed times moved by whole days are close enough for a glow.
const day = 24 * time.Hour

// sunRamp says whether now falls into a sunrise or sunset transition and
// how far along it is.
type sunRamp struct {
	code      Code          // CodeSunrise or CodeSunset
	intensity float64       // 0..10, not rounded
	event     time.Time     // the sunrise or sunset this ramp belongs to
	offset    time.Duration // event - now: positive before sunrise, negative after sunset
}

// findSunRamp looks for the transition now falls into. The sunrise window
// is [sunrise-transition, sunrise): the glow grows from 0 to 10 and at
// sunrise the weather takes over. The sunset window is
// [sunset, sunset+transition): the glow grows from 0 at sunset to 10 at the
// end. Sunrise and sunset may be of another day than now; they are moved by
// whole days to the occurrence nearest to now (and the neighbours, in case
// the transition is long).
func findSunRamp(now, sunrise, sunset time.Time, transition time.Duration) (sunRamp, bool) {
	if transition <= 0 || now.IsZero() {
		return sunRamp{}, false
	}
	if rises, ok := nearestOccurrences(now, sunrise); ok && !sunrise.IsZero() {
		for _, rise := range rises {
			start := rise.Add(-transition)
			if !now.Before(start) && now.Before(rise) {
				frac := float64(now.Sub(start)) / float64(transition)
				return sunRamp{code: CodeSunrise, intensity: 10 * frac, event: rise, offset: rise.Sub(now)}, true
			}
		}
	}
	if sets, ok := nearestOccurrences(now, sunset); ok && !sunset.IsZero() {
		for _, set := range sets {
			end := set.Add(transition)
			if !now.Before(set) && now.Before(end) {
				frac := float64(now.Sub(set)) / float64(transition)
				return sunRamp{code: CodeSunset, intensity: 10 * frac, event: set, offset: set.Sub(now)}, true
			}
		}
	}
	return sunRamp{}, false
}

// nearestOccurrences returns event moved by whole days to the occurrence
// nearest to now, and the day before and after it. ok is false when the
// two are centuries apart: such a sun time says nothing about today.
func nearestOccurrences(now, event time.Time) (occurrences [3]time.Time, ok bool) {
	const tooFar = 100 * 365 * day
	d := now.Sub(event) // saturates instead of overflowing
	if d > tooFar || d < -tooFar {
		return occurrences, false
	}
	nearest := event.Add(d.Round(day))
	return [3]time.Time{nearest.Add(-day), nearest, nearest.Add(day)}, true
}

// sunReading applies the sunrise and sunset ramps to base: within
// transition before sunrise the lamp shows code 1 ramping from 0 up to 10,
// within transition after sunset code 2 ramping from 0 up to 10; at any
// other time base is returned unchanged (but rounded and clamped), and the
// ramp is nil. Zero sunrise or sunset times (OWM gives none in polar day or
// night) and a transition of 0 or less switch the ramp off.
func sunReading(base Reading, now, sunrise, sunset time.Time, transition time.Duration) (Reading, *sunRamp) {
	ramp, ok := findSunRamp(now, sunrise, sunset, transition)
	if !ok {
		return Reading{Code: base.Code, Intensity: roundIntensity(base.Code, base.Intensity)}, nil
	}
	return Reading{Code: ramp.code, Intensity: roundIntensity(ramp.code, ramp.intensity)}, &ramp
}

// describeRamp explains a sun reading, e.g. "sunrise in 12 min → sunrise,
// intensity 7".
func describeRamp(ramp sunRamp, r Reading) string {
	if ramp.code == CodeSunrise {
		return fmt.Sprintf("sunrise in %s → sunrise, intensity %s", minutes(ramp.offset), formatNumber(r.Intensity))
	}
	return fmt.Sprintf("sunset %s ago → sunset, intensity %s", minutes(-ramp.offset), formatNumber(r.Intensity))
}

// minutes writes a duration for a person: "12 min", "under a minute".
func minutes(d time.Duration) string {
	m := int(d / time.Minute)
	if m < 1 {
		return "under a minute"
	}
	return fmt.Sprintf("%d min", m)
}
