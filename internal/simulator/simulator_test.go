package simulator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/logtest"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/protocol"
)

func waitOutput(t *testing.T, out *logtest.Buffer, want string, count int) {
	t.Helper()
	for range 500 {
		if strings.Count(out.String(), want) >= count {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("output never showed %q %d times:\n%s", want, count, out.String())
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestSimulatorAgainstGateway(t *testing.T) {
	gw, err := device.New(device.Options{Secret: "sim-secret", Logger: quiet}, protocol.Off())
	if err != nil {
		t.Fatal(err)
	}
	image := bytes.Repeat([]byte("firmware"), 1000)
	mux := http.NewServeMux()
	mux.HandleFunc("/firmware.bin", func(w http.ResponseWriter, r *http.Request) {
		if _, pass, _ := r.BasicAuth(); pass != "sim-secret" {
			http.Error(w, "log in", http.StatusUnauthorized)
			return
		}
		w.Write(image)
	})
	mux.Handle("/", gw)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer gw.Shutdown(context.Background())

	stdinR, stdinW := io.Pipe()
	out := &logtest.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{URL: "ws" + strings.TrimPrefix(srv.URL, "http") + "/", Secret: "sim-secret",
			Name: "sim", Out: out, In: stdinR, Color: true, Logger: quiet, MinBackoff: 10 * time.Millisecond})
	}()

	waitOutput(t, out, "authenticated", 1)
	waitOutput(t, out, " off\n", 1)
	p, _ := protocol.Manual(protocol.RGB{R: 255, G: 65, B: 174}, 3)
	gw.SetDisplay(p)
	waitOutput(t, out, "manual colour #ff41ae, pulse 3", 1)
	if !strings.Contains(out.String(), "\x1b[48;2;255;65;174m") {
		t.Errorf("no true-colour swatch in %q", out.String())
	}

	io.WriteString(stdinW, "hello from the terminal\n")
	for i := 0; i < 500 && len(gw.Logs("", 10)) == 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if logs := gw.Logs("", 10); len(logs) != 1 || logs[0].Message != "hello from the terminal" {
		t.Errorf("server logs %+v", logs)
	}

	gw.Command(protocol.Reset(), nil)
	waitOutput(t, out, "rebooting", 1)
	waitOutput(t, out, "authenticated", 2)
	waitOutput(t, out, "manual colour #ff41ae, pulse 3", 2) // the current state after reconnecting

	gw.Command(protocol.Update(), nil)
	sum := sha256.Sum256(image)
	waitOutput(t, out, "firmware downloaded: 8000 bytes, sha256 "+hex.EncodeToString(sum[:]), 1)
	waitOutput(t, out, "authenticated", 3)

	cancel()
	stdinW.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
}

func TestSimulatorStopsOnWrongSecretAndReconnectsAfterRestart(t *testing.T) {
	gw, _ := device.New(device.Options{Secret: "right-secret", Logger: quiet, AuthBackoff: time.Millisecond}, protocol.Off())
	srv := httptest.NewServer(gw)
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/"
	out := &logtest.Buffer{}
	err := Run(context.Background(), Options{URL: url, Secret: "wrong", Out: out, Logger: quiet})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "wrong secret") {
		t.Fatalf("Run with a wrong secret: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Run(ctx, Options{URL: url, Secret: "right-secret", Out: out, Logger: quiet, MinBackoff: 10 * time.Millisecond})
	waitOutput(t, out, "authenticated", 1)
	gw.Shutdown(context.Background()) // close 1001 to every lamp; new connections refused
	waitOutput(t, out, "reconnecting in", 2)
}

func TestBadURLAndFirmwareURL(t *testing.T) {
	if err := Run(context.Background(), Options{URL: "http://x/", Out: io.Discard}); err == nil || !strings.Contains(err.Error(), "ws://") {
		t.Errorf("http URL: %v", err)
	}
	for in, want := range map[string]string{
		"ws://lamp.local:8080/":    "http://lamp.local:8080/firmware.bin",
		"wss://example.org/ws?x=1": "https://example.org/firmware.bin",
	} {
		if got, err := FirmwareURL(in); err != nil || got != want {
			t.Errorf("FirmwareURL(%q) = %q, %v", in, got, err)
		}
	}
}

// TestSimulatorSendsItsLampID: -lamp becomes ?lamp=, and the server knows
// the lamp by it.
func TestSimulatorSendsItsLampID(t *testing.T) {
	gw, err := device.New(device.Options{Secret: "sim-secret", Logger: quiet}, protocol.Off())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	defer srv.Close()
	defer gw.Shutdown(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{URL: "ws" + strings.TrimPrefix(srv.URL, "http") + "/?fw=1.0", Secret: "sim-secret", Lamp: "bedroom",
			Out: &logtest.Buffer{}, Logger: quiet, MinBackoff: 10 * time.Millisecond})
	}()
	var got []device.Info
	for range 500 {
		if got = gw.Devices(); len(got) == 1 && got[0].Authenticated {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(got) != 1 || got[0].LampID != "bedroom" || got[0].FirmwareVersion != "1.0" {
		t.Errorf("devices %+v, want one lamp bedroom running 1.0", got)
	}
	cancel()
	<-done
}
