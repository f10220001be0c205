// Command cloudcloud is the self-hosted server for cloud lamps. main only
// reads the command line; package server builds and runs the parts.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
	// The zone database inside the binary: time.zone works on a host or in
	// an image without /usr/share/zoneinfo.
	_ "time/tzdata"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/config"
	"github.com/cloudcloud/cloudcloud/internal/loadtest"
	"github.com/cloudcloud/cloudcloud/internal/server"
	"github.com/cloudcloud/cloudcloud/internal/simulator"
)

// version is stamped in by release builds (-ldflags "-X main.version=...");
// other builds leave it empty and report what Go recorded (stampedVersion).
var version string

// currentVersion is what `cloudcloud version`, the log and the UI say.
func currentVersion() string {
	if version != "" {
		return version
	}
	info, _ := debug.ReadBuildInfo()
	return stampedVersion(info)
}

// stampedVersion is the version Go records in every binary: the module's
// (v0.0.0-<date>-<rev> when built from a git checkout, or the tag), else
// "(devel)" with the git revision when there is one and whether the tree
// had changes ("(devel) 86de437, modified"). "dev" when there is no build
// information at all.
func stampedVersion(info *debug.BuildInfo) string {
	if info == nil {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	var modified bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value[:min(7, len(s.Value))]
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	switch {
	case rev == "":
		return "(devel)"
	case modified:
		return "(devel) " + rev + ", modified"
	}
	return "(devel) " + rev
}

func main() {
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr))
}

const usage = `cloudcloud: the self-hosted server for cloud lamps

Usage:
  cloudcloud [serve] [-config FILE] [-section.key VALUE ...]   run the server (default)
  cloudcloud simulate -url ws://localhost:8080/ -secret S      a lamp in the terminal
                     [-lamp bedroom] [-count 5]               (its ?lamp= id; several lamps at once)
  cloudcloud healthcheck [-url http://localhost:8000/healthz]  exit 0 when the server answers
  cloudcloud bench -lamps 10000 -secret S -password P -pid PID  load-test a running server
  cloudcloud bench -cluster 3 -lamps 45000 [-kill]            load-test three nodes on NATS, started here
  cloudcloud version

Run "cloudcloud serve -h" for every setting.
`

func run(args, environ []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(args, environ, stderr)
	case "simulate":
		err = simulate(args, stdin, stdout, stderr)
	case "healthcheck":
		err = healthcheck(args, stderr)
	case "bench":
		err = bench(args, stdin, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "cloudcloud", currentVersion())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "cloudcloud: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "cloudcloud %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

func serve(args, environ []string, stderr io.Writer) error {
	cfg, err := config.Parse("cloudcloud serve", args, environ, stderr)
	if err != nil {
		return err
	}
	level := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}[cfg.Log.Level]
	var handler slog.Handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	if cfg.Log.Format == "json" {
		handler = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	}
	logger := slog.New(handler)
	slog.SetDefault(logger)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := server.New(cfg, server.Options{Version: currentVersion(), Logger: logger})
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}

func simulate(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cloudcloud simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "ws://localhost:8080/", "the server's lamp port")
	secret := fs.String("secret", "", "the lamp secret (shared or named); see the server's first-start log or data/credentials.json")
	name := fs.String("name", "", "a label for this lamp's output")
	lamp := fs.String("lamp", "", "the lamp's id, sent as ?lamp= (1-32 of a-z 0-9 _ -); with -count, the ids are <lamp>-1 … <lamp>-N")
	count := fs.Int("count", 1, "how many lamps to simulate at once (1-100); each gets an id of its own, sim-1 … sim-N without -lamp")
	color := fs.Bool("color", true, "draw true-colour swatches")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *secret == "" {
		return errors.New("-secret is required: the lamp secret the server printed on first start (also in data/credentials.json)")
	}
	ids, err := simulatedLamps(*lamp, *count)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	errs := make(chan error, len(ids))
	for i, id := range ids {
		o := simulator.Options{URL: *url, Secret: *secret, Name: *name, Lamp: id, Out: stdout, Color: *color, Logger: logger}
		if len(ids) > 1 && o.Name == "" {
			o.Name = id
		}
		if i == 0 {
			o.In = stdin // typed lines go to the first lamp
		}
		go func() { errs <- simulator.Run(ctx, o) }()
	}
	var all []error
	for range ids {
		if err := <-errs; err != nil {
			all = append(all, err)
			stop() // a refused secret refuses every lamp
		}
	}
	return errors.Join(all...)
}

// simulatedLamps are the ?lamp= ids of simulate's lamps: lamp alone, or
// lamp-1 … lamp-N (sim-1 … without -lamp), so several lamps from one
// address are several lamps and not one.
func simulatedLamps(lamp string, count int) ([]string, error) {
	if count < 1 || count > 100 {
		return nil, fmt.Errorf("-count %d: simulate 1-100 lamps (for more, use cloudcloud bench)", count)
	}
	lamp = strings.ToLower(lamp)
	if count == 1 {
		if lamp == "" {
			return []string{""}, nil
		}
		if err := device.CheckLampID(lamp); err != nil {
			return nil, fmt.Errorf("-lamp: %w", err)
		}
		return []string{lamp}, nil
	}
	if lamp == "" {
		lamp = "sim"
	}
	ids := make([]string, count)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%d", lamp, i+1)
		if err := device.CheckLampID(ids[i]); err != nil {
			return nil, fmt.Errorf("-lamp with -count: %w", err)
		}
	}
	return ids, nil
}

