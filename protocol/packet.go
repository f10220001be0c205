// Package protocol holds the cloud lamp wire format of docs/protocol.md:
// the packets the server sends and a strict parser for them. It does no I/O.
//
// Encoding must stay byte-compatible with firmware built for the original
// cloud-cloud server, so every packet is written by one function (AppendTo)
// and tested against the literal examples of the protocol document.
package protocol

import (
	"fmt"
	"strconv"
)

// Kind is the packet kind, the character after "[cc:".
type Kind byte

// The packet kinds of protocol version 1.
const (
	KindOff     Kind = '0'
	KindWeather Kind = '1'
	KindManual  Kind = '2'
	KindReset   Kind = 'r'
	KindUpdate  Kind = 'u'
	KindDebug   Kind = 'd'
)

// IsDisplay reports whether packets of this kind describe what the lamp shows
// (as opposed to a one-off command). Only the newest display packet matters to
// a lamp, so a slow lamp may skip superseded ones; commands are never skipped.
func (k Kind) IsDisplay() bool { return k == KindOff || k == KindWeather || k == KindManual }

func (k Kind) String() string {
	switch k {
	case KindOff:
		return "off"
	case KindWeather:
		return "weather"
	case KindManual:
		return "manual"
	case KindReset:
		return "reset"
	case KindUpdate:
		return "update"
	case KindDebug:
		return "debug"
	}
	return fmt.Sprintf("unknown kind %q", byte(k))
}

// WeatherCode is a weather code of PROTOCOL.md ("Weather codes"): what
// animation a lamp plays in weather mode.
type WeatherCode uint8

// The weather codes a lamp understands.
const (
	WeatherSunrise WeatherCode = 1
	WeatherSunset  WeatherCode = 2
	WeatherClear   WeatherCode = 3
	WeatherCloudy  WeatherCode = 4
	WeatherRain    WeatherCode = 5
	WeatherStorm   WeatherCode = 6
	WeatherSnow    WeatherCode = 7
	WeatherMist    WeatherCode = 8 // mist, smoke, haze, sand, dust, fog, ash
	WeatherWindy   WeatherCode = 9
)

// weatherNames names each weather code for people; index 0 is unused.
var weatherNames = [...]string{"", "sunrise", "sunset", "clear sky", "cloudy", "rain", "storm", "snow", "mist", "windy"}

// Valid reports whether c is one of the codes 1-9.
func (c WeatherCode) Valid() bool { return c >= WeatherSunrise && c <= WeatherWindy }

// String names the code for people: "clear sky", "rain".
func (c WeatherCode) String() string {
	if c.Valid() {
		return weatherNames[c]
	}
	return "code " + strconv.Itoa(int(c))
}

// Intensity is a weather intensity in hundredths: 0 (0) to 1000 (10).
// Hundredths keep "at most two decimals" exact, where a float would not.
type Intensity uint16

// MaxIntensity is intensity 10.
const MaxIntensity Intensity = 1000

// IntensityFromFloat converts 0..10 with at most two decimals, rejecting
// anything else rather than rounding it silently.
func IntensityFromFloat(f float64) (Intensity, error) {
	if f != f || f < 0 || f > 10 {
		return 0, fmt.Errorf("intensity %v is out of range 0-10", f)
	}
	h := f * 100
	r := float64(int64(h + 0.5))
	if d := h - r; d > 1e-6 || d < -1e-6 {
		return 0, fmt.Errorf("intensity %v has more than two decimals", f)
	}
	return Intensity(r), nil
}

// RoundIntensity converts any float to the nearest valid intensity, clamping
// to 0..10; for computed values such as a sunrise ramp.
func RoundIntensity(f float64) Intensity {
	if f != f || f <= 0 {
		return 0
	}
	if f >= 10 {
		return MaxIntensity
	}
	return Intensity(f*100 + 0.5)
}

// Float returns the intensity as a number from 0 to 10.
func (i Intensity) Float() float64 { return float64(i) / 100 }

// AppendTo writes the intensity as the protocol wants it: no decimal point
// for whole numbers, else at most two decimals without trailing zeros.
func (i Intensity) AppendTo(b []byte) []byte {
	b = strconv.AppendUint(b, uint64(i/100), 10)
	frac := i % 100
	switch {
	case frac == 0:
		return b
	case frac%10 == 0:
		return append(b, '.', byte('0'+frac/10))
	default:
		return append(b, '.', byte('0'+frac/10), byte('0'+frac%10))
	}
}

func (i Intensity) String() string { return string(i.AppendTo(nil)) }

// RGB is a colour, one byte per channel.
type RGB struct{ R, G, B uint8 }

// Hex writes the colour as the API does: "#rrggbb", lower case.
func (c RGB) Hex() string {
	const digits = "0123456789abcdef"
	return string([]byte{'#', digits[c.R>>4], digits[c.R&15], digits[c.G>>4], digits[c.G&15], digits[c.B>>4], digits[c.B&15]})
}

