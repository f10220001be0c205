// Package simulator is a cloud lamp in the terminal: it connects to a
// cloudcloud device port like the firmware does, shows every packet in words
// with a colour swatch, sends typed lines as debug logs, and reconnects by
// itself, so anyone can try the server without hardware.
package simulator

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudcloud/cloudcloud/protocol"
)

// Options configure a simulated lamp.
type Options struct {
	URL    string // ws://host:8080/ or wss://...
	Secret string // the lamp secret (shared or named)
	Name   string // a label for this lamp's output lines
	// Lamp, when set, is sent as ?lamp= (PROTOCOL.md "Transport"): the id
	// the server knows the lamp by with the shared secret.
	Lamp   string
	Out    io.Writer // where packets are shown
	In     io.Reader // lines typed here are sent as "d:<line>"; nil for none
	Color  bool      // draw true-colour swatches (a terminal that supports them)
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the reconnect delay (1s and 30s by default).
	MinBackoff, MaxBackoff time.Duration
	HTTPClient             *http.Client // for /firmware.bin; nil = a client with a 2-minute timeout
}

// ErrRefused means the server will not accept this lamp (wrong secret):
// retrying cannot help, so Run stops.
var ErrRefused = errors.New("the server refused the lamp secret")

// Run connects and reconnects until ctx ends or the server refuses the secret.
func Run(ctx context.Context, o Options) error {
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 2 * time.Minute}
	}
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return fmt.Errorf("-url %q: write ws://host:port/ or wss://host/", o.URL)
	}
	if o.Lamp != "" {
		q := u.Query()
		q.Set("lamp", o.Lamp)
		u.RawQuery = q.Encode()
		o.URL = u.String()
	}
	lines := make(chan string, 16)
	if o.In != nil {
		go readLines(ctx, o.In, lines)
	}
	s := &session{o: o, lines: lines}
	delay := o.MinBackoff
	for {
		started := time.Now()
		err := s.connectOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrRefused) {
			return err
		}
		var reboot rebootError
		if errors.As(err, &reboot) {
			delay = o.MinBackoff
			s.say("rebooting: reconnecting now")
			continue
		}
		if time.Since(started) > 2*o.MaxBackoff {
			delay = o.MinBackoff // it was a good session: start the back-off over
		}
		s.say(fmt.Sprintf("disconnected (%v); reconnecting in %s", err, delay.Round(100*time.Millisecond)))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		delay = min(delay*2, o.MaxBackoff)
	}
}

type rebootError struct{}

func (rebootError) Error() string { return "reboot requested" }

type session struct {
	o     Options
	lines chan string
	mu    sync.Mutex // serialises output lines
}

func (s *session) say(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prefix := time.Now().Format("15:04:05")
	if s.o.Name != "" {
		prefix += " " + s.o.Name
	}
	fmt.Fprintf(s.o.Out, "%s  %s\n", prefix, msg)
}

func (s *session) connectOnce(ctx context.Context) error {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, _, err := d.DialContext(ctx, s.o.URL, nil)
	if err != nil {
		return err
	}
	defer conn.Close()
	s.say("connected to " + s.o.URL)
	var wmu sync.Mutex // one writer at a time: typed lines and replies
	write := func(msg string) error {
		wmu.Lock()
		defer wmu.Unlock()
		conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		return conn.WriteMessage(websocket.TextMessage, []byte(msg))
	}
	if err := write(s.o.Secret); err != nil {
		return err
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-ctx.Done():
			wmu.Lock()
			conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
			wmu.Unlock()
			conn.Close()
		case <-stop:
		}
	}()
	go func() {
		for {
			select {
			case <-stop:
				return
			case line := <-s.lines:
				if err := write("d:" + line); err != nil {
					return
				}
				s.say("sent debug line: " + line)
			}
		}
	}()
	authenticated := false
	for {
		_, b, err := conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code == websocket.ClosePolicyViolation && !authenticated {
				s.say("refused: " + ce.Text)
				return fmt.Errorf("%w: %s", ErrRefused, ce.Text)
			}
			return err
		}
		msg := string(b)
		if !authenticated {
			if msg != "ok" {
				return fmt.Errorf("expected ok after the secret, got %q", msg)
			}
			authenticated = true
			s.say("authenticated")
			continue
		}
		if msg == "pong" {
			continue
		}
		p, err := protocol.Parse(msg)
		if err != nil {
			s.say("!! " + err.Error())
			continue
		}
		s.show(p)
		switch p.Kind {
		case protocol.KindReset:
			return rebootError{}
		case protocol.KindUpdate:
			s.download(ctx)
			return rebootError{}
		}
	}
}

// show prints a packet in words with a swatch of the colour it shows.
func (s *session) show(p protocol.Packet) {
	line := p.Describe()
	if s.o.Color {
		if c, ok := swatch(p); ok {
			line = fmt.Sprintf("\x1b[48;2;%d;%d;%dm      \x1b[0m %s", c.R, c.G, c.B, line)
		}
	}
	s.say(line)
}

// weatherColors are rough colours of each weather animation, for the swatch.
var weatherColors = [10][3]uint8{{}, {255, 120, 40}, {200, 60, 90}, {120, 190, 255}, {170, 180, 190},
	{60, 110, 200}, {120, 70, 200}, {240, 245, 255}, {190, 190, 170}, {150, 220, 200}}

func swatch(p protocol.Packet) (protocol.RGB, bool) {
	switch p.Kind {
	case protocol.KindManual:
		return p.Color, true
	case protocol.KindOff:
		return protocol.RGB{}, true
	case protocol.KindWeather:
		c := weatherColors[p.Weather]
		f := 0.3 + 0.07*p.Intensity.Float()
		return protocol.RGB{R: uint8(float64(c[0]) * f), G: uint8(float64(c[1]) * f), B: uint8(float64(c[2]) * f)}, true
	}
	return protocol.RGB{}, false
}

// FirmwareURL is where a lamp connected to wsURL downloads its firmware.
func FirmwareURL(wsURL string) (string, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	default:
		return "", fmt.Errorf("not a WebSocket URL: %q", wsURL)
	}
	u.Path, u.RawQuery = "/firmware.bin", ""
	return u.String(), nil
}

// download fetches /firmware.bin like the lamp's updater, with the lamp
// secret as the password, and reports its size and checksum instead of
// flashing it.
func (s *session) download(ctx context.Context) {
	fw, err := FirmwareURL(s.o.URL)
	if err != nil {
		s.say("firmware: " + err.Error())
		return
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fw, nil)
	req.Header.Set("User-Agent", "ESP32-http-Update")
	// The server wants a login for the image; a lamp's secret is one.
	req.SetBasicAuth("lamp", s.o.Secret)
	resp, err := s.o.HTTPClient.Do(req)
	if err != nil {
		s.say("firmware download failed: " + err.Error())
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		s.say(fmt.Sprintf("firmware download failed: %s %s", resp.Status, strings.TrimSpace(string(body))))
		return
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		s.say("firmware download broke off after " + fmt.Sprint(n) + " bytes: " + err.Error())
		return
	}
	s.say(fmt.Sprintf("firmware downloaded: %d bytes, sha256 %s; flashing (simulated) and rebooting", n, hex.EncodeToString(h.Sum(nil))))
}

func readLines(ctx context.Context, in io.Reader, out chan<- string) {
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		select {
		case out <- line:
		case <-ctx.Done():
			return
		}
	}
}
