// Package config holds the settings of `cloudcloud serve` and reads them from,
// lowest to highest precedence: built-in defaults, a TOML file, environment
// variables CLOUDCLOUD_<SECTION>_<KEY>, then command-line flags -section.key.
//
// Every key is one struct field below: its `toml` tag names it in the file,
// the environment and the flags, and its `help` tag is the flag usage text.
// Adding a field adds the key everywhere; config.example.toml must follow
// (a test checks it).
package config

import (
	"fmt"
	"time"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/firmware"
	"github.com/cloudcloud/cloudcloud/weather"
	"github.com/cloudcloud/cloudcloud/web"
)

// Config is the whole configuration of the server.
type Config struct {
	Web      Web      `toml:"web"`
	Device   Device   `toml:"device"`
	Weather  Weather  `toml:"weather"`
	Storage  Storage  `toml:"storage"`
	Firmware Firmware `toml:"firmware"`
	Log      Log      `toml:"log"`
	Time     Time     `toml:"time"`
	Cluster  Cluster  `toml:"cluster"`
	MQTT     MQTT     `toml:"mqtt"`
}

// Web configures the UI and HTTP API.
type Web struct {
	Listen         string   `toml:"listen" help:"address of the UI and API, host:port"`
	Username       string   `toml:"username" help:"login name for the UI and API"`
	Password       string   `toml:"password" help:"login password; empty: generated on first start and printed once"`
	TrustedProxies []string `toml:"trusted_proxies" help:"comma-separated CIDRs or IPs of reverse proxies whose X-Forwarded-For is believed"`
	SessionTTL     Duration `toml:"session_ttl" help:"how long a login cookie lasts"`
	MaxConnections int      `toml:"max_connections" help:"most connections to the web port at once; 0: 100, kept within the open-file limit"`
	PublicURL      string   `toml:"public_url" help:"the UI's address as people reach it, e.g. https://lamps.example.org; Home Assistant links to it"`
}

// NamedSecret is a per-lamp secret: a lamp that authenticates with it is
// known by Name across reconnects.
type NamedSecret struct {
	Name   string `toml:"name"`
	Secret string `toml:"secret"`
}

// Device configures the lamp WebSocket side.
type Device struct {
	Listen           string        `toml:"listen" help:"address of the lamp WebSocket port, host:port"`
	AuthSecret       string        `toml:"auth_secret" help:"shared lamp secret; empty: generated on first start and printed once"`
	Secrets          []NamedSecret `toml:"secrets" help:"per-lamp named secrets; config file only ([[device.secrets]])"`
	HandshakeTimeout Duration      `toml:"handshake_timeout" help:"time a lamp has to send its secret after connecting"`
	PingInterval     Duration      `toml:"ping_interval" help:"time between pings to a lamp; must be shorter than keepalive_timeout"`
	KeepaliveTimeout Duration      `toml:"keepalive_timeout" help:"a lamp silent for this long is dropped"`
	WriteTimeout     Duration      `toml:"write_timeout" help:"a lamp whose write blocks longer than this is dropped"`
	MaxFrameSize     Size          `toml:"max_frame_size" help:"largest frame accepted from a lamp (128B-1MiB)"`
	MaxConnections   int           `toml:"max_connections" help:"most lamps connected at once; 0: as many as the open-file limit allows"`
	SendQueue        int           `toml:"send_queue" help:"commands waiting per lamp before it is dropped as too slow"`
	LogLines         int           `toml:"log_lines" help:"debug log lines kept per lamp"`
	LogBytes         Size          `toml:"log_bytes" help:"debug log kept per lamp, in bytes (1KiB-64MiB, at most log_total_bytes)"`
	LogTotalBytes    Size          `toml:"log_total_bytes" help:"debug log kept for all lamps together, in bytes (1KiB-1GiB); kept in storage.dir across restarts"`
	AuthBackoff      Duration      `toml:"auth_backoff" help:"first delay after a wrong secret from an address, doubling each time"`
	AuthBackoffMax   Duration      `toml:"auth_backoff_max" help:"longest delay after wrong secrets"`
	// MaxHandshakes bounds the connections from one address that have not
	// given the secret yet.
	MaxHandshakes int `toml:"max_handshakes_per_address" help:"connections from one address that may wait to give the secret at once (1-100000); more get 429"`
}

// Weather configures the OpenWeatherMap poller. At most one of CityID, City
// or Lat+Lon says where.
type Weather struct {
	APIKey        string   `toml:"api_key" help:"OpenWeatherMap API key; empty: weather shows clear sky and the UI says why"`
	CityID        int      `toml:"city_id" help:"OpenWeatherMap city id; 0: unset"`
	City          string   `toml:"city" help:"city name and country code, e.g. Berlin,DE"`
	Lat           *float64 `toml:"lat" help:"latitude -90..90; set together with lon"`
	Lon           *float64 `toml:"lon" help:"longitude -180..180; set together with lat"`
	Interval      Duration `toml:"interval" help:"time between weather polls"`
	SunTransition Duration `toml:"sun_transition" help:"length of the sunrise / sunset ramp"`
	Endpoint      string   `toml:"endpoint" help:"base URL of the OpenWeatherMap API or a compatible server"`
	WindBeaufort  int      `toml:"wind_beaufort" help:"wind at or above this Beaufort number (1-12) shows as windy"`
	Timeout       Duration `toml:"timeout" help:"time limit of one weather request"`
}

