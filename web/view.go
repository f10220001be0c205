package web

import (
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/firmware"
	"github.com/cloudcloud/cloudcloud/internal/lamps"
	"github.com/cloudcloud/cloudcloud/internal/realip"
	"github.com/cloudcloud/cloudcloud/internal/rollout"
	"github.com/cloudcloud/cloudcloud/internal/state"
	"github.com/cloudcloud/cloudcloud/protocol"
	"github.com/cloudcloud/cloudcloud/weather"
	"github.com/cloudcloud/cloudcloud/web/templates"
)

// This file turns the services' data into the templates' view models: all
// formatting for people happens here, once. static/app.js repeats the few
// sentences that change live; keep the two in step.

// formatIntensity writes an intensity as the protocol does: "7", "4.5".
func formatIntensity(f float64) string { return protocol.RoundIntensity(f).String() }

// weatherName names a weather code: "rain".
func weatherName(code int) string {
	if c := protocol.WeatherCode(code); code >= 0 && c.Valid() {
		return c.String()
	}
	return "unknown weather"
}

// effectiveWeather is what weather mode shows: the preview while one is
// set, else the live weather.
func effectiveWeather(st state.State) (code int, intensity float64) {
	if o := st.WeatherOverride; o != nil {
		return o.Code, o.Intensity
	}
	return st.Weather.Code, st.Weather.Intensity
}

func stateView(st state.State) templates.State {
	code, intensity := effectiveWeather(st)
	v := templates.State{
		Mode:        string(st.Mode),
		Color:       st.Color.Hex(),
		R:           int(st.Color.R),
		G:           int(st.Color.G),
		B:           int(st.Color.B),
		Pulse:       st.Pulse,
		WeatherCode: code,
		WeatherName: weatherName(code),
		Intensity:   formatIntensity(intensity),
		Override:    st.WeatherOverride != nil,
		Packet:      st.Packet,
	}
	if !st.UpdatedAt.IsZero() {
		v.UpdatedAt = st.UpdatedAt.Format(time.RFC3339Nano)
		v.UpdatedLabel = st.UpdatedAt.Local().Format("15:04")
	}
	switch st.Mode {
	case state.ModeManual:
		v.Headline = "Manual colour"
		if st.Pulse == 0 {
			v.Detail = v.Color + " · steady"
		} else {
			v.Detail = v.Color + " · pulse " + strconv.Itoa(st.Pulse)
		}
	case state.ModeWeather:
		v.Headline = capitalize(v.WeatherName)
		switch {
		case v.Override:
			v.Detail = "Preview · intensity " + v.Intensity
		case st.Weather.Source == weather.SourceDefault:
			v.Detail = "Built-in clear sky · no live weather"
		default:
			v.Detail = "Live weather · intensity " + v.Intensity
		}
	default:
		v.Headline = "Off"
		v.Detail = "The lamps are dark"
	}
	return v
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	b := []byte(s)
	if b[0] >= 'a' && b[0] <= 'z' {
		b[0] -= 'a' - 'A'
	}
	return string(b)
}

// deviceLabel names a lamp in its row: its name, else the connection's id;
// a lamp that left is known by its address, the way it is recognised when it
// comes back (its old connection id means nothing to a person).
func deviceLabel(i device.Info) string {
	switch {
	case i.Name != "":
		return i.Name
	case i.Phase == device.PhaseOffline && i.RemoteAddr != "":
		return realip.IP(i.RemoteAddr)
	}
	return i.ID
}

func deviceView(i device.Info, now time.Time) templates.Device {
	v := templates.Device{
		ID: i.ID, Name: i.Name, Label: deviceLabel(i), RemoteAddr: i.RemoteAddr, Node: i.Node,
		ConnectedAt: i.ConnectedAt.Format(time.RFC3339Nano),
		LastSeen:    i.LastSeen.Format(time.RFC3339Nano),
		Uptime:      humanDuration(now.Sub(i.ConnectedAt)),
		LastSeenAgo: ago(now, i.LastSeen),
		Debug:       i.Debug,
		PacketsSent: strconv.FormatUint(i.PacketsSent, 10),
		PacketsRecv: strconv.FormatUint(i.PacketsReceived, 10),
	}
	v.Status, v.StatusText = deviceStatus(i)
	if v.Status == string(device.PhaseOffline) {
		v.Offline = true
		v.Uptime = "—" // the connection's age stops meaning anything once it is gone
		v.Reason = capitalize(i.Reason)
		if v.Reason == "" {
			v.Reason = "Unknown"
		}
		v.OfflineSinceText = "—"
		if t := i.DisconnectedAt; t != nil {
			v.OfflineSince = t.Format(time.RFC3339Nano)
			v.OfflineSinceText = offlineSince(now, *t)
		}
	}
	return v
}

