package deploy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/config"
	"github.com/cloudcloud/cloudcloud/internal/server"
)

// defaultPorts are the ports of web.listen and device.listen by default:
// what the examples publish and proxy to.
func defaultPorts(t *testing.T) (web, device string) {
	t.Helper()
	d := config.Default()
	return portOf(t, d.Web.Listen), portOf(t, d.Device.Listen)
}

// checkEnv checks that every CLOUDCLOUD_* assignment is a configuration key
// with a valid value, and returns the configuration they make.
func checkEnv(t *testing.T, where string, env []string) config.Config {
	t.Helper()
	cfg, err := config.Parse("cloudcloud serve", nil, env, io.Discard)
	if err != nil {
		t.Fatalf("%s sets %q, which the configuration refuses:\n%v", where, env, err)
	}
	return cfg
}

// checkFlags runs the binary with args and -h: the flag parser stops at -h
// with exit 0 only when every flag before it exists and, for settings, has a
// valid value; the command is not run.
func checkFlags(t *testing.T, where string, args []string) {
	t.Helper()
	out, code := runBinary(t, append(slices.Clone(args), "-h")...)
	if code != 0 {
		t.Errorf("%s runs `cloudcloud %s`, which the binary refuses (exit %d):\n%s", where, strings.Join(args, " "), code, out)
	}
}