func bench(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) == 1 && args[0] == loadtest.ClientFlag {
		// The cluster mode's lamps of one node, in a process of their own.
		return loadtest.Client(ctx, stdin, stdout, stderr)
	}
	fs := flag.NewFlagSet("cloudcloud bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o loadtest.Options
	fs.StringVar(&o.URL, "url", "ws://127.0.0.1:8080/", "the server's lamp port")
	fs.StringVar(&o.Secret, "secret", "", "the lamp secret")
	fs.StringVar(&o.API, "api", "http://127.0.0.1:8000", "the server's web port, for PUT /api/state")
	fs.StringVar(&o.Username, "user", "admin", "web.username")
	fs.StringVar(&o.Password, "password", "", "web.password")
	fs.IntVar(&o.PID, "pid", 0, "the server's process id, to read its RSS and CPU time from /proc (0: not measured)")
	fs.IntVar(&o.Lamps, "lamps", 1000, "simulated lamps")
	fs.IntVar(&o.InFlight, "inflight", 200, "handshakes in flight at once")
	fs.IntVar(&o.Changes, "changes", 50, "display changes to make (0: only connect and measure memory)")
	fs.DurationVar(&o.Every, "every", 200*time.Millisecond, "one display change every ...")
	fs.IntVar(&o.Stuck, "stuck", 0, "lamps that stop reading after the handshake")
	fs.DurationVar(&o.Settle, "settle", 2*time.Second, "wait this long after connecting before reading memory and changing the state")
	fs.BoolVar(&o.Named, "named", false, "give each lamp an id of its own (?lamp=bench-N), as lamps with their own secrets or ?lamp= are")
	jsonOut := fs.String("json", "", "also write the figures as JSON to this file")
	report := fs.String("report", "", "instead of measuring, render BENCHMARKS.md from the JSON results in this directory")
	machine := fs.String("machine", "", "with -report: the machine the figures come from")
	cluster := fs.Int("cluster", 0, "start this many nodes (children of this binary) on the NATS server of -nats, and spread -lamps over them; with several comma-separated -url and -api, spread them over those running nodes instead")
	natsURL := fs.String("nats", "", "with -cluster: a NATS server with JetStream for the nodes, e.g. nats://127.0.0.1:4222 (go run ./internal/loadtest/natsdev starts one)")
	kill := fs.Bool("kill", false, "with -cluster: after the changes, kill the last node and measure until its lamps are back on the others")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *report != "" {
		return loadtest.WriteReport(stdout, *report, *machine, time.Now().UTC().Format("2006-01-02"))
	}
	if *cluster > 0 || strings.Contains(o.URL, ",") {
		return benchCluster(ctx, o, *cluster, *natsURL, *kill, *jsonOut, stdout, stderr)
	}
	if o.Secret == "" || (o.Changes > 0 && o.Password == "") {
		return errors.New("-secret is required, and -password too when -changes > 0")
	}
	o.Log = stderr
	res, err := loadtest.Run(ctx, o)
	if err != nil {
		return err
	}
	res.Table(stdout)
	if *jsonOut != "" {
		f, err := os.Create(*jsonOut)
		if err != nil {
			return err
		}
		defer f.Close()
		return res.JSON(f)
	}
	return nil
}

// benchCluster is bench's cluster mode: n nodes started here (secret and
// password made up when not given), or the comma-separated nodes of o.URL
// and o.API.
func benchCluster(ctx context.Context, o loadtest.Options, n int, natsURL string, kill bool, jsonOut string, stdout, stderr io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this binary, to run nodes and lamp clients: %w", err)
	}
	co := loadtest.ClusterOptions{Secret: o.Secret, Username: o.Username, Password: o.Password, InFlight: o.InFlight,
		Changes: o.Changes, Every: o.Every, Settle: o.Settle, Kill: kill, Client: loadtest.ClientProcesses(exe, stderr), Log: stderr}
	if n > 0 {
		if co.Secret == "" {
			co.Secret = "bench-lamp-secret"
		}
		if co.Password == "" {
			co.Password = "bench-password"
		}
		if natsURL == "" {
			return errors.New("-cluster needs -nats: a NATS server with JetStream for the nodes, e.g. -nats nats://127.0.0.1:4222 after go run ./internal/loadtest/natsdev (or docker run -p 4222:4222 nats -js)")
		}
		fmt.Fprintf(stderr, "starting %d nodes on %s...\n", n, natsURL)
		local, err := loadtest.StartLocal(exe, natsURL, n, co.Secret, co.Password, stderr)
		if err != nil {
			return err
		}
		defer local.Close()
		co.Nodes = local.Nodes
	} else {
		urls, apis := strings.Split(o.URL, ","), strings.Split(o.API, ",")
		if len(urls) != len(apis) || co.Secret == "" || co.Password == "" {
			return fmt.Errorf("-url names %d nodes and -api %d: give each node's lamp URL and web URL in the same order, with -secret and -password", len(urls), len(apis))
		}
		if kill {
			return errors.New("-kill needs -cluster: the tool kills only nodes it started")
		}
		for i := range urls {
			co.Nodes = append(co.Nodes, loadtest.Node{Name: apis[i], Lamps: urls[i], API: apis[i]})
		}
	}
	co.LampsPerNode = o.Lamps / len(co.Nodes)
	res, err := loadtest.Cluster(ctx, co)
	if err != nil {
		return err
	}
	res.Table(stdout)
	if jsonOut != "" {
		f, err := os.Create(jsonOut)
		if err != nil {
			return err
		}
		defer f.Close()
		return res.JSON(f)
	}
	return nil
}

func healthcheck(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("cloudcloud healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://localhost:8000/healthz", "the server's health URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(*url)
	if err != nil {
		return fmt.Errorf("server not answering: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 100))
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
		return fmt.Errorf("server unhealthy: %s %q", resp.Status, body)
	}
	return nil
}