// lampNodes are the cluster nodes holding devs, each once, in order.
func lampNodes(devs []device.Info) []string {
	var out []string
	for _, d := range devs {
		if d.Node != "" && !slices.Contains(out, d.Node) {
			out = append(out, d.Node)
		}
	}
	return out
}

// lampView is a lamp's card; keep the words in step with app.js
// renderLamp.
func lampView(l lamps.Lamp, now time.Time) templates.Lamp {
	v := templates.Lamp{
		ID: l.ID, Label: l.Label, Status: "offline", StatusText: "Offline", Follows: l.FollowsShared,
		Mode: string(l.State.Mode), Color: l.State.Color.Hex(), Brightness: l.State.Brightness, Pulse: l.State.Pulse,
		SinceTitle: "Offline since", Firmware: l.FirmwareVersion, Connections: len(l.Devices),
		Nodes: strings.Join(lampNodes(l.Devices), ", "),
	}
	if v.Label == "" {
		v.Label = l.ID
	}
	if v.Firmware == "" {
		v.Firmware = "Unknown"
	}
	since := l.LastSeen
	if l.Online {
		v.Status, v.StatusText, v.SinceTitle = "online", "Online", "Online since"
		since = time.Time{}
		for _, d := range l.Devices {
			if since.IsZero() || d.ConnectedAt.Before(since) {
				since = d.ConnectedAt
			}
		}
	}
	v.Since = "—"
	if !since.IsZero() {
		v.SinceISO, v.Since = since.Format(time.RFC3339Nano), offlineSince(now, since)
	}
	switch {
	case l.FollowsShared:
		v.Shows = "Follows all lamps"
	case l.State.Mode == state.ModeManual:
		v.Shows = "Own colour " + v.Color
		if l.State.Pulse > 0 {
			v.Shows += " · pulse " + strconv.Itoa(l.State.Pulse)
		}
	default:
		v.Shows = "Own: " + modeName(l.State.Mode)
	}
	return v
}

// modeName is a mode as its button says it.
func modeName(m state.Mode) string {
	switch m {
	case state.ModeManual:
		return "Manual"
	case state.ModeWeather:
		return "Weather"
	}
	return "Off"
}

// offlineSince says when a lamp left and how long ago: "10:32 (12 min)";
// older than a day it names the date too: "3 Mar 10:32 (2 d 4 h)".
// static/app.js writes the same.
func offlineSince(now, t time.Time) string {
	layout := "15:04"
	if now.Sub(t) >= 24*time.Hour {
		layout = "2 Jan 15:04"
	}
	return t.Local().Format(layout) + " (" + humanDuration(now.Sub(t)) + ")"
}

// deviceStatus says exactly which state a lamp is in, Brewblox-style: gone
// (offline), still in the handshake, online but not yet showing the current
// packet, or online and in step.
func deviceStatus(i device.Info) (status, text string) {
	switch {
	case i.Phase == device.PhaseOffline:
		return string(device.PhaseOffline), "Offline"
	case !i.Authenticated:
		return "handshake", "Handshake"
	case !i.Synchronized:
		return "syncing", "Syncing"
	}
	return "online", "Online"
}

func logView(l device.LogLine) templates.LogLine {
	label := l.Name
	if label == "" {
		label = l.Device
	}
	return templates.LogLine{
		Time: l.Time.Format(time.RFC3339Nano), Clock: l.Time.Local().Format("15:04:05"),
		Device: l.Device, Label: label, Message: l.Message,
	}
}