// Packet is one message from the server to a lamp. Only the fields of its
// Kind are meaningful; construct packets with the functions below.
type Packet struct {
	Kind      Kind
	Weather   WeatherCode // KindWeather
	Intensity Intensity   // KindWeather
	Color     RGB         // KindManual
	Pulse     uint8       // KindManual: 0-9, 0 = steady
	On        bool        // KindDebug
}

// Off is the state after a fresh install.
func Off() Packet { return Packet{Kind: KindOff} }

// IntensityRange is the intensity a weather code may carry: 1-9 for codes
// 3 and 5-9, as the original server sent (firmware may index a table of
// nine with it); 0-10 for sunrise and sunset (a ramp through the
// transition) and cloudy (the cloud cover).
func IntensityRange(code WeatherCode) (lo, hi Intensity) {
	switch code {
	case WeatherSunrise, WeatherSunset, WeatherCloudy:
		return 0, MaxIntensity
	}
	return 100, 900
}

// ClampIntensity brings i into the range of code.
func ClampIntensity(code WeatherCode, i Intensity) Intensity {
	lo, hi := IntensityRange(code)
	return min(max(i, lo), hi)
}

// Weather shows a weather animation; it checks the code and that the
// intensity is in the code's range.
func Weather(code WeatherCode, intensity Intensity) (Packet, error) {
	if !code.Valid() {
		return Packet{}, fmt.Errorf("weather code %d is out of range 1-9", code)
	}
	if lo, hi := IntensityRange(code); intensity < lo || intensity > hi {
		return Packet{}, fmt.Errorf("intensity %s is out of range %s-%s for weather code %d (%s)", intensity, lo, hi, code, code)
	}
	return Packet{Kind: KindWeather, Weather: code, Intensity: intensity}, nil
}

// Manual shows a colour, steady (pulse 0) or pulsing (1-9).
func Manual(c RGB, pulse int) (Packet, error) {
	if pulse < 0 || pulse > 9 {
		return Packet{}, fmt.Errorf("pulse %d is out of range 0-9", pulse)
	}
	return Packet{Kind: KindManual, Color: c, Pulse: uint8(pulse)}, nil
}

// Reset tells the lamp to reboot.
func Reset() Packet { return Packet{Kind: KindReset} }

// Update tells the lamp to download /firmware.bin and flash it.
func Update() Packet { return Packet{Kind: KindUpdate} }

// Debug switches the lamp's debug logging on or off.
func Debug(on bool) Packet { return Packet{Kind: KindDebug, On: on} }

// AppendTo appends the wire form of p to b. It allocates only if b lacks room,
// so a broadcast can encode once into a reused buffer.
func (p Packet) AppendTo(b []byte) []byte {
	b = append(b, '[', 'c', 'c', ':', byte(p.Kind), ':')
	switch p.Kind {
	case KindWeather:
		b = strconv.AppendUint(b, uint64(p.Weather), 10)
		b = append(b, ':')
		b = p.Intensity.AppendTo(b)
	case KindManual:
		b = strconv.AppendUint(b, uint64(p.Color.R), 10)
		b = append(b, ',')
		b = strconv.AppendUint(b, uint64(p.Color.G), 10)
		b = append(b, ',')
		b = strconv.AppendUint(b, uint64(p.Color.B), 10)
		b = append(b, ':', '0'+p.Pulse)
	case KindDebug:
		if p.On {
			b = append(b, '1', ':', '?')
		} else {
			b = append(b, '0', ':', '?')
		}
	default:
		b = append(b, '?', ':', '?')
	}
	return append(b, ']')
}

// Bytes returns the wire form of p in a new slice.
func (p Packet) Bytes() []byte { return p.AppendTo(make([]byte, 0, 24)) }

// String returns the wire form of p.
func (p Packet) String() string { return string(p.AppendTo(make([]byte, 0, 24))) }

// Describe says in words what the packet makes a lamp do, for people:
// "manual colour #ff41ae, pulse 3".
func (p Packet) Describe() string {
	switch p.Kind {
	case KindOff:
		return "off"
	case KindWeather:
		return fmt.Sprintf("weather %d (%s), intensity %s", p.Weather, p.Weather, p.Intensity)
	case KindManual:
		if p.Pulse == 0 {
			return fmt.Sprintf("manual colour %s, steady", p.Color.Hex())
		}
		return fmt.Sprintf("manual colour %s, pulse %d", p.Color.Hex(), p.Pulse)
	case KindReset:
		return "reset (reboot)"
	case KindUpdate:
		return "update firmware"
	case KindDebug:
		if p.On {
			return "debug logging on"
		}
		return "debug logging off"
	}
	return p.Kind.String()
}

// MarshalText writes "#rrggbb", so JSON carries colours as the API shows them.
func (c RGB) MarshalText() ([]byte, error) { return []byte(c.Hex()), nil }

// UnmarshalText accepts every form ParseColor does.
func (c *RGB) UnmarshalText(b []byte) error {
	v, err := ParseColor(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}
