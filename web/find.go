package web

import (
	"fmt"
	"strings"
	"time"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/lamps"
	"github.com/cloudcloud/cloudcloud/web/templates"
)

// The lamps card shows at most lampsShown lamp cards and as many
// connections, the first the search finds: a fleet of thousands would make
// a page no phone can draw. From lampFindFrom lamps it offers the search.
// app.js reads both from the page's words.
const (
	lampsShown   = 50
	lampFindFrom = 6
)

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

// findText says what the search q found of total lamps, of which the card
// shows the first lampsShown; "" when it shows them all. app.js words it
// the same.
func findText(q string, found, total int) string {
	q = strings.TrimSpace(q)
	switch {
	case q == "" && total <= lampsShown:
		return ""
	case q == "":
		return fmt.Sprintf("Showing %d of %d lamps: find one by name or id.", lampsShown, total)
	case found == 0:
		return fmt.Sprintf("No lamp matches “%s”.", q)
	case total == 1:
		return fmt.Sprintf("The lamp matches “%s”.", q)
	case found > lampsShown:
		return fmt.Sprintf("%d of %d lamps match “%s”; showing the first %d.", found, total, q, lampsShown)
	}
	return fmt.Sprintf("%d of %d lamps match “%s”.", found, total, q)
}

// moreText says that the card shows only the first lampsShown of found
// connections; "" when it shows them all. app.js words it the same.
func moreText(found int) string {
	if found <= lampsShown {
		return ""
	}
	return fmt.Sprintf("Showing the first %d of %d connections.", lampsShown, found)
}

// fillLampsCard puts in d the lamp cards and connection rows the search
// d.Find finds, the first lampsShown of each, and what it found: rows are
// the connections (then those that left) in the page's order, registry the
// lamps by id.
func fillLampsCard(d *templates.Index, rows []device.Info, registry []lamps.Lamp, now time.Time, haveImage bool) {
	labels := make(map[string]string, len(registry))
	for _, l := range registry {
		labels[l.ID] = l.Label
	}
	foundRows := 0
	for _, dev := range rows {
		if !deviceFinds(d.Find, dev, labels[dev.LampID]) {
			continue
		}
		if foundRows++; foundRows <= lampsShown {
			v := deviceView(dev, now)
			v.NoFirmware = !haveImage
			d.Devices = append(d.Devices, v)
		}
	}
	d.DevicesMore = moreText(foundRows)
	foundLamps := 0
	for _, l := range registry {
		if !lampFinds(d.Find, l) {
			continue
		}
		if foundLamps++; foundLamps <= lampsShown {
			d.Lamps = append(d.Lamps, lampView(l, now))
		}
	}
	// The search counts the lamps, or the connections without a registry.
	if len(registry) > 0 {
		d.FindStatus = findText(d.Find, foundLamps, len(registry))
	} else {
		d.FindStatus = findText(d.Find, foundRows, len(rows))
	}
	d.FindShown = d.Find != "" || max(len(registry), len(rows)) >= lampFindFrom
	d.AnyLamp, d.AnyDevice = len(registry) > 0, len(rows) > 0
}