// weatherStatus names a weather.Report status for people, with a colour
// class: good, warn or bad.
func weatherStatus(status string) (text, class string) {
	switch status {
	case weather.StatusOK:
		return "Live", "good"
	case weather.StatusNoAPIKey:
		return "No API key", "warn"
	case weather.StatusBadAPIKey:
		return "Bad API key", "bad"
	case weather.StatusUnknownPlace:
		return "Unknown place", "bad"
	case weather.StatusRateLimited:
		return "Rate limited", "warn"
	case weather.StatusError:
		return "Failing", "bad"
	case "":
		return "Starting", "warn"
	}
	return status, "warn"
}

func weatherView(svc WeatherService, now time.Time) templates.Weather {
	if svc == nil {
		return templates.Weather{
			Code: int(protocol.WeatherClear), Name: protocol.WeatherClear.String(), Intensity: "9",
			Description: "The weather service is not running; weather mode shows a clear sky.",
			StatusText:  "Not running", StatusClass: "warn", FetchedAgo: "never", NextFetchIn: "—", Place: "—", Observation: "—",
			RefreshLabel: "Fetch the weather now",
		}
	}
	r := svc.Report()
	v := templates.Weather{
		Running:      true,
		Code:         int(r.Reading.Code),
		Name:         weatherName(int(r.Reading.Code)),
		Intensity:    formatIntensity(r.Reading.Intensity),
		Description:  r.Description,
		Status:       r.Status,
		RefreshLabel: "Fetch the weather now",
		Error:        r.Error,
		FetchedAgo:   "never",
		NextFetchIn:  "—",
		Place:        "—",
		Observation:  "—",
	}
	v.StatusText, v.StatusClass = weatherStatus(r.Status)
	if r.Status == weather.StatusNoAPIKey {
		v.RefreshLabel = "Fetching needs an OpenWeatherMap key (weather.api_key)"
	}
	if !r.FetchedAt.IsZero() {
		v.FetchedAt = r.FetchedAt.Format(time.RFC3339Nano)
		v.FetchedAgo = ago(now, r.FetchedAt)
	}
	if !r.NextFetch.IsZero() {
		v.NextFetch = r.NextFetch.Format(time.RFC3339Nano)
		v.NextFetchIn = in(now, r.NextFetch)
	}
	if o := r.Observation; o != nil {
		if o.Place != "" {
			v.Place = o.Place
		}
		v.Temp = fmt.Sprintf("%.0f °C", o.TempC)
		v.Observation = observationText(*o)
	}
	return v
}

// observationText summarises what OpenWeatherMap said in one line.
func observationText(o weather.Observation) string {
	s := o.Description
	if s == "" {
		s = o.Main
	}
	s += fmt.Sprintf(", %.0f °C, %d %% clouds, wind %.1f m/s", o.TempC, o.CloudCover, o.WindSpeed)
	return s
}

// humanDuration writes a duration the way people say it: "45 s", "12 min",
// "3 h 5 min", "4 d 2 h".
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch s := int64(d / time.Second); {
	case s < 60:
		return fmt.Sprintf("%d s", s)
	case s < 3600:
		return fmt.Sprintf("%d min", s/60)
	case s < 86400:
		if m := s % 3600 / 60; m > 0 {
			return fmt.Sprintf("%d h %d min", s/3600, m)
		}
		return fmt.Sprintf("%d h", s/3600)
	default:
		if h := s % 86400 / 3600; h > 0 {
			return fmt.Sprintf("%d d %d h", s/86400, h)
		}
		return fmt.Sprintf("%d d", s/86400)
	}
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	if now.Sub(t) < 2*time.Second {
		return "just now"
	}
	return humanDuration(now.Sub(t)) + " ago"
}

func in(now, t time.Time) string {
	d := t.Sub(now)
	if d <= time.Second {
		return "now"
	}
	return "in " + humanDuration(time.Duration(math.Ceil(d.Seconds()))*time.Second)
}

// logDownloadURL is the text download of the log, filtered like the view.
func logDownloadURL(filter string) string {
	if filter == "" {
		return "/logs.txt"
	}
	return "/logs.txt?device=" + url.QueryEscape(filter)
}

