package automation

import (
	"math"
	"time"
)

// SunTimes returns the sunrise and sunset of the local date of day (in
// day's location) at latitude lat and longitude lon (degrees, north and
// east positive). ok is false in polar day or night, when the sun does not
// cross the horizon that date.
//
// It is the sunrise equation as NOAA and the astronomical almanacs give it
// (mean anomaly, equation of the centre, ecliptic longitude, declination,
// hour angle at -0.833°, which allows for refraction and the sun's radius):
// within a minute or two of the almanac away from the poles, which is all
// a lamp schedule needs. No sun-times module is served by the module proxy
// this project builds from, so these twenty lines stand in for one.
func SunTimes(day time.Time, lat, lon float64) (rise, set time.Time, ok bool) {
	const (
		j2000 = 2451545.0 // Julian date of 2000-01-01 12:00 UTC
		unix0 = 2440587.5 // Julian date of the Unix epoch
		rad   = math.Pi / 180
	)
	y, m, d := day.Date()
	noon := time.Date(y, m, d, 12, 0, 0, 0, day.Location())
	jd := float64(noon.Unix())/86400 + unix0
	n := math.Round(jd - j2000 + lon/360) // the day whose solar noon is nearest this local noon
	jStar := n - lon/360
	mean := math.Mod(357.5291+0.98560028*jStar, 360)
	centre := 1.9148*math.Sin(mean*rad) + 0.0200*math.Sin(2*mean*rad) + 0.0003*math.Sin(3*mean*rad)
	eclLon := math.Mod(mean+centre+180+102.9372, 360)
	transit := j2000 + jStar + 0.0053*math.Sin(mean*rad) - 0.0069*math.Sin(2*eclLon*rad)
	sinDecl := math.Sin(eclLon*rad) * math.Sin(23.4397*rad)
	cosDecl := math.Cos(math.Asin(sinDecl))
	cosHour := (math.Sin(-0.833*rad) - math.Sin(lat*rad)*sinDecl) / (math.Cos(lat*rad) * cosDecl)
	if cosHour < -1 || cosHour > 1 || math.IsNaN(cosHour) {
		return time.Time{}, time.Time{}, false
	}
	hour := math.Acos(cosHour) / rad / 360 // half the day length, in days
	at := func(j float64) time.Time {
		return time.Unix(0, int64((j-unix0)*86400*1e9)).In(day.Location()).Truncate(time.Second)
	}
	return at(transit - hour), at(transit + hour), true
}
