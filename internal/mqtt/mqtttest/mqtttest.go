// Package mqtttest runs a real mosquitto for tests and watches it as Home
// Assistant would.
package mqtttest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/logtest"
	"github.com/eclipse/paho.golang/paho"
)

// Broker is a real mosquitto on a loopback port of its own.
type Broker struct {
	t      testing.TB
	addr   string
	conf   string
	cmd    *exec.Cmd
	out    *logtest.Buffer // mosquitto's log; written by its goroutine
	exited chan struct{}   // closed when mosquitto has ended
	tls    bool
	roots  *x509.CertPool // with tls: trusts the broker's certificate
}

// Start starts mosquitto, or skips when it is not installed (.ci/run
// installs it).
func Start(t testing.TB) *Broker {
	t.Helper()
	return start(t, "")
}

// StartTLS starts mosquitto with TLS only, under a certificate for
// 127.0.0.1 from a fresh CA; roots trusts that CA.
func StartTLS(t testing.TB) (b *Broker, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cloudcloud test broker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	// Started as root, mosquitto reads the certificate after switching to
	// its "user"; keep it as whoever runs the test, who owns the files.
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	b = start(t, fmt.Sprintf("user %s\ncertfile %s\nkeyfile %s\n", me.Username, certFile, keyFile))
	b.tls, b.roots = true, roots
	return b, roots
}

func start(t testing.TB, extra string) *Broker {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		t.Skip("mosquitto is not installed (apt-get install mosquitto); the MQTT tests need a real broker")
	}
	// A free port is picked, then given to mosquitto: another test may
	// take it in between, and then mosquitto stops; try another.
	var errs []error
	for range 5 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		_, port, _ := net.SplitHostPort(addr)
		conf := filepath.Join(t.TempDir(), "mosquitto.conf")
		// Queues large enough for the flood test's 1,000 QoS 1 commands.
		body := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\nmax_inflight_messages 0\n", port) + extra
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		b := &Broker{t: t, addr: addr, conf: conf}
		if err := b.run(bin); err != nil {
			errs = append(errs, err)
			continue
		}
		t.Cleanup(b.Stop)
		return b
	}
	t.Fatalf("mosquitto did not start: %v", errors.Join(errs...))
	return nil
}

// URL is the broker's mqtt:// (or, from StartTLS, mqtts://) address.
func (b *Broker) URL() string {
	if b.tls {
		return "mqtts://" + b.addr
	}
	return "mqtt://" + b.addr
}

// run starts mosquitto and waits until it says it runs. Something
// answering on the port is not enough: it may be another test's server
// that took the port, while mosquitto stopped with "Address already in
// use".
func (b *Broker) run(bin string) error {
	b.out = new(logtest.Buffer)
	b.cmd = exec.Command(bin, "-c", b.conf)
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	if err := b.cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	b.exited = exited
	go func() { _ = b.cmd.Wait(); close(exited) }()
	for range 500 { // 10 s
		select {
		case <-exited:
			return fmt.Errorf("mosquitto on %s stopped: %s", b.addr, b.out)
		case <-time.After(20 * time.Millisecond):
		}
		if strings.Contains(b.out.String(), " running") {
			return nil
		}
	}
	b.Stop()
	return fmt.Errorf("mosquitto on %s did not say it runs within 10 s: %s", b.addr, b.out)
}

// Restart starts the broker again on the same port after stop.
func (b *Broker) Restart() {
	b.t.Helper()
	if err := b.run(b.cmd.Path); err != nil {
		b.t.Fatal(err)
	}
}

func (b *Broker) Stop() {
	if b.cmd == nil || b.cmd.Process == nil || b.exited == nil {
		return
	}
	_ = b.cmd.Process.Kill()
	<-b.exited
}

// Observer is what Home Assistant sees: every message, and the retained
// topics as they stand (an empty retained payload deletes a topic).
type Observer struct {
	t      testing.TB
	c      *paho.Client
	mu     sync.Mutex
	topics map[string][]byte
	count  map[string]int
	bytes  int
	notify chan struct{}
}

func NewObserver(t testing.TB, b *Broker, filter string) *Observer {
	t.Helper()
	o := &Observer{t: t, topics: map[string][]byte{}, count: map[string]int{}, notify: make(chan struct{})}
	var conn net.Conn
	var err error
	if b.tls {
		conn, err = tls.Dial("tcp", b.addr, &tls.Config{RootCAs: b.roots})
	} else {
		conn, err = net.Dial("tcp", b.addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	o.c = paho.NewClient(paho.ClientConfig{Conn: conn, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(p paho.PublishReceived) (bool, error) {
			o.mu.Lock()
			if len(p.Packet.Payload) == 0 {
				delete(o.topics, p.Packet.Topic)
			} else {
				o.topics[p.Packet.Topic] = bytes.Clone(p.Packet.Payload)
			}
			o.count[p.Packet.Topic]++
			o.bytes += len(p.Packet.Topic) + len(p.Packet.Payload)
			close(o.notify)
			o.notify = make(chan struct{})
			o.mu.Unlock()
			return true, nil
		}}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := o.c.Connect(ctx, &paho.Connect{ClientID: "observer-" + strings.ReplaceAll(t.Name(), "/", "-"), CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatal(err)
	}
	if _, err := o.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.c.Disconnect(&paho.Disconnect{}) })
	return o
}

// Publish sends a command as Home Assistant would.
func (o *Observer) Publish(topic, payload string, retain bool) {
	o.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := o.c.Publish(ctx, &paho.Publish{Topic: topic, Payload: []byte(payload), QoS: 1, Retain: retain}); err != nil {
		o.t.Fatal(err)
	}
}

// Wait returns the topic's payload once ok accepts it (nil payload: the
// topic is absent), or fails after 10 s.
func (o *Observer) Wait(topic string, what string, ok func(p []byte) bool) []byte {
	o.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		o.mu.Lock()
		p := o.topics[topic]
		n := o.notify
		o.mu.Unlock()
		if ok(p) {
			return p
		}
		select {
		case <-n:
		case <-timeout:
			o.t.Fatalf("%s: waited 10 s for %s; it is %q", topic, what, p)
		}
	}
}

// WaitEq waits until topic holds want exactly.
func (o *Observer) WaitEq(topic, want string) {
	o.t.Helper()
	o.Wait(topic, fmt.Sprintf("%q", want), func(p []byte) bool { return string(p) == want })
}

// WaitHas waits until topic holds a payload containing sub.
func (o *Observer) WaitHas(topic, sub string) []byte {
	o.t.Helper()
	return o.Wait(topic, fmt.Sprintf("a payload with %q", sub), func(p []byte) bool { return p != nil && bytes.Contains(p, []byte(sub)) })
}

// WaitGone waits until topic has no retained message.
func (o *Observer) WaitGone(topic string) {
	o.t.Helper()
	o.Wait(topic, "to be cleared", func(p []byte) bool { return p == nil })
}

// Count is how many messages topic has had.
func (o *Observer) Count(topic string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.count[topic]
}

// Messages is how many messages arrived so far.
func (o *Observer) Messages() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, c := range o.count {
		n += c
	}
	return n
}

// Bytes is the topic and payload bytes of every message so far.
func (o *Observer) Bytes() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.bytes
}

// Get is topic's retained payload, nil when it has none.
func (o *Observer) Get(topic string) []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.topics[topic]
}
