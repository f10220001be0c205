package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/cloudcloud/cloudcloud/internal/firmware"
	"github.com/cloudcloud/cloudcloud/internal/mqtt"
)

// Allowed values of the keys that take one of a list.
var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"text", "json"}
)

// Limits that are not plain "must be positive".
const (
	minFrameSize    = 128 * B
	maxFrameSize    = 1 * MiB
	minFirmwareSize = 64 * KiB
	maxFirmwareSize = 64 * MiB
	minSecretLength = 8
	maxNameLength   = 32
	// Upper bounds that keep a typo (an extra few zeros) from turning into
	// per-lamp buffers that exhaust memory.
	maxSendQueue = 100_000
	maxLogLines  = 1_000_000
)

// problems collects validation errors, each naming its key.
type problems []error

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

// Validate checks every value and every rule between values. It returns all
// problems at once, joined one per line, so that a person fixes them in one
// go rather than one per restart.
func (c Config) Validate() error {
	var p problems
	c.validateWeb(&p)
	c.validateDevice(&p)
	c.validateWeather(&p)
	c.validateDurations(&p)
	if strings.TrimSpace(c.Storage.Dir) == "" {
		p.add("storage.dir", `is empty; write a directory, e.g. "data"`)
	}
	if c.Firmware.MaxSize < minFirmwareSize || c.Firmware.MaxSize > maxFirmwareSize {
		p.add("firmware.max_size", "%s is out of range %s-%s", c.Firmware.MaxSize, minFirmwareSize, maxFirmwareSize)
	}
	if c.Firmware.Chip != "" {
		// The firmware parser knows the chips; one list, in one place.
		if _, err := firmware.NormalizeChip(c.Firmware.Chip); err != nil {
			p.add("firmware.chip", "%v; or leave it empty for any", err)
		}
	}
	c.validateFirmwareDownload(&p)
	if _, err := c.Time.Location(); err != nil {
		p.add("time.zone", "%v", err)
	}
	c.validateCluster(&p)
	c.validateMQTT(&p)
	if !slices.Contains(logLevels, c.Log.Level) {
		p.add("log.level", "%q is not a log level; use one of %s", c.Log.Level, strings.Join(logLevels, ", "))
	}
	if !slices.Contains(logFormats, c.Log.Format) {
		p.add("log.format", "%q is not a log format; use one of %s", c.Log.Format, strings.Join(logFormats, ", "))
	}
	return errors.Join(p...)
}

func (c Config) validateWeb(p *problems) {
	if err := checkListen(c.Web.Listen); err != nil {
		p.add("web.listen", "%v", err)
	}
	if c.Web.Username == "" {
		p.add("web.username", `is empty; the login needs a name, e.g. "admin"`)
	} else if strings.Contains(c.Web.Username, ":") {
		// HTTP basic auth separates name and password with the first colon.
		p.add("web.username", "%q contains ':', which HTTP basic auth cannot carry in a name", c.Web.Username)
	}
	for _, proxy := range c.Web.TrustedProxies {
		if _, _, err := net.ParseCIDR(proxy); err == nil {
			continue
		}
		if net.ParseIP(proxy) == nil {
			p.add("web.trusted_proxies", `%q is neither an IP address nor a CIDR; write e.g. "10.0.0.0/8" or "192.168.1.10"`, proxy)
		}
	}
}

// checkListen accepts host:port with a numeric port; port 0 asks the system
// for a free one, which tests use.
func checkListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf(`%q is not host:port; write e.g. ":8000" or "127.0.0.1:8000"`, addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q in %q is not a number in range 1-65535", port, addr)
	}
	return nil
}

