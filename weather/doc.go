// Package weather turns the current weather from OpenWeatherMap into what a
// cloud lamp shows in weather mode: a weather code 1-9 and an intensity
// 0-10 (PROTOCOL.md, "Weather codes").
//
// # Mapping
//
// OpenWeatherMap describes the sky with a condition id
// (https://openweathermap.org/weather-conditions). One table in mapping.go
// gives every id a code and a base intensity; within a group the intensity
// grows with severity, so a light drizzle glows faintly and extreme rain
// reaches 10. The choices that are not obvious:
//
//   - Drizzle (3xx) is rain at the low end of the rain scale (1-5): the
//     lamp has no drizzle animation, and drizzle is light rain.
//   - Freezing rain (511), sleet and rain-and-snow (611-616) read as snow:
//     what comes down is ice, and the snow animation says "cold and wet"
//     better than rain does.
//   - Squalls (771) and tornadoes (781) read as windy: they are wind, not
//     haze, even though OpenWeatherMap files them under atmosphere.
//   - The other atmosphere ids (mist, smoke, haze, sand, dust, fog, ash) are
//     code 8; denser or more hazardous ones read stronger.
//   - Clear sky is intensity 9, the same as the default without a key, so a
//     lamp does not change when a key is added on a clear day.
//   - Clouds (801-804): the intensity follows the reported cloud cover,
//     round(cover/10), kept within the band the id stands for (801 1-3,
//     802 3-5, 803 5-8, 804 8-10) so an inconsistent answer still looks
//     like its name.
//   - OpenWeatherMap has no wind ids, so wind comes from the speed: from
//     the configured Beaufort number (default 6, 10.8 m/s) it shows as
//     windy, Beaufort 6 as 5 up to Beaufort 12 as 10. It replaces clear
//     sky, clouds and mist, which say less than a gale, but not rain, snow
//     or storms, which say more.
//   - An id missing from the table (OpenWeatherMap may add some) falls back
//     to the code of its hundred with intensity 5; a number outside every
//     group lets the cloud cover choose between clear and cloudy.
//   - When OpenWeatherMap lists several conditions, the first (its primary)
//     is used.
//
// # Sunrise and sunset
//
// In the transition (default 40 minutes) before sunrise the lamp shows code
// 1 with the glow ramping linearly from 0 to 10; at sunrise the weather
// takes over. In the transition after sunset it shows code 2 ramping from 0
// to 10, then the weather again. The sun times of the last observation are
// moved by whole days when the observation is old, which is within minutes
// of the truth. During a ramp the poller recomputes often enough that the
// intensity moves in steps of about 0.1; intensities always have at most two
// decimals.
//
// # Failures
//
// Without a key nothing is fetched and the lamp shows a clear sky. With a
// key, every failure (network, timeout, bad key, unknown place, rate limit,
// server error, an answer that is not weather) keeps the last good
// observation and reading, is counted and explained in the Report, and is
// retried after 30 s, doubling up to the poll interval.
package weather
