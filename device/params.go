package device

import (
	"fmt"
	"net/url"
	"strings"
)

// LampParams are the URL parameters a lamp may connect with (PROTOCOL.md
// "Transport", an extension).
type LampParams struct {
	Lamp     string // ?lamp=, lower-cased; "" when absent or unusable
	Firmware string // ?fw=; "" when absent or unusable
	// Ignored says, for a person reading the log, which values were not
	// usable and why.
	Ignored []string
}

// Limits of the URL parameters.
const (
	MaxLampIDLength   = 32
	maxFirmwareLength = 32
)

// ParseLampParams reads the query of a lamp's URL. A value that breaks the
// rules is ignored (and named in Ignored), never a reason to refuse the
// lamp: PROTOCOL.md says unknown parameters are ignored, and a lamp that
// would be refused for a typo in its URL would stay dark until reflashed;
// ignored, it still works, known by its address.
func ParseLampParams(rawQuery string) LampParams {
	var p LampParams
	if rawQuery == "" {
		return p
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		// What could be read is kept; the rest is ignored.
		p.Ignored = append(p.Ignored, "the query is not well-formed: "+err.Error())
	}
	if v, ok := q["lamp"]; ok {
		id := strings.ToLower(v[0])
		if err := CheckLampID(id); err != nil {
			p.Ignored = append(p.Ignored, "lamp: "+err.Error())
		} else {
			p.Lamp = id
		}
	}
	if v, ok := q["fw"]; ok {
		if err := checkFirmware(v[0]); err != nil {
			p.Ignored = append(p.Ignored, "fw: "+err.Error())
		} else {
			p.Firmware = v[0]
		}
	}
	return p
}

// CheckLampID says what is wrong with a lamp id given as ?lamp=: it must be
// 1-32 of a-z, 0-9, '_' and '-'.
func CheckLampID(id string) error {
	if id == "" || len(id) > MaxLampIDLength {
		return fmt.Errorf("%q must be 1-%d characters", truncate(id), MaxLampIDLength)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return fmt.Errorf("%q may hold only a-z, 0-9, '_' and '-'", truncate(id))
		}
	}
	return nil
}

// checkFirmware accepts versions like 1.4.2, v2.0.0-rc1 or 20261201+abc.
func checkFirmware(v string) error {
	if v == "" || len(v) > maxFirmwareLength {
		return fmt.Errorf("%q must be 1-%d characters", truncate(v), maxFirmwareLength)
	}
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._+-", r)) {
			return fmt.Errorf("%q may hold only letters, digits and . _ + -", truncate(v))
		}
	}
	return nil
}

// truncate keeps a logged value short.
func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
