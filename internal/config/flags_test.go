package config

import (
	"bytes"
	"errors"
	"flag"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParsePrecedence(t *testing.T) {
	path := writeConfig(t, "[web]\nlisten = \":9000\"\nusername = \"file-user\"\n[device]\nping_interval = \"5s\"\n[storage]\ndir = \"file-dir\"\n")
	environ := []string{
		"CLOUDCLOUD_WEB_USERNAME=env-user",
		"CLOUDCLOUD_DEVICE_PING_INTERVAL=6s",
		"CLOUDCLOUD_STORAGE_DIR=env-dir",
	}
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, c Config)
	}{
		{
			name: "file and env without flags",
			args: []string{"-config", path},
			check: func(t *testing.T, c Config) {
				if c.Web.Listen != ":9000" || c.Web.Username != "env-user" || c.Device.PingInterval.D() != 6*time.Second || c.Storage.Dir != "env-dir" {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "flags override env and file",
			args: []string{"-config", path, "-web.username", "flag-user", "-device.ping_interval=7s", "-web.listen", ":9100"},
			check: func(t *testing.T, c Config) {
				if c.Web.Username != "flag-user" || c.Device.PingInterval.D() != 7*time.Second || c.Web.Listen != ":9100" {
					t.Errorf("got %+v", c)
				}
				if c.Storage.Dir != "env-dir" {
					t.Errorf("storage.dir = %q, want the env value kept", c.Storage.Dir)
				}
			},
		},
		{
			name: "a flag set to the default still overrides",
			args: []string{"-config", path, "-web.listen", ":8000"},
			check: func(t *testing.T, c Config) {
				if c.Web.Listen != ":8000" {
					t.Errorf("web.listen = %q, want the flag's :8000", c.Web.Listen)
				}
			},
		},
		{
			name: "every kind of value",
			args: []string{
				"-web.trusted_proxies", "10.0.0.0/8,::1",
				"-device.max_frame_size", "1KiB",
				"-device.send_queue", "8",
				"-weather.lat", "-33.9", "-weather.lon", "151.2",
				"-firmware.chip", "esp32c3",
			},
			check: func(t *testing.T, c Config) {
				if !reflect.DeepEqual(c.Web.TrustedProxies, []string{"10.0.0.0/8", "::1"}) || c.Device.MaxFrameSize != KiB ||
					c.Device.SendQueue != 8 || *c.Weather.Lat != -33.9 || *c.Weather.Lon != 151.2 || c.Firmware.Chip != "esp32c3" {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "a true/false key: -key=false, and -key alone for true",
			args: []string{"-firmware.download_auth=false"},
			check: func(t *testing.T, c Config) {
				if c.Firmware.DownloadAuth {
					t.Error("firmware.download_auth still true after -firmware.download_auth=false")
				}
			},
		},
		{
			name: "a true/false key given alone",
			args: []string{"-config", writeConfig(t, "[firmware]\ndownload_auth = false\n"), "-firmware.download_auth", "-web.listen", ":9200"},
			check: func(t *testing.T, c Config) {
				if !c.Firmware.DownloadAuth || c.Web.Listen != ":9200" {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "no arguments gives defaults and env",
			args: nil,
			check: func(t *testing.T, c Config) {
				if c.Web.Listen != ":8000" || c.Web.Username != "env-user" {
					t.Errorf("got %+v", c)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			c, err := Parse("serve", tt.args, environ, &out)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.check(t, c)
			if out.Len() != 0 {
				t.Errorf("Parse wrote %q, want nothing", out.String())
			}
		})
	}
}

func TestParseHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		t.Run(arg, func(t *testing.T) {
			var out bytes.Buffer
			_, err := Parse("cloudcloud serve", []string{arg}, nil, &out)
			if !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("Parse(%s) error = %v, want flag.ErrHelp", arg, err)
			}
			usage := out.String()
			for _, want := range []string{
				"Usage: cloudcloud serve [flags]",
				"-config file",
				"-web.listen string",
				"env CLOUDCLOUD_WEB_LISTEN, default :8000",
				"-device.ping_interval duration",
				"default 15s",
				"-firmware.max_size size",
				"default 4MiB",
				"-weather.lat float",
				"-web.trusted_proxies list",
				"[[device.secrets]]",
			} {
				if !strings.Contains(usage, want) {
					t.Errorf("usage does not contain %q:\n%s", want, usage)
				}
			}
			if strings.Contains(usage, "-device.secrets ") {
				t.Errorf("usage offers a flag for the file-only device.secrets:\n%s", usage)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		environ []string
		want    []string
	}{
		{
			name: "bad flag value",
			args: []string{"-device.ping_interval", "abc"},
			want: []string{`invalid value "abc" for flag -device.ping_interval: "abc" is not a duration`},
		},
		{
			name: "unknown flag",
			args: []string{"-web.listne", ":1"},
			want: []string{"unknown flag -web.listne; did you mean -web.listen?"},
		},
		{
			name: "secrets have no flag",
			args: []string{"-device.secrets", "x"},
			want: []string{"unknown flag -device.secrets"},
		},
		{
			name: "stray argument",
			args: []string{"-web.listen", ":1", "extra"},
			want: []string{`unexpected argument "extra"`},
		},
		{
			name: "validation runs after flags",
			args: []string{"-device.ping_interval", "1m"},
			want: []string{"device.ping_interval: 1m must be shorter than device.keepalive_timeout (45s)"},
		},
		{
			name: "a flag cannot hide a bad env value",
			args: []string{"-device.send_queue", "4"},
			environ: []string{
				"CLOUDCLOUD_DEVICE_SEND_QUEUE=x",
			},
			want: []string{`env CLOUDCLOUD_DEVICE_SEND_QUEUE: "x" is not a whole number`},
		},
		{
			name: "missing config file",
			args: []string{"-config", "/nonexistent/cloudcloud.toml"},
			want: []string{"read config file", "/nonexistent/cloudcloud.toml"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := Parse("serve", tt.args, tt.environ, &out)
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
			if out.Len() != 0 {
				t.Errorf("Parse wrote %q on an error; the caller reports errors", out.String())
			}
		})
	}
}

func TestParseFlagsCoverEverySetting(t *testing.T) {
	for _, s := range settings().list {
		if s.help == "" {
			t.Errorf("%s has no help tag", s.name())
		}
		if s.fileOnly() {
			continue
		}
		// Every default must survive text form and back, or the usage text
		// and flag defaults would lie.
		def := Default()
		text := formatText(s.field(&def))
		var c Config
		if err := setText(s.field(&c), text); err != nil {
			t.Errorf("%s: default %q does not parse back: %v", s.name(), text, err)
			continue
		}
		if !reflect.DeepEqual(s.field(&c).Interface(), s.field(&def).Interface()) {
			t.Errorf("%s: default %v came back as %v", s.name(), s.field(&def), s.field(&c))
		}
	}
}
