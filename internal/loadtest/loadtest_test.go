package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/config"
	"github.com/cloudcloud/cloudcloud/internal/server"
)

// TestRunAgainstARealServer drives the whole tool against the real server
// in this process: lamps connect, every change reaches every lamp.
func TestRunAgainstARealServer(t *testing.T) {
	cfg := config.Default()
	cfg.Web.Listen, cfg.Device.Listen, cfg.Storage.Dir = "127.0.0.1:0", "127.0.0.1:0", t.TempDir()
	cfg.Web.Password, cfg.Device.AuthSecret = "load-password", "load-test-secret"
	// The tool connects InFlight lamps at once from each source address.
	cfg.Device.MaxHandshakes = 100
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan server.Addrs, 1)
	done := make(chan error, 1)
	go func() {
		srv, err := server.New(cfg, server.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Ready: func(a server.Addrs) { ready <- a }})
		if err != nil {
			done <- err
			return
		}
		done <- srv.Run(ctx)
	}()
	var addrs server.Addrs
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	var log bytes.Buffer
	res, err := Run(context.Background(), Options{
		URL: "ws://" + addrs.Device + "/", Secret: "load-test-secret",
		API: "http://" + addrs.Web, Username: "admin", Password: "load-password",
		PID: os.Getpid(), Lamps: 30, InFlight: 10, Changes: 8, Every: 20 * time.Millisecond,
		Stuck: 2, Settle: 100 * time.Millisecond, Sources: 10, Log: &log,
	})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, log.String())
	}
	if res.ConnectFailures != 0 || res.MissedFinal != 0 || res.Disconnected != 0 {
		t.Errorf("failures %d, missed %d, disconnected %d\n%s", res.ConnectFailures, res.MissedFinal, res.Disconnected, log.String())
	}
	if res.FanoutP99MS <= 0 || res.FanoutP50MS > res.FanoutP99MS || res.HandshakeP50MS <= 0 || res.RSSLampsKiB <= 0 || res.APIP50MS <= 0 {
		t.Errorf("implausible figures: %+v", res)
	}
	var table bytes.Buffer
	res.Table(&table)
	if !strings.Contains(table.String(), "fan-out complete") {
		t.Errorf("table:\n%s", table.String())
	}

	// A wrong password is a clear error, not a hang.
	_, err = Run(context.Background(), Options{URL: "ws://" + addrs.Device + "/", Secret: "load-test-secret",
		API: "http://" + addrs.Web, Username: "admin", Password: "wrong", Lamps: 1, Changes: 1, Settle: time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong password: %v", err)
	}
	cancel()
	<-done
}

func TestWriteReport(t *testing.T) {
	dir := t.TempDir()
	for _, name := range scenarios {
		r := Result{Lamps: 10000, RSSPerLampKiB: 2.3, ConnectTotalMS: 800, ServerCPUMS: 60, FanoutP99MS: 100, FanoutP50MS: 70,
			RSSLampsKiB: 60000, RSSAfterKiB: 61000}
		if name == "19500-overload" {
			r.RSSAfterKiB = 60500
		}
		if name == "1000-stuck1" {
			r.FanoutP99MS = 130 // +30 %: not met
		}
		b, _ := json.Marshal(r)
		os.WriteFile(filepath.Join(dir, name+".json"), b, 0o600)
	}
	var out bytes.Buffer
	if err := WriteReport(&out, dir, "test machine", "2026-11-22"); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"test machine", "| ≤ 8 KiB | 2.30 KiB | met |", "100.0 → 130.0 ms (+30 %) | **not met**"} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
	os.Remove(filepath.Join(dir, "10lamps.json"))
	if err := WriteReport(io.Discard, dir, "", ""); err == nil || !strings.Contains(err.Error(), "scripts/bench.sh") {
		t.Errorf("missing result: %v", err)
	}
}

func TestPercentile(t *testing.T) {
	d := []time.Duration{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	if pct(d, 50) != 5 || pct(d, 99) != 10 || pct(d, 100) != 10 || pct(nil, 50) != 0 {
		t.Errorf("pct: %v %v %v", pct(d, 50), pct(d, 99), pct(d, 100))
	}
	if colorOf(-1) != "#000000" || colorOf(0) != "#000001" || colorOf(65535) != "#010000" {
		t.Errorf("colorOf: %s %s %s", colorOf(-1), colorOf(0), colorOf(65535))
	}
}