func TestDockerfile(t *testing.T) {
	ins, err := parseDockerfile(readRepoFile(t, "Dockerfile"))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	var stages [][]instruction
	for _, in := range ins {
		if in.Cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			if in.Cmd != "ARG" {
				t.Fatalf("Dockerfile:%d: %s before the first FROM", in.Line, in.Cmd)
			}
			continue
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stage(s); it must build in one stage and ship only the binary in another", len(stages))
	}
	final := stages[len(stages)-1]
	if from := final[0].Args; strings.Contains(from, "golang") {
		t.Errorf("Dockerfile:%d: the final image %q has the Go toolchain; ship only the binary", final[0].Line, from)
	}

	t.Run("static binary with the version stamped", func(t *testing.T) {
		var build *instruction
		for _, stage := range stages[:len(stages)-1] {
			for i, in := range stage {
				if in.Cmd == "RUN" && strings.Contains(in.Args, "go build") {
					build = &stage[i]
				}
			}
		}
		if build == nil {
			t.Fatal("no RUN with go build in the build stages")
		}
		for _, want := range []string{"CGO_ENABLED=0", "-X main.version=", "./cmd/cloudcloud"} {
			if !strings.Contains(build.Args, want) {
				t.Errorf("Dockerfile:%d: the go build does not have %q", build.Line, want)
			}
		}
		// Every package path it builds exists.
		for _, pkg := range regexp.MustCompile(`\./cmd/[A-Za-z0-9_./-]+`).FindAllString(build.Args, -1) {
			if _, err := os.Stat(filepath.Join(repoRoot, pkg)); err != nil {
				t.Errorf("Dockerfile:%d builds %s: %v", build.Line, pkg, err)
			}
		}
	})

	t.Run("build context files exist", func(t *testing.T) {
		for _, in := range ins {
			if in.Cmd != "COPY" && in.Cmd != "ADD" {
				continue
			}
			flags, rest := dockerFlags(in.Args)
			if _, ok := flags["from"]; ok {
				continue
			}
			fields := strings.Fields(rest)
			if len(fields) < 2 {
				t.Errorf("Dockerfile:%d: %s needs a source and a destination", in.Line, in.Cmd)
				continue
			}
			for _, src := range fields[:len(fields)-1] {
				if matches, _ := filepath.Glob(filepath.Join(repoRoot, src)); len(matches) == 0 {
					t.Errorf("Dockerfile:%d copies %s, which the repository does not have", in.Line, src)
				}
			}
		}
	})

	// The final stage's instructions, by name.
	last := map[string]instruction{}
	var copies []instruction
	for _, in := range final {
		last[in.Cmd] = in
		if in.Cmd == "COPY" {
			copies = append(copies, in)
		}
	}
	entry, ok := execForm(last["ENTRYPOINT"].Args)
	if !ok || len(entry) != 1 {
		t.Fatalf("Dockerfile: ENTRYPOINT %q must be the binary alone, in exec form", last["ENTRYPOINT"].Args)
	}
	binary := entry[0]

	t.Run("entrypoint is the copied binary", func(t *testing.T) {
		for _, c := range copies {
			flags, rest := dockerFlags(c.Args)
			fields := strings.Fields(rest)
			if flags["from"] != "" && len(fields) > 0 && fields[len(fields)-1] == binary {
				return
			}
		}
		t.Errorf("Dockerfile: ENTRYPOINT runs %s, but no COPY --from puts the binary there", binary)
	})

	t.Run("runs as a non-root user", func(t *testing.T) {
		user, ok := last["USER"]
		if !ok {
			t.Fatal("the final stage has no USER: the server would run as root")
		}
		if name, _, _ := strings.Cut(user.Args, ":"); name == "root" || name == "0" {
			t.Errorf("Dockerfile:%d: USER %s is root", user.Line, user.Args)
		}
	})

	t.Run("environment is configuration", func(t *testing.T) {
		var env []string
		for _, in := range final {
			if in.Cmd != "ENV" {
				continue
			}
			for _, kv := range strings.Fields(in.Args) {
				if !strings.Contains(kv, "=") {
					t.Fatalf("Dockerfile:%d: write ENV as KEY=value, not %q", in.Line, in.Args)
				}
				env = append(env, kv)
			}
		}
		cfg := checkEnv(t, "Dockerfile ENV", env)
		volumes, ok := execForm(last["VOLUME"].Args)
		if !ok {
			volumes = strings.Fields(last["VOLUME"].Args)
		}
		if !slices.Contains(volumes, cfg.Storage.Dir) {
			t.Errorf("Dockerfile: storage.dir is %q but the volumes are %q: state would not outlive the container", cfg.Storage.Dir, volumes)
		}
	})

	t.Run("exposes the default ports", func(t *testing.T) {
		web, device := defaultPorts(t)
		got := strings.Fields(last["EXPOSE"].Args)
		slices.Sort(got)
		want := []string{web, device}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("Dockerfile: EXPOSE %q, want the default web and device ports %q", got, want)
		}
	})

	t.Run("command is a cloudcloud subcommand", func(t *testing.T) {
		cmd, ok := execForm(last["CMD"].Args)
		if !ok || len(cmd) == 0 {
			t.Fatalf("Dockerfile: CMD %q must name the subcommand in exec form", last["CMD"].Args)
		}
		checkFlags(t, "Dockerfile CMD", cmd)
	})

	t.Run("healthcheck uses the binary", func(t *testing.T) {
		hc, ok := last["HEALTHCHECK"]
		if !ok {
			t.Fatal("the final stage has no HEALTHCHECK")
		}
		_, rest := dockerFlags(hc.Args)
		argv, ok := execForm(strings.TrimPrefix(rest, "CMD "))
		if !strings.HasPrefix(rest, "CMD ") || !ok || len(argv) < 2 {
			t.Fatalf("Dockerfile:%d: HEALTHCHECK needs CMD [\"%s\", \"healthcheck\", ...] (the image has no shell)", hc.Line, binary)
		}
		if argv[0] != binary || argv[1] != "healthcheck" {
			t.Errorf("Dockerfile:%d: HEALTHCHECK runs %q, want %s healthcheck", hc.Line, argv, binary)
		}
		checkFlags(t, "Dockerfile HEALTHCHECK", argv[1:])
		i := slices.Index(argv, "-url")
		if i < 0 || i+1 >= len(argv) {
			return // the binary's default URL
		}
		u, err := url.Parse(argv[i+1])
		web, _ := defaultPorts(t)
		if err != nil || u.Port() != web || u.Path != "/healthz" {
			t.Errorf("Dockerfile: HEALTHCHECK asks %q; want the web port %s and /healthz", argv[i+1], web)
		}
	})
}

