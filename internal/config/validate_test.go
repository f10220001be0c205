package config

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name   string
		modify func(c *Config)
	}{
		{"defaults", func(c *Config) {}},
		{"port 0 for tests", func(c *Config) { c.Web.Listen = ":0"; c.Device.Listen = "127.0.0.1:0" }},
		{"IPv6 listen", func(c *Config) { c.Web.Listen = "[::1]:8000" }},
		{"same port on different hosts", func(c *Config) { c.Web.Listen = "127.0.0.1:9000"; c.Device.Listen = "127.0.0.2:9000" }},
		{"trusted proxies", func(c *Config) { c.Web.TrustedProxies = []string{"10.0.0.0/8", "192.168.1.10", "::1", "fd00::/8"} }},
		{"named secrets", func(c *Config) {
			c.Device.AuthSecret = "shared-secret"
			c.Device.Secrets = []NamedSecret{{"bedroom", "secret-one"}, {"Kitchen_2-a", "secret-two"}}
		}},
		{"city id", func(c *Config) { c.Weather.CityID = 2950159 }},
		{"city", func(c *Config) { c.Weather.City = "Berlin,DE" }},
		{"lat and lon at the limits", func(c *Config) { c.Weather.Lat, c.Weather.Lon = ptr(-90.0), ptr(180.0) }},
		{"http endpoint", func(c *Config) { c.Weather.Endpoint = "http://127.0.0.1:9999/" }},
		{"size limits", func(c *Config) { c.Device.MaxFrameSize = 128; c.Firmware.MaxSize = 64 * MiB }},
		{"a chip", func(c *Config) { c.Firmware.Chip = "esp32h2" }},
		{"a newer chip", func(c *Config) { c.Firmware.Chip = "esp32c5" }},
		{"a chip as people write it", func(c *Config) { c.Firmware.Chip = "ESP32-S3" }},
		{"json debug log", func(c *Config) { c.Log.Level = "debug"; c.Log.Format = "json" }},
		{"backoff equal to max", func(c *Config) { c.Device.AuthBackoff = c.Device.AuthBackoffMax }},
		{"firmware listener and the original's login", func(c *Config) {
			c.Firmware.Listen, c.Firmware.DownloadUsername, c.Firmware.DownloadPassword = ":80", "cloud-cloud", "lamp-password"
		}},
		{"open downloads", func(c *Config) { c.Firmware.DownloadAuth = false }},
		{"a time zone", func(c *Config) { c.Time.Zone = "Europe/Berlin" }},
		{"mqtt", func(c *Config) {
			c.MQTT.URL, c.MQTT.Username, c.MQTT.Password, c.MQTT.BaseTopic = "mqtt://broker.lan", "ha", "pw", "home/cloudcloud"
			c.Web.PublicURL = "https://lamps.example.org/"
		}},
		{"mqtts with a port", func(c *Config) { c.MQTT.URL = "mqtts://[::1]:8884" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.modify(&c)
			if err := c.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		name   string
		modify func(c *Config)
		want   string // the key and the value, at least
	}{
		{"listen without port", func(c *Config) { c.Web.Listen = "8000" }, `web.listen: "8000" is not host:port`},
		{"mqtt scheme", func(c *Config) { c.MQTT.URL = "tcp://broker:1883" }, `mqtt.url: "tcp://broker:1883": use mqtt://host:1883, or mqtts://host:8883 for TLS`},
		{"mqtt without host", func(c *Config) { c.MQTT.URL = "mqtt://:1883" }, `mqtt.url: "mqtt://:1883" has no host`},
		{"mqtt login in the URL", func(c *Config) { c.MQTT.URL = "mqtt://me:secret@broker" }, `mqtt.url: "mqtt://me:xxxxx@broker": put the login in mqtt.username`},
		{"mqtt wildcard topic", func(c *Config) { c.MQTT.BaseTopic = "cloud/#" }, `mqtt.base_topic: "cloud/#" contains + or #`},
		{"mqtt empty level", func(c *Config) { c.MQTT.DiscoveryPrefix = "homeassistant/" }, `mqtt.discovery_prefix: "homeassistant/" has an empty topic level`},
		{"mqtt empty prefix", func(c *Config) { c.MQTT.BaseTopic = "" }, `mqtt.base_topic: is empty`},
		{"public url without scheme", func(c *Config) { c.Web.PublicURL = "lamps.example.org" }, `web.public_url: "lamps.example.org" is not an http:// or https:// address`},
		{"listen port out of range", func(c *Config) { c.Device.Listen = ":70000" }, `device.listen: port "70000" in ":70000" is not a number in range 1-65535`},
		{"listen port by name", func(c *Config) { c.Web.Listen = ":http" }, `web.listen: port "http"`},
		{"listeners collide", func(c *Config) { c.Device.Listen = "0.0.0.0:8000" }, `device.listen: "0.0.0.0:8000" uses the same port as web.listen ":8000"`},
		{"firmware listener without port", func(c *Config) { c.Firmware.Listen = "80" }, `firmware.listen: "80" is not host:port`},
		{"firmware listener on the device port", func(c *Config) { c.Firmware.Listen = ":8080" }, `firmware.listen: ":8080" uses the same port as device.listen ":8080"`},
		{"firmware listener on the web port", func(c *Config) { c.Firmware.Listen = "127.0.0.1:8000" }, `firmware.listen: "127.0.0.1:8000" uses the same port as web.listen ":8000"`},
		{"download username alone", func(c *Config) { c.Firmware.DownloadUsername = "cloud-cloud" }, "firmware.download_password: is empty but firmware.download_username is set"},
		{"download password alone", func(c *Config) { c.Firmware.DownloadPassword = "lamp-password" }, "firmware.download_username: is empty but firmware.download_password is set"},
		{"download username with a colon", func(c *Config) { c.Firmware.DownloadUsername, c.Firmware.DownloadPassword = "a:b", "lamp-password" },
			`firmware.download_username: "a:b" contains ':'`},
		{"unknown time zone", func(c *Config) { c.Time.Zone = "Mars/Olympus" }, `time.zone: "Mars/Olympus" is not a time zone this system knows`},
		{"zero duration", func(c *Config) { c.Device.HandshakeTimeout = 0 }, "device.handshake_timeout: 0s must be longer than 0"},
		{"negative duration", func(c *Config) { c.Weather.Interval = Duration(-time.Minute) }, "weather.interval: -1m must be longer than 0"},
		{"zero session ttl", func(c *Config) { c.Web.SessionTTL = 0 }, "web.session_ttl: 0s"},
		{"ping not below keepalive", func(c *Config) { c.Device.PingInterval = c.Device.KeepaliveTimeout },
			"device.ping_interval: 45s must be shorter than device.keepalive_timeout (45s)"},
		{"backoff above max", func(c *Config) { c.Device.AuthBackoff = Duration(time.Minute) },
			"device.auth_backoff: 1m must not be longer than device.auth_backoff_max (30s)"},
		{"frame size too small", func(c *Config) { c.Device.MaxFrameSize = 127 }, "device.max_frame_size: 127B is out of range 128B-1MiB"},
		{"frame size too large", func(c *Config) { c.Device.MaxFrameSize = 2 * MiB }, "device.max_frame_size: 2MiB is out of range"},
		{"negative max connections", func(c *Config) { c.Device.MaxConnections = -1 }, "device.max_connections: -1 is negative"},
		{"send queue zero", func(c *Config) { c.Device.SendQueue = 0 }, "device.send_queue: 0 is out of range 1-100000"},
		{"send queue huge", func(c *Config) { c.Device.SendQueue = 1e9 }, "device.send_queue: 1000000000 is out of range"},
		{"log lines zero", func(c *Config) { c.Device.LogLines = 0 }, "device.log_lines: 0 is out of range 1-1000000"},
		{"log bytes too small", func(c *Config) { c.Device.LogBytes = 100 }, "device.log_bytes: 100B is out of range 1KiB-64MiB"},
		{"log bytes above the total", func(c *Config) { c.Device.LogBytes = 8 * MiB }, "device.log_bytes: 8MiB must not be more than device.log_total_bytes (4MiB)"},
		{"log total too large", func(c *Config) { c.Device.LogTotalBytes = 2 * GiB }, "device.log_total_bytes: 2GiB is out of range 1KiB-1GiB"},
		{"no handshakes", func(c *Config) { c.Device.MaxHandshakes = 0 }, "device.max_handshakes_per_address: 0 is out of range 1-100000"},
		{"negative web connections", func(c *Config) { c.Web.MaxConnections = -1 }, "web.max_connections: -1 is negative"},
		{"empty username", func(c *Config) { c.Web.Username = "" }, "web.username: is empty"},
		{"colon in username", func(c *Config) { c.Web.Username = "a:b" }, `web.username: "a:b" contains ':'`},
		{"bad trusted proxy", func(c *Config) { c.Web.TrustedProxies = []string{"10.0.0.0/33"} }, `web.trusted_proxies: "10.0.0.0/33" is neither an IP address nor a CIDR`},
		{"auth secret with white space", func(c *Config) { c.Device.AuthSecret = "secret\n" }, "device.auth_secret: starts or ends with white space"},
		{"empty secret name", func(c *Config) { c.Device.Secrets = []NamedSecret{{"", "long-enough"}} }, "device.secrets (entry 1): name is empty"},
		{"bad secret name", func(c *Config) { c.Device.Secrets = []NamedSecret{{"bed room", "long-enough"}} },
			`device.secrets (entry 1, name "bed room"): name must be 1-32 letters, digits, '-' or '_'`},
		{"long secret name", func(c *Config) { c.Device.Secrets = []NamedSecret{{strings.Repeat("a", 33), "long-enough"}} }, "name must be 1-32"},
		{"duplicate secret name", func(c *Config) { c.Device.Secrets = []NamedSecret{{"a", "secret-one"}, {"a", "secret-two"}} },
			`device.secrets (entry 2, name "a"): name is already used by entry 1`},
		{"short secret", func(c *Config) { c.Device.Secrets = []NamedSecret{{"a", "short"}} },
			`device.secrets (entry 1, name "a"): secret is 5 characters; use at least 8`},
		{"duplicate secret", func(c *Config) { c.Device.Secrets = []NamedSecret{{"a", "same-secret"}, {"b", "same-secret"}} },
			`device.secrets (entry 2, name "b"): secret is the same as the secret of entry 1`},
		{"secret equals auth secret", func(c *Config) {
			c.Device.AuthSecret = "shared-secret"
			c.Device.Secrets = []NamedSecret{{"a", "shared-secret"}}
		}, `device.secrets (entry 1, name "a"): secret is the same as device.auth_secret`},
		{"secret with white space", func(c *Config) { c.Device.Secrets = []NamedSecret{{"a", " long-enough"}} }, "secret starts or ends with white space"},
		{"two locations", func(c *Config) { c.Weather.CityID = 5; c.Weather.City = "Berlin,DE" },
			`weather: city_id (5) and city ("Berlin,DE") are both set; set only one of city_id, city or lat+lon`},
		{"lat without lon", func(c *Config) { c.Weather.Lat = ptr(1.5) }, "weather.lat: 1.5 is set but weather.lon is not"},
		{"lon without lat", func(c *Config) { c.Weather.Lon = ptr(2.5) }, "weather.lon: 2.5 is set but weather.lat is not"},
		{"lat out of range", func(c *Config) { c.Weather.Lat, c.Weather.Lon = ptr(90.5), ptr(0.0) }, "weather.lat: 90.5 is out of range -90 to 90"},
		{"lon out of range", func(c *Config) { c.Weather.Lat, c.Weather.Lon = ptr(0.0), ptr(-181.0) }, "weather.lon: -181 is out of range -180 to 180"},
		{"lat NaN", func(c *Config) { c.Weather.Lat, c.Weather.Lon = ptr(math.NaN()), ptr(0.0) }, "weather.lat: NaN is out of range"},
		{"negative city id", func(c *Config) { c.Weather.CityID = -3 }, "weather.city_id: -3 is negative"},
		{"wind beaufort 0", func(c *Config) { c.Weather.WindBeaufort = 0 }, "weather.wind_beaufort: 0 is out of range 1-12"},
		{"wind beaufort 13", func(c *Config) { c.Weather.WindBeaufort = 13 }, "weather.wind_beaufort: 13 is out of range 1-12"},
		{"relative endpoint", func(c *Config) { c.Weather.Endpoint = "api.openweathermap.org" }, `weather.endpoint: "api.openweathermap.org" is not an absolute http(s) URL`},
		{"ftp endpoint", func(c *Config) { c.Weather.Endpoint = "ftp://example.com" }, `weather.endpoint: "ftp://example.com"`},
		{"empty storage dir", func(c *Config) { c.Storage.Dir = "" }, "storage.dir: is empty"},
		{"firmware too small", func(c *Config) { c.Firmware.MaxSize = 1000 }, "firmware.max_size: 1000B is out of range 64KiB-64MiB"},
		{"firmware too large", func(c *Config) { c.Firmware.MaxSize = GiB }, "firmware.max_size: 1GiB is out of range"},
		{"unknown chip", func(c *Config) { c.Firmware.Chip = "esp8266" }, `firmware.chip: unknown chip "esp8266"; known chips are esp32, esp32c2`},
		{"log level", func(c *Config) { c.Log.Level = "verbose" }, `log.level: "verbose" is not a log level; use one of debug, info, warn, error`},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, `log.format: "xml" is not a log format; use one of text, json`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.modify(&c)
			err := c.Validate()
			if err == nil {
				t.Fatalf("Validate succeeded, want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate error:\n%v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

func TestValidateCollectsEveryProblem(t *testing.T) {
	c := Default()
	c.Web.Listen = "nope"
	c.Device.SendQueue = 0
	c.Weather.WindBeaufort = 99
	c.Log.Format = "xml"
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate succeeded")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 4 {
		t.Fatalf("got %d lines, want one per problem (4):\n%v", len(lines), err)
	}
	for i, key := range []string{"web.listen", "device.send_queue", "weather.wind_beaufort", "log.format"} {
		if !strings.HasPrefix(lines[i], key+": ") {
			t.Errorf("line %d = %q, want it to start with %q", i+1, lines[i], key)
		}
	}
}

func TestValidateKeepsSecretsOutOfMessages(t *testing.T) {
	c := Default()
	c.Device.AuthSecret = "top-secret-value "
	c.Device.Secrets = []NamedSecret{{"a", "short"}, {"b", "top-secret-value "}, {"c", "dup-secret"}, {"d", "dup-secret"}}
	c.Firmware.DownloadUsername, c.Firmware.DownloadPassword = "", "download-secret"
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate succeeded")
	}
	for _, secret := range []string{"top-secret-value", "short", "dup-secret", "download-secret"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error reveals secret %q:\n%v", secret, err)
		}
	}
}
