// Package templates holds the templ pages of the web UI and the plain view
// models they render. The models are strings and numbers already formatted
// for people, so the templates stay free of logic; package web fills them.
//
// Generate the *_templ.go files with: cd /work/main && go tool templ generate
package templates

import (
	"strconv"

	"github.com/a-h/templ"
)

// Assets are the content-hashed URLs of the static files.
type Assets struct {
	CSS, JS        string
	NoScriptCSS    string // hides what only works with the script, shows plain form buttons
	Icon           string // SVG
	Icon192        string // PNG
	AppleTouchIcon string // PNG 180 px
	Manifest       string
}

// Page is what every page needs.
type Page struct {
	Title   string
	Assets  Assets
	CSRF    string // empty on pages shown without a login
	Version string
}

// Login is the login form.
type Login struct {
	Page
	Next  string
	User  string
	Error string
}

// State is the display state.
type State struct {
	Mode         string // off, weather, manual
	Color        string // #rrggbb
	R, G, B      int
	Pulse        int
	WeatherCode  int    // what weather mode shows: the override while previewing
	WeatherName  string // "rain"
	Intensity    string // "7", "4.5"
	Override     bool
	Packet       string // "[cc:2:255,65,174:0]"
	Headline     string // "Manual colour"
	Detail       string // "#ff41ae · steady"
	UpdatedAt    string // RFC 3339, for scripts
	UpdatedLabel string // "22:00"
}

// Device is one lamp row: a connected lamp, or one that left (Offline),
// which keeps its last known facts and says when and why it went.
type Device struct {
	ID, Label, Name, RemoteAddr string
	Node                        string // the cluster node holding it; "" on a server of its own
	Status                      string // online, syncing, handshake, offline
	StatusText                  string
	ConnectedAt, LastSeen       string // RFC 3339, for scripts
	Uptime, LastSeenAgo         string
	Debug                       bool
	PacketsSent, PacketsRecv    string
	Offline                     bool
	OfflineSince                string // RFC 3339, for scripts; "" when unknown
	OfflineSinceText            string // "10:32 (12 min)"
	Reason                      string // "No sign of life for 45s"
	NoFirmware                  bool   // no image to update to: the Update button is off
}

// LogLine is one debug line.
type LogLine struct {
	Time    string // RFC 3339
	Clock   string // "15:04:05"
	Device  string
	Label   string
	Message string
}

// Weather is the weather as the lamp sees it.
type Weather struct {
	Running     bool // false when no weather service is wired
	Code        int
	Name        string
	Intensity   string
	Description string
	Status      string // ok, no_api_key, …
	StatusText  string // "Live", "No API key", …
	StatusClass string // good, warn, bad
	Error       string
	FetchedAt   string // RFC 3339, "" before the first observation
	FetchedAgo  string
	NextFetch   string // RFC 3339, "" when nothing will be fetched
	NextFetchIn string
	Place       string
	Temp        string
	Observation string // "broken clouds, 75 % cover, wind 3.1 m/s"
	// RefreshLabel is the fetch button's name: what it does, or why it
	// cannot (no API key).
	RefreshLabel string
}

// LampOption is one choice of the log's lamp filter.
type LampOption struct{ Value, Label string }

// WeatherChoice is one weather animation a person can preview.
type WeatherChoice struct {
	Code int
	Name string
}

// Firmware is the firmware panel: the image lamps download, the one a
// rollback brings back, the upload form and every lamp's latest update.
type Firmware struct {
	CSRF      string
	Current   *FirmwareImage // nil before the first upload
	Previous  *FirmwareImage // nil when there is nothing to roll back to
	Updates   []FirmwareUpdate
	MaxSize   string // "4 MiB"
	MaxBytes  int64
	Chip      string // the only chip accepted; "" for any
	Hint      string // what the upload accepts, in a sentence
	Flash     string // the outcome of the last form post, shown once
	FlashKind string // ok or error
}

// FirmwareImage describes one image for people.
type FirmwareImage struct {
	Project, Version        string
	BuildDate, BuildTime    string
	IDFVersion, Chip        string
	Size                    string // "1.4 MiB"
	SizeBytes               string // "1468320 bytes"
	SHA256, SHA256Short     string
	UploadedAt, UploadedAgo string // RFC 3339 and "3 min ago"
}

// FirmwareUpdate is one lamp's latest update.
type FirmwareUpdate struct {
	Lamp       string
	State      string // asked, downloading, downloaded, back, overdue
	StateText  string // "Downloading 42 %", "Back after 41 s"
	StateClass string // info, good, bad
	Detail     string // "620 KiB of 1.4 MiB · offline"
	Percent    int    // download progress 0-100
	Progress   bool   // whether to draw the progress bar
	AskedAt    string // RFC 3339
	AskedClock string // "22:01"
}