func (c Config) validateDevice(p *problems) {
	d := c.Device
	if err := checkListen(d.Listen); err != nil {
		p.add("device.listen", "%v", err)
	} else if err := checkListen(c.Web.Listen); err == nil && sameListener(c.Web.Listen, d.Listen) {
		p.add("device.listen", "%q uses the same port as web.listen %q; give each its own port", d.Listen, c.Web.Listen)
	}
	if d.PingInterval > 0 && d.PingInterval >= d.KeepaliveTimeout {
		p.add("device.ping_interval", "%s must be shorter than device.keepalive_timeout (%s), or every lamp times out between pings",
			d.PingInterval, d.KeepaliveTimeout)
	}
	if d.AuthBackoff > d.AuthBackoffMax {
		p.add("device.auth_backoff", "%s must not be longer than device.auth_backoff_max (%s)", d.AuthBackoff, d.AuthBackoffMax)
	}
	if d.MaxFrameSize < minFrameSize || d.MaxFrameSize > maxFrameSize {
		p.add("device.max_frame_size", "%s is out of range %s-%s", d.MaxFrameSize, minFrameSize, maxFrameSize)
	}
	if c.Web.MaxConnections < 0 {
		p.add("web.max_connections", "%d is negative; use 0 for the default (100)", c.Web.MaxConnections)
	}
	if d.MaxHandshakes < 1 || d.MaxHandshakes > 100000 {
		p.add("device.max_handshakes_per_address", "%d is out of range 1-100000", d.MaxHandshakes)
	}
	if d.MaxConnections < 0 {
		p.add("device.max_connections", "%d is negative; use 0 for as many as the open-file limit allows", d.MaxConnections)
	}
	if d.SendQueue < 1 || d.SendQueue > maxSendQueue {
		p.add("device.send_queue", "%d is out of range 1-%d", d.SendQueue, maxSendQueue)
	}
	if d.LogBytes < KiB || d.LogBytes > 64*MiB {
		p.add("device.log_bytes", "%s is out of range 1KiB-64MiB", d.LogBytes)
	} else if d.LogBytes > d.LogTotalBytes {
		p.add("device.log_bytes", "%s must not be more than device.log_total_bytes (%s)", d.LogBytes, d.LogTotalBytes)
	}
	if d.LogTotalBytes < KiB || d.LogTotalBytes > GiB {
		p.add("device.log_total_bytes", "%s is out of range 1KiB-1GiB", d.LogTotalBytes)
	}
	if d.LogLines < 1 || d.LogLines > maxLogLines {
		p.add("device.log_lines", "%d is out of range 1-%d", d.LogLines, maxLogLines)
	}
	if d.AuthSecret != "" && strings.TrimSpace(d.AuthSecret) != d.AuthSecret {
		p.add("device.auth_secret", "starts or ends with white space, which the server ignores in what a lamp sends; remove it")
	}
	validateSecrets(p, d)
}

// validateFirmwareDownload checks firmware.listen and the extra download
// login. The password never appears in the messages.
func (c Config) validateFirmwareDownload(p *problems) {
	f := c.Firmware
	if f.Listen != "" {
		if err := checkListen(f.Listen); err != nil {
			p.add("firmware.listen", "%v", err)
		} else {
			for _, other := range []struct{ key, addr string }{{"web.listen", c.Web.Listen}, {"device.listen", c.Device.Listen}} {
				if checkListen(other.addr) == nil && sameListener(f.Listen, other.addr) {
					p.add("firmware.listen", "%q uses the same port as %s %q; give it a port of its own, e.g. \":80\"", f.Listen, other.key, other.addr)
				}
			}
		}
	}
	switch {
	case f.DownloadUsername != "" && f.DownloadPassword == "":
		p.add("firmware.download_password", "is empty but firmware.download_username is set; set both (e.g. the original's cloud-cloud and its password) or neither")
	case f.DownloadUsername == "" && f.DownloadPassword != "":
		p.add("firmware.download_username", "is empty but firmware.download_password is set; set both or neither")
	case strings.Contains(f.DownloadUsername, ":"):
		p.add("firmware.download_username", "%q contains ':', which HTTP basic auth cannot carry in a name", f.DownloadUsername)
	}
}

// sameListener reports whether two valid host:port addresses would collide.
func sameListener(a, b string) bool {
	hostA, portA, _ := net.SplitHostPort(a)
	hostB, portB, _ := net.SplitHostPort(b)
	if portA != portB || portA == "0" {
		return false
	}
	wildcard := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return hostA == hostB || wildcard(hostA) || wildcard(hostB)
}

