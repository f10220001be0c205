package automation

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/invalid"
)

// A schedule's rule is small (a clock time or a sun event with an offset,
// on some weekdays), so it is parsed here: cron expressions have no sun
// events and would make "06:30 on weekdays" harder to write, not easier.

// At is a parsed "at": a wall-clock time, or a sun event plus an offset.
type At struct {
	Sun    string // "", "sunrise" or "sunset"
	Clock  int    // minutes after midnight, when Sun is ""
	Offset time.Duration
}

// maxSunOffset keeps "sunrise-30m" meaning the same day's sunrise.
const maxSunOffset = 12 * time.Hour

// ParseAt reads "HH:MM", "sunrise", "sunset", "sunrise-30m", "sunset+1h15m".
func ParseAt(s string) (At, error) {
	for _, ev := range []string{"sunrise", "sunset"} {
		rest, ok := strings.CutPrefix(s, ev)
		if !ok {
			continue
		}
		a := At{Sun: ev}
		if rest == "" {
			return a, nil
		}
		if rest[0] != '+' && rest[0] != '-' {
			return At{}, invalid.Field("at", "%q: after %s write + or - and a duration, like %s-30m", s, ev, ev)
		}
		d, err := time.ParseDuration(rest[1:])
		if err != nil || d < 0 || d > maxSunOffset || d%time.Minute != 0 {
			return At{}, invalid.Field("at", "%q: the offset must be whole minutes up to 12h, like %s-30m or %s+1h15m", s, ev, ev)
		}
		if rest[0] == '-' {
			d = -d
		}
		a.Offset = d
		return a, nil
	}
	hh, mm, ok := strings.Cut(s, ":")
	h, herr := strconv.Atoi(hh)
	m, merr := strconv.Atoi(mm)
	if !ok || herr != nil || merr != nil || !digits(hh) || !digits(mm) {
		return At{}, invalid.Field("at", "%q is not a time; write HH:MM (24-hour, like 06:30), sunrise or sunset (with an offset like sunrise-30m)", s)
	}
	if h > 23 || m > 59 {
		return At{}, invalid.Field("at", "%q is not a time of day: hours are 00-23 and minutes 00-59", s)
	}
	return At{Clock: h*60 + m}, nil
}

// digits is two decimal digits.
func digits(s string) bool {
	return len(s) == 2 && s[0] >= '0' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9'
}

func (a At) String() string {
	if a.Sun == "" {
		return fmt.Sprintf("%02d:%02d", a.Clock/60, a.Clock%60)
	}
	switch {
	case a.Offset > 0:
		return a.Sun + "+" + shortDuration(a.Offset)
	case a.Offset < 0:
		return a.Sun + "-" + shortDuration(-a.Offset)
	}
	return a.Sun
}

// shortDuration writes 90m as "1h30m", not "1h30m0s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Days are the weekday names of "days", in the week's order.
var Days = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// ParseDays reads "days" into a set; empty means every day.
func ParseDays(days []string) ([7]bool, error) {
	var set [7]bool
	for i, d := range days {
		w := slices.Index(Days, strings.ToLower(d))
		if w < 0 {
			return set, invalid.Field(fmt.Sprintf("days[%d]", i), "%q is not a day; use mon, tue, wed, thu, fri, sat or sun", d)
		}
		if set[w] {
			return set, invalid.Field(fmt.Sprintf("days[%d]", i), "%q is listed twice; list each day once", d)
		}
		set[w] = true
	}
	if len(days) == 0 {
		for i := range set {
			set[i] = true
		}
	}
	return set, nil
}

// The bounds of "in" and "fade".
const (
	MaxIn   = 7 * 24 * time.Hour
	MaxFade = 4 * time.Hour
)

// ParseDuration reads "in" or "fade": a Go duration (45m, 1h30m), positive,
// whole seconds, at most max.
func ParseDuration(name, s string, max time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d%time.Second != 0 {
		return 0, invalid.Field(name, "%q is not a duration; write whole seconds, minutes or hours like 30s, 45m or 1h30m", s)
	}
	if d > max {
		return 0, invalid.Field(name, "%s is longer than %s, the most allowed", s, shortDuration(max))
	}
	return d, nil
}
