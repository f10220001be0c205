package web

import (
	"fmt"
	"strings"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/lamps"
)

// lampFindFrom is how many lamps (or connections) the lamps card holds
// before it offers to find one by name; app.js reads it from the page's
// words.
const lampFindFrom = 6

// finds says whether the search q, in any case, is part of one of names.
// app.js finds the same way, with the same names (lampFinds, deviceFinds).
func finds(q string, names ...string) bool {
	q = strings.ToLower(strings.TrimSpace(q))
	if q == "" {
		return true
	}
	for _, n := range names {
		if strings.Contains(strings.ToLower(n), q) {
			return true
		}
	}
	return false
}

func lampFinds(q string, l lamps.Lamp) bool { return finds(q, l.Label, l.ID) }

// deviceFinds finds a connection by its own names or its lamp's label.
func deviceFinds(q string, i device.Info, lampLabel string) bool {
	return finds(q, i.Name, i.LampID, i.ID, i.RemoteAddr, lampLabel)
}

// findText says how many of total lamps the search q finds; "" for no
// search. app.js words it the same.
func findText(q string, found, total int) string {
	q = strings.TrimSpace(q)
	switch {
	case q == "":
		return ""
	case found == 0:
		return fmt.Sprintf("No lamp matches “%s”.", q)
	case total == 1:
		return fmt.Sprintf("The lamp matches “%s”.", q)
	}
	return fmt.Sprintf("%d of %d lamps match “%s”.", found, total, q)
}