func TestDockerignore(t *testing.T) {
	var patterns []string
	sc := bufio.NewScanner(strings.NewReader(readRepoFile(t, ".dockerignore")))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "!") || strings.Contains(line, "**") {
			t.Fatalf(".dockerignore: %q: keep to plain patterns (no ! or **), which this test understands", line)
		}
		patterns = append(patterns, path.Clean(strings.TrimPrefix(line, "/")))
	}
	// ignored reports whether Docker leaves file (slash-separated, from the
	// root) out of the build context: a pattern matches it or a parent.
	ignored := func(file string) string {
		for _, p := range patterns {
			for dir := file; dir != "." && dir != "/"; dir = path.Dir(dir) {
				if ok, _ := path.Match(p, dir); ok {
					return p
				}
			}
		}
		return ""
	}

	// Secrets and state must never be baked into an image.
	for _, file := range []string{"data/credentials.json", ".git/config", "dist/SHA256SUMS"} {
		if ignored(file) == "" {
			t.Errorf(".dockerignore lets %s into the build context", file)
		}
	}

	// Every file the binary is built from must stay in.
	cmd := exec.Command("go", "list", "-deps", "-f",
		`{{if not .Standard}}{{range .GoFiles}}{{$.Dir}}/{{.}}{{"\n"}}{{end}}{{range .EmbedFiles}}{{$.Dir}}/{{.}}{{"\n"}}{{end}}{{end}}`,
		"./cmd/cloudcloud")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list the binary's files: %v", err)
	}
	files := []string{"go.mod", "go.sum"}
	for _, f := range strings.Fields(string(out)) {
		if rel, err := filepath.Rel(repoRoot, f); err == nil && !strings.HasPrefix(rel, "..") {
			files = append(files, filepath.ToSlash(rel))
		}
	}
	if len(files) < 3 {
		t.Fatalf("go list found no source files of ./cmd/cloudcloud:\n%s", out)
	}
	for _, f := range files {
		if p := ignored(f); p != "" {
			t.Errorf(".dockerignore pattern %q leaves out %s, which the build needs", p, f)
		}
	}
}

func TestSystemdUnit(t *testing.T) {
	text := readRepoFile(t, "deploy/cloudcloud.service")
	entries, err := parseUnit(text)
	if err != nil {
		t.Fatalf("deploy/cloudcloud.service: %v", err)
	}
	one := func(key string) string {
		t.Helper()
		v := unitValues(entries, "Service", key)
		if len(v) != 1 {
			t.Errorf("deploy/cloudcloud.service: want one %s= in [Service], found %d", key, len(v))
			return ""
		}
		return v[0]
	}

	execStart := strings.Fields(one("ExecStart"))
	if len(execStart) < 2 || !filepath.IsAbs(execStart[0]) || execStart[1] != "serve" {
		t.Fatalf("ExecStart=%q: want an absolute path to cloudcloud, then serve", execStart)
	}
	binary := execStart[0]

	t.Run("command and flags exist", func(t *testing.T) {
		checkFlags(t, "ExecStart", execStart[1:])
	})

	t.Run("environment is configuration", func(t *testing.T) {
		var env []string
		for _, v := range unitValues(entries, "Service", "Environment") {
			for _, kv := range strings.Fields(v) {
				env = append(env, strings.Trim(kv, `"`))
			}
		}
		cfg := checkEnv(t, "Environment=", env)
		state := one("StateDirectory")
		if want := "/var/lib/" + state; cfg.Storage.Dir != want {
			t.Errorf("storage.dir is %q but StateDirectory=%s is %s", cfg.Storage.Dir, state, want)
		}
	})

	t.Run("dedicated user and hardening", func(t *testing.T) {
		user := unitValues(entries, "Service", "User")
		dynamic := unitValues(entries, "Service", "DynamicUser")
		if (len(user) == 0 || user[0] == "root" || user[0] == "0") && !slices.Contains(dynamic, "yes") {
			t.Error("the unit runs as root: set User= to a dedicated user or DynamicUser=yes")
		}
		want := map[string]string{
			"Restart":         "on-failure",
			"NoNewPrivileges": "yes",
			"ProtectSystem":   "strict",
			"ProtectHome":     "yes",
			"PrivateTmp":      "yes",
		}
		for key, value := range want {
			if got := one(key); got != value {
				t.Errorf("%s=%s, want %s", key, got, value)
			}
		}
		if n, err := strconv.Atoi(one("LimitNOFILE")); err != nil || n < 4096 {
			t.Errorf("LimitNOFILE=%s: every lamp is an open file; want at least 4096", one("LimitNOFILE"))
		}
		stop := one("TimeoutStopSec")
		d, err := time.ParseDuration(stop)
		if n, nerr := strconv.Atoi(stop); nerr == nil {
			d, err = time.Duration(n)*time.Second, nil
		}
		if err != nil || d <= server.ShutdownTimeout {
			t.Errorf("TimeoutStopSec=%s: a graceful shutdown takes up to %s; give it longer", stop, server.ShutdownTimeout)
		}
	})

	t.Run("systemd-analyze verify", func(t *testing.T) {
		analyze, err := exec.LookPath("systemd-analyze")
		if err != nil {
			t.Skip("systemd-analyze is not on PATH; the unit is checked only by the other tests")
		}
		// verify insists that ExecStart's binary exists: point it at the one
		// just built, under the unit's own file name.
		dir := t.TempDir()
		unit := filepath.Join(dir, "cloudcloud.service")
		if err := os.WriteFile(unit, []byte(strings.ReplaceAll(text, binary, cloudcloudBinary(t))), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, analyze, "verify", unit).CombinedOutput()
		if err != nil {
			t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
		}
		// verify exits 0 even for unknown keys and bad values; it only
		// complains. Any complaint about this unit is a failure.
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "cloudcloud.service") {
				t.Errorf("systemd-analyze verify: %s", line)
			}
		}
	})
}