// validateSecrets checks [[device.secrets]]. Secrets never appear in the
// messages: they end up in logs.
func validateSecrets(p *problems, d Device) {
	seenName := make(map[string]int)
	seenSecret := make(map[string]int)
	for i, s := range d.Secrets {
		key := fmt.Sprintf("device.secrets (entry %d, name %q)", i+1, s.Name)
		switch {
		case s.Name == "":
			key = fmt.Sprintf("device.secrets (entry %d)", i+1)
			p.add(key, "name is empty; give each lamp a name of letters, digits, '-' or '_'")
		case !validName(s.Name):
			p.add(key, "name must be 1-%d letters, digits, '-' or '_'", maxNameLength)
		default:
			if first, ok := seenName[s.Name]; ok {
				p.add(key, "name is already used by entry %d; names must be unique", first)
			} else {
				seenName[s.Name] = i + 1
			}
		}
		switch {
		case strings.TrimSpace(s.Secret) != s.Secret:
			p.add(key, "secret starts or ends with white space, which the server ignores in what a lamp sends; remove it")
		case len(s.Secret) < minSecretLength:
			p.add(key, "secret is %d characters; use at least %d", len(s.Secret), minSecretLength)
		case d.AuthSecret != "" && s.Secret == d.AuthSecret:
			p.add(key, "secret is the same as device.auth_secret; a named secret must be its own")
		default:
			if first, ok := seenSecret[s.Secret]; ok {
				p.add(key, "secret is the same as the secret of entry %d; each lamp needs its own", first)
			} else {
				seenSecret[s.Secret] = i + 1
			}
		}
	}
}

func validName(name string) bool {
	if len(name) < 1 || len(name) > maxNameLength {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// validateWeather applies the weather poller's own rules (weather.Options
// .Validate), so they live in one place.
func (c Config) validateWeather(p *problems) {
	// A zero in the poller's options means "the default"; a setting has its
	// default written in Default, so a zero here is a value, and wrong.
	if c.Weather.WindBeaufort == 0 {
		p.add("weather.wind_beaufort", "0 is out of range 1-12")
	}
	if err := c.Weather.Options().Validate(); err != nil {
		*p = append(*p, err)
	}
}

// validateDurations requires every Duration key to be positive; a zero or
// negative timeout or interval is never meant.
func (c Config) validateDurations(p *problems) {
	for _, s := range settings().list {
		if s.typ != durationType {
			continue
		}
		d := s.field(&c).Interface().(Duration)
		if d <= 0 {
			p.add(s.name(), "%s must be longer than 0", d)
		}
	}
}

// validateCluster checks the NATS servers' URLs and the replicas.
func (c Config) validateCluster(p *problems) {
	cl := c.Cluster
	if cl.NATSURL != "" {
		for _, one := range strings.Split(cl.NATSURL, ",") {
			u, err := url.Parse(strings.TrimSpace(one))
			if err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" {
				p.add("cluster.nats_url", "%q is not a NATS URL; write e.g. \"nats://127.0.0.1:4222\" (tls:// for TLS), several separated by commas", redactURL(strings.TrimSpace(one)))
			}
		}
	}
	if cl.Node != "" && !validName(cl.Node) {
		p.add("cluster.node", "%q must be 1-%d letters, digits, '-' or '_'", cl.Node, maxNameLength)
	}
	if cl.Replicas < 1 || cl.Replicas > 5 {
		p.add("cluster.replicas", "%d is out of range 1-5", cl.Replicas)
	}
}

// redactURL leaves a login out of a URL shown in a message.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		u.User = url.User("…")
		return u.String()
	}
	return s
}

// validateMQTT checks the broker URL and the topic prefixes, and
// web.public_url, which Home Assistant links to.
func (c Config) validateMQTT(p *problems) {
	m := c.MQTT
	if m.URL != "" {
		if _, err := mqtt.BrokerURL(m.URL); err != nil {
			p.add("mqtt.url", "%v; or leave it empty to turn MQTT off", err)
		}
	}
	for _, t := range []struct{ key, value string }{{"mqtt.base_topic", m.BaseTopic}, {"mqtt.discovery_prefix", m.DiscoveryPrefix}} {
		switch {
		case t.value == "":
			p.add(t.key, "is empty; write a topic prefix such as %q", map[string]string{"mqtt.base_topic": "cloudcloud", "mqtt.discovery_prefix": "homeassistant"}[t.key])
		case strings.ContainsAny(t.value, "+#\x00"):
			p.add(t.key, "%q contains + or # (MQTT wildcards) or a NUL; topics cannot", t.value)
		case strings.HasPrefix(t.value, "/") || strings.HasSuffix(t.value, "/") || strings.Contains(t.value, "//"):
			p.add(t.key, "%q has an empty topic level; write levels separated by single slashes, e.g. home/cloudcloud", t.value)
		}
	}
	if u := c.Web.PublicURL; u != "" {
		if parsed, err := url.Parse(u); err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
			p.add("web.public_url", "%q is not an http:// or https:// address; write the UI's address as people open it, e.g. https://lamps.example.org", u)
		}
	}
}