// SessionRow is one browser signed in.
type SessionRow struct {
	ID                    string
	Client, Address       string // "Chrome on Android", "192.0.2.7"
	Since                 string // "21 Nov 22:00"
	LastSeen, LastSeenAgo string // RFC 3339 and "3 min ago"
	Current               bool   // this browser
}

// Index is the main page.
type Index struct {
	Page
	Sessions      []SessionRow // this browser first; empty with basic auth
	PreviewEnds   string       // "12:31:05" while a weather preview has an end
	State         State
	Favorites     []string
	FavoritesFull bool
	Devices       []Device // connected lamps first, then those that left
	LampCount     int      // connected lamps, for the badge
	Lamps         []Lamp   // every lamp of the registry, by id
	// Find is the search of the lamps card (?find=): Lamps and Devices are
	// the first it finds. FindShown offers the search (many lamps, or a
	// search made); FindStatus says what it found, DevicesMore that there
	// are more connections than shown. AnyLamp, AnyDevice: the registry
	// has a lamp, a lamp is connected or left; found or not.
	Find, FindStatus, DevicesMore string
	FindShown, AnyLamp, AnyDevice bool
	Logs                          []LogLine
	LogFilter                     string
	LogDownload                   string // URL of the filtered log as text
	LogLamps                      []LampOption
	Weather                       Weather
	WeatherChoices                []WeatherChoice
	// FirmwarePanel is the firmware upload and status panel (FirmwareCard);
	// nil, on a server without firmware updates, renders nothing.
	FirmwarePanel templ.Component
	// Automation shows the scenes, sleep timer and schedules cards (a
	// server with scenes and schedules set up).
	Automation bool
	// MQTT is the broker status line; "" while MQTT is off.
	MQTT string
	// Cluster is the cluster status line; "" on a server of its own.
	Cluster string
	// Boot is the same data as JSON for the script, so it starts from what
	// the page shows without waiting for the event stream.
	Boot any
}

// Lamp is one lamp of the registry as its card shows it (LampCard).
type Lamp struct {
	ID, Label          string
	Status, StatusText string // "online" or "offline", and in words
	Shows              string // what it shows, in words: "Follows all lamps", "Own colour #00ff00"
	Follows            bool   // it shows the shared state
	Mode, Color        string
	Brightness, Pulse  int
	SinceTitle, Since  string // "Online since", "13:53 (2 min)"
	SinceISO           string // for the script to keep Since ticking
	Firmware           string
	Connections        int
	Nodes              string // the cluster nodes holding its connections, ", "-separated; "" on a server of its own
}

func itoa(i int) string { return strconv.Itoa(i) }

// swatchFill is a colour for a fill or a colour input: the empty card of
// the script's template gets white.
func swatchFill(c string) string {
	if c == "" {
		return "#ffffff"
	}
	return c
}

// pulseText is how the pulse sliders say their value (app.js too).
func pulseText(p int) string {
	if p == 0 {
		return "Steady"
	}
	return strconv.Itoa(p)
}

func i64toa(i int64) string { return strconv.FormatInt(i, 10) }

// pulseLabel names a pulse setting for people.
func pulseLabel(p int) string {
	if p == 0 {
		return "Steady"
	}
	return "Pulse " + strconv.Itoa(p)
}

func boolAttr(b bool) string { return strconv.FormatBool(b) }

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// weatherIcon names the sprite symbol of a weather code.
func weatherIcon(code int) string {
	names := [...]string{"cloud", "sunrise", "sunset", "sun", "cloud", "rain", "storm", "snow", "mist", "wind"}
	if code < 0 || code >= len(names) {
		return "cloud"
	}
	return names[code]
}

func modeIcon(mode string) string {
	switch mode {
	case "weather":
		return "sun"
	case "manual":
		return "drop"
	}
	return "power"
}

type modeChoice struct{ value, label string }

// modes are the buttons of the mode switch, in the order people think of them.
var modes = []modeChoice{{"off", "Off"}, {"weather", "Weather"}, {"manual", "Manual"}}

// signedInOn says how many browsers are signed in.
func signedInOn(n int) string {
	if n == 1 {
		return "1 device"
	}
	return strconv.Itoa(n) + " devices"
}

// Confirm is a question before a form post goes through.
type Confirm struct {
	Page
	Question, Detail string
	Action           string // where the confirmed form posts
	Fields           []Field
	Button           string // "Reboot kitchen"
	Cancel           string // where Cancel goes
}

// Field is one hidden form field.
type Field struct{ Name, Value string }

// weekdays are the day chips of the schedule editor: the API's names and
// what a person reads, Monday first.
var weekdays = [][2]string{{"mon", "Mo"}, {"tue", "Tu"}, {"wed", "We"}, {"thu", "Th"}, {"fri", "Fr"}, {"sat", "Sa"}, {"sun", "Su"}}
