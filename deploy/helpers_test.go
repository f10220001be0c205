package deploy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/config"
	"github.com/cloudcloud/cloudcloud/internal/server"
)

// testVersion is stamped into the binary the tests build, the way release
// builds stamp theirs.
const testVersion = "v0.0.0-deploytest"

// The host names of deploy/nginx.conf: the UI and the lamps.
const (
	uiHost   = "cloud.example.org"
	lampHost = "lamps.example.org"
)

var (
	repoRoot string // the repository, one level up from this package
	binDir   string // where the binary is built, removed by TestMain

	binOnce sync.Once
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code, err := runTests(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploy tests:", err)
		code = 1
	}
	os.Exit(code)
}

func runTests(m *testing.M) (int, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return 1, fmt.Errorf("find the repository: %w", err)
	}
	repoRoot = root
	binDir, err = os.MkdirTemp("", "cloudcloud-deploy-")
	if err != nil {
		return 1, fmt.Errorf("temporary directory for the binary: %w", err)
	}
	defer os.RemoveAll(binDir)
	return m.Run(), nil
}

// cloudcloudBinary builds cmd/cloudcloud once per test run, with `make
// build` when make is there (so the Makefile's version stamping is what is
// tested), else with go build and the same -X flag.
func cloudcloudBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		out := filepath.Join(binDir, "cloudcloud")
		var cmd *exec.Cmd
		if _, err := exec.LookPath("make"); err == nil {
			cmd = exec.Command("make", "--no-print-directory", "build", "BINARY="+out, "VERSION="+testVersion)
		} else {
			cmd = exec.Command("go", "build", "-ldflags", "-X main.version="+testVersion, "-o", out, "./cmd/cloudcloud")
		}
		cmd.Dir = repoRoot
		if output, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, output)
			return
		}
		binPath = out
	})
	if binErr != nil {
		t.Fatalf("build the binary: %v", binErr)
	}
	return binPath
}

// runBinary runs the built binary and returns its combined output and exit
// code; it fails the test if the binary cannot be run at all.
func runBinary(t *testing.T, args ...string) (string, int) {
	t.Helper()
	return runBinaryWithin(t, 30*time.Second, func() string { return cloudcloudBinary(t) }, args...)
}

// runBinaryWithin gets the binary from build, then runs it with a deadline
// of timeout. The build comes first: a cold one (an empty GOCACHE) alone
// can take longer than the deadline, which is for running the binary only.
func runBinaryWithin(t *testing.T, timeout time.Duration, build func() string, args ...string) (string, int) {
	t.Helper()
	bin := build()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	// The tests' own CLOUDCLOUD_* variables (CI sets some) must not leak
	// into the configuration being checked.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CLOUDCLOUD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	default:
		t.Fatalf("run cloudcloud %s: %v", strings.Join(args, " "), err)
		return "", -1
	}
}

// readRepoFile reads a file of the repository by its path from the root.
func readRepoFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, path))
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(b)
}

// testServer is a cloudcloud server running in the test process.
type testServer struct {
	addrs              server.Addrs
	username, password string
	secret             string
	keepalive          time.Duration
	stop               func() // stops the server before the test ends; once is enough
}

// startServer builds a server and runs it on loopback ports until the test ends. It
// trusts 127.0.0.1 as a proxy, as the nginx docs tell people to, and pings
// lamps every second so that keepalive goes through nginx within the test.
func startServer(t *testing.T) testServer {
	t.Helper()
	return startServerWith(t, func(*config.Config) {})
}

// startServerWith is startServer with the configuration changed by edit
// (before it is validated).
func startServerWith(t *testing.T, edit func(*config.Config)) testServer {
	t.Helper()
	cfg := config.Default()
	cfg.Web.Listen, cfg.Device.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Storage.Dir = t.TempDir()
	cfg.Web.TrustedProxies = []string{"127.0.0.1"}
	cfg.Web.Password = "deploy-test-password"
	cfg.Device.AuthSecret = "deploy-test-lamp-secret"
	cfg.Device.PingInterval = config.Duration(time.Second)
	cfg.Device.KeepaliveTimeout = config.Duration(3 * time.Second)
	edit(&cfg)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test configuration: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan server.Addrs, 1)
	done := make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	srv, err := server.New(cfg, server.Options{Version: testVersion, Logger: logger,
		Ready: func(a server.Addrs) { ready <- a }})
	if err != nil {
		cancel()
		t.Fatalf("server.New: %v", err)
	}
	go func() { done <- srv.Run(ctx) }()
	stop := sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server.Run: %v", err)
			}
		case <-time.After(server.ShutdownTimeout + 5*time.Second):
			t.Errorf("server.Run did not return within %s of its context ending", server.ShutdownTimeout+5*time.Second)
		}
	})
	t.Cleanup(stop)
	select {
	case a := <-ready:
		return testServer{addrs: a, username: cfg.Web.Username, password: cfg.Web.Password,
			secret: cfg.Device.AuthSecret, keepalive: cfg.Device.KeepaliveTimeout.D(), stop: stop}
	case err := <-done:
		t.Fatalf("server.Run returned before listening: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("server.Run did not listen within 20s")
	}
	return testServer{}
}

// freeLoopbackAddr returns 127.0.0.1:<port> for a port free right now.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// writeSelfSignedCert writes a certificate for the example host names,
// localhost and 127.0.0.1, and its key, into dir, and returns a pool that
// trusts it.
func writeSelfSignedCert(t *testing.T, dir string) (certPath, keyPath string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate a key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "cloudcloud deploy test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost", uiHost, lampHost},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("create the certificate: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("encode the key: %v", err)
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse the certificate: %v", err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certPath, keyPath, roots
}

// portOf returns the port of a host:port address.
func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return port
}