// Options are the poller's options these settings make; the caller adds
// what is not a setting (logger, publish).
func (w Weather) Options() weather.Options {
	return weather.Options{
		APIKey: w.APIKey, CityID: w.CityID, City: w.City, Lat: w.Lat, Lon: w.Lon,
		Interval:      w.Interval.D(),
		SunTransition: w.SunTransition.D(),
		Timeout:       w.Timeout.D(),
		Endpoint:      w.Endpoint,
		WindBeaufort:  w.WindBeaufort,
	}
}

// Storage says where state, secrets, firmware and logs live.
type Storage struct {
	Dir string `toml:"dir" help:"directory for state, secrets, firmware and logs"`
}

// Firmware configures firmware uploads and downloads.
type Firmware struct {
	MaxSize          Size   `toml:"max_size" help:"largest accepted firmware upload (64KiB-64MiB)"`
	Chip             string `toml:"chip" help:"required chip of uploaded images, as esptool names it (esp32, esp32s3, esp32c3, ...); empty: any"`
	Listen           string `toml:"listen" help:"extra plain-HTTP listener serving only /firmware.bin, host:port (e.g. :80 for lamps built for the original server); empty: none"`
	DownloadUsername string `toml:"download_username" help:"one more login accepted for /firmware.bin, with download_password (the original's was cloud-cloud)"`
	DownloadPassword string `toml:"download_password" help:"password of download_username"`
	DownloadAuth     bool   `toml:"download_auth" help:"false: /firmware.bin is served without a login on every port (the image holds the Wi-Fi credentials and lamp secret)"`
}

// Time says what the clock times of schedules mean.
type Time struct {
	Zone string `toml:"zone" help:"IANA time zone of schedule times, e.g. Europe/Berlin; empty: the TZ variable, else the system's zone"`
}

// Location is the zone schedules' times are in: Zone, or with none set
// time.Local, which Go takes from TZ, else from the system.
func (t Time) Location() (*time.Location, error) {
	if t.Zone == "" {
		return time.Local, nil
	}
	loc, err := time.LoadLocation(t.Zone)
	if err != nil {
		return nil, fmt.Errorf("%q is not a time zone this system knows (%v); use an IANA name like Europe/Berlin or UTC, or leave it empty for TZ / the system's zone", t.Zone, err)
	}
	return loc, nil
}

// Cluster puts the server's storage on NATS JetStream, shared with other
// nodes (docs/cluster.md). Without NATSURL the server keeps everything in
// storage.dir, alone.
type Cluster struct {
	NATSURL  string `toml:"nats_url" help:"NATS servers with JetStream, e.g. nats://host:4222 (comma-separated for several; nats://user:pass@host for a login); empty: one node, state on disk"`
	Node     string `toml:"node" help:"this node's name, unique in the cluster; empty: the host name up to its first dot"`
	Replicas int    `toml:"replicas" help:"JetStream copies of each bucket (1-5; 3 on a three-server NATS cluster)"`
}

// Log configures the server's own log.
type Log struct {
	Level  string `toml:"level" help:"log level: debug, info, warn or error"`
	Format string `toml:"format" help:"log format: text or json"`
}

// MQTT configures the MQTT bridge and Home Assistant discovery (MQTT.md).
type MQTT struct {
	URL             string `toml:"url" help:"broker, mqtt://host:1883 or mqtts://host:8883 for TLS; empty: MQTT is off"`
	Username        string `toml:"username" help:"broker login name; empty: none"`
	Password        string `toml:"password" help:"broker login password"`
	ClientID        string `toml:"client_id" help:"MQTT client id; empty: cloudcloud-<cluster.node> in a cluster, else cloudcloud-<hostname>"`
	BaseTopic       string `toml:"base_topic" help:"prefix of every cloudcloud topic"`
	Discovery       bool   `toml:"discovery" help:"publish Home Assistant discovery messages"`
	DiscoveryPrefix string `toml:"discovery_prefix" help:"Home Assistant's discovery prefix"`
}

// Default returns the built-in configuration: what the server runs with when
// no file, environment variable or flag says otherwise.
func Default() Config {
	return Config{
		Web: Web{
			Listen:     ":8000",
			Username:   "admin",
			SessionTTL: Duration(web.DefaultSessionTTL),
		},
		Device: Device{
			Listen:           ":8080",
			HandshakeTimeout: Duration(device.DefaultHandshakeTimeout),
			PingInterval:     Duration(device.DefaultPingInterval),
			KeepaliveTimeout: Duration(device.DefaultKeepaliveTimeout),
			WriteTimeout:     Duration(device.DefaultWriteTimeout),
			MaxFrameSize:     device.DefaultMaxFrameSize,
			SendQueue:        device.DefaultSendQueue,
			LogLines:         device.DefaultLogLines,
			LogBytes:         device.DefaultLogBytes,
			LogTotalBytes:    device.DefaultLogTotalBytes,
			AuthBackoff:      Duration(device.DefaultAuthBackoff),
			AuthBackoffMax:   Duration(device.DefaultAuthBackoffMax),
			MaxHandshakes:    device.DefaultMaxHandshakesPerAddress,
		},
		Weather: Weather{
			Interval:      Duration(weather.DefaultInterval),
			SunTransition: Duration(weather.DefaultSunTransition),
			Endpoint:      weather.DefaultEndpoint,
			WindBeaufort:  weather.DefaultWindBeaufort,
			Timeout:       Duration(weather.DefaultTimeout),
		},
		Storage:  Storage{Dir: "data"},
		Firmware: Firmware{MaxSize: firmware.DefaultMaxSize, DownloadAuth: true},
		Log:      Log{Level: "info", Format: "text"},
		Cluster:  Cluster{Replicas: 1},
		MQTT:     MQTT{BaseTopic: "cloudcloud", Discovery: true, DiscoveryPrefix: "homeassistant"},
	}
}