// A slow build (a fresh machine's empty build cache) does not eat into the
// time the binary has to run.
func TestRunDeadlineStartsAfterTheBuild(t *testing.T) {
	slowBuild := func() string {
		bin := cloudcloudBinary(t)
		time.Sleep(1500 * time.Millisecond) // a build longer than the deadline below
		return bin
	}
	if out, code := runBinaryWithin(t, time.Second, slowBuild, "version"); code != 0 {
		t.Errorf("cloudcloud version after a slow build: exit %d: %s", code, out)
	}
}

func TestVersionStamp(t *testing.T) {
	out, code := runBinary(t, "version")
	if want := "cloudcloud " + testVersion; code != 0 || strings.TrimSpace(out) != want {
		t.Errorf("cloudcloud version = %q (exit %d), want %q", out, code, want)
	}
}

func TestMakefile(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not on PATH")
	}
	dryRun := func(target string, vars ...string) string {
		t.Helper()
		cmd := exec.Command("make", append([]string{"--no-print-directory", "-n", target}, vars...)...)
		cmd.Dir = repoRoot
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make -n %s: %v\n%s", target, err, out)
		}
		return string(out)
	}

	release := dryRun("release", "VERSION=v1.2.3")
	targets := []struct{ name, env string }{
		{"linux-amd64", "GOOS=linux GOARCH=amd64 "},
		{"linux-arm64", "GOOS=linux GOARCH=arm64 "},
		{"linux-armv7", "GOOS=linux GOARCH=arm GOARM=7 "},
	}
	for _, target := range targets {
		var line string
		for l := range strings.SplitSeq(release, "\n") {
			if strings.Contains(l, "dist/cloudcloud-v1.2.3-"+target.name+" ") {
				line = l
			}
		}
		if line == "" {
			t.Errorf("make release builds no dist/cloudcloud-v1.2.3-%s:\n%s", target.name, release)
			continue
		}
		for _, want := range []string{target.env, "CGO_ENABLED=0", "-X main.version=v1.2.3", "./cmd/cloudcloud"} {
			if !strings.Contains(line, want) {
				t.Errorf("make release: the %s build lacks %q:\n%s", target.name, want, line)
			}
		}
	}
	if !strings.Contains(release, "sha256sum") || !strings.Contains(release, "SHA256SUMS") {
		t.Errorf("make release writes no SHA256SUMS:\n%s", release)
	}
	if got := dryRun("test"); !strings.Contains(got, "go test -race ./...") {
		t.Errorf("make test runs %q, want the README's go test -race ./...", got)
	}
	if got := dryRun("bench"); !strings.Contains(got, "scripts/bench.sh") {
		t.Errorf("make bench runs %q, want scripts/bench.sh", got)
	}
}

func TestHealthcheckCommand(t *testing.T) {
	srv := startServer(t)
	if out, code := runBinary(t, "healthcheck", "-url", "http://"+srv.addrs.Web+"/healthz"); code != 0 {
		t.Errorf("healthcheck of a running server: exit %d\n%s", code, out)
	}
	// A port nobody listens on: the check must fail, as Docker then marks
	// the container unhealthy.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	if out, code := runBinary(t, "healthcheck", "-url", fmt.Sprintf("http://%s/healthz", closed)); code == 0 {
		t.Errorf("healthcheck of a closed port: exit 0\n%s", out)
	}
}