// firmwareView is the firmware panel. devs tells which lamps told to update
// are still connected.
func firmwareView(st firmwareStatus, devs []device.Info, now time.Time, maxSize int64, chip string) templates.Firmware {
	v := templates.Firmware{
		MaxSize:  firmware.FormatSize(maxSize),
		MaxBytes: maxSize,
		Chip:     chip,
		Hint:     "The application .bin, up to " + firmware.FormatSize(maxSize),
	}
	if chip != "" {
		v.Hint += ", built for " + chip
	}
	v.Hint += ". It is checked before any lamp can fetch it; a refused file leaves the current image in place."
	if st.Current != nil {
		img := firmwareImageView(*st.Current, now)
		v.Current = &img
	}
	if st.Previous != nil {
		img := firmwareImageView(*st.Previous, now)
		v.Previous = &img
	}
	online := map[string]bool{}
	for _, d := range devs {
		online[d.ID] = true
	}
	for _, u := range st.Updates {
		v.Updates = append(v.Updates, firmwareUpdateView(u, online[u.DeviceID], now))
	}
	return v
}

func firmwareImageView(i firmware.Info, now time.Time) templates.FirmwareImage {
	v := templates.FirmwareImage{
		Project: i.Project, Version: i.Version,
		BuildDate: i.BuildDate, BuildTime: i.BuildTime,
		IDFVersion: i.IDFVersion, Chip: i.Chip,
		Size:        firmware.FormatSize(i.Size),
		SizeBytes:   strconv.FormatInt(i.Size, 10) + " bytes",
		SHA256:      i.SHA256,
		SHA256Short: shortSHA(i.SHA256),
		UploadedAgo: ago(now, i.UploadedAt),
	}
	if v.Project == "" {
		v.Project = "(no project name)"
	}
	if !i.UploadedAt.IsZero() {
		v.UploadedAt = i.UploadedAt.Format(time.RFC3339Nano)
	}
	return v
}

// shortSHA keeps the start and end of a digest, enough to compare by eye.
func shortSHA(h string) string {
	if len(h) <= 20 {
		return h
	}
	return h[:12] + "…" + h[len(h)-6:]
}

// firmwareUpdateView says where one lamp stands in its update. online is
// whether the connection told to update is still open.
func firmwareUpdateView(u rollout.Update, online bool, now time.Time) templates.FirmwareUpdate {
	v := templates.FirmwareUpdate{
		Lamp: u.Lamp, State: u.State, StateText: u.State, StateClass: "info",
		AskedAt: u.AskedAt.Format(time.RFC3339Nano), AskedClock: u.AskedAt.Local().Format("15:04"),
	}
	pending := func(detail string) string {
		if !online {
			return detail + " · offline"
		}
		return detail
	}
	switch u.State {
	case rollout.StateAsked:
		v.StateText = "Asked"
		v.Detail = pending("told to update to " + orUnknown(u.Version))
	case rollout.StateDownloading:
		v.Percent = percent(u.Sent, u.Total)
		v.StateText = "Downloading " + strconv.Itoa(v.Percent) + " %"
		v.Progress = true
		v.Detail = pending(firmware.FormatSize(u.Sent) + " of " + firmware.FormatSize(u.Total))
	case rollout.StateDownloaded:
		v.Percent, v.Progress = 100, true
		v.StateText = "Downloaded"
		v.Detail = pending("image sent; it flashes and restarts")
	case rollout.StateBack:
		v.StateClass = "good"
		v.StateText = "Back"
		if u.BackAt != nil {
			v.StateText = "Back after " + humanDuration(u.BackAt.Sub(u.AskedAt))
		}
		v.Detail = "now on " + orUnknown(u.Version)
		if u.RunningVersion != "" && u.RunningVersion != u.Version {
			v.Detail += " (was " + u.RunningVersion + ")"
		}
	case rollout.StateOverdue:
		v.StateClass = "bad"
		v.StateText = "Overdue"
		v.Detail = "not back after " + humanDuration(now.Sub(u.AskedAt)) + "; check its power and Wi-Fi, or flash it over USB"
	}
	if u.RunningVersion != "" && u.State != rollout.StateBack {
		v.Detail += " · ran " + u.RunningVersion
	}
	return v
}

func percent(sent, total int64) int {
	if total <= 0 {
		return 0
	}
	return int(min(100, max(0, sent*100/total)))
}

func orUnknown(version string) string {
	if version == "" {
		return "an unknown version"
	}
	return version
}
