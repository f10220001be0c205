package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"
)

// LocalCluster is a cluster on this machine for the load tool: cloudcloud
// nodes as child processes of the binary exe, each with a storage.dir of
// its own, on a NATS server started beforehand. The NATS server is not
// part of the binary: it would make a server binary half as large again
// for a benchmark (go run ./internal/loadtest/natsdev starts one).
type LocalCluster struct {
	Nodes []Node
	cmds  []*exec.Cmd
	dir   string
}

// StartLocal starts n nodes on the NATS server (with JetStream) at
// natsURL, with the lamp secret and UI password given; their logs go to
// log. Close stops them.
func StartLocal(exe, natsURL string, n int, secret, password string, log io.Writer) (*LocalCluster, error) {
	dir, err := os.MkdirTemp("", "cloudcloud-bench-cluster-")
	if err != nil {
		return nil, err
	}
	c := &LocalCluster{dir: dir}
	for i := range n {
		name := fmt.Sprintf("node-%d", i+1)
		web, dev, err := freePort(), freePort(), error(nil)
		if web == "" || dev == "" {
			err = errors.New("no free loopback port")
		}
		if err == nil {
			err = os.MkdirAll(fmt.Sprintf("%s/%s", dir, name), 0o700)
		}
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		// The settings of scripts/bench.sh: pings that do not add to the
		// figures, and handshakes from one source address by the thousand.
		cmd := exec.Command(exe, "serve", "-storage.dir", fmt.Sprintf("%s/%s", dir, name),
			"-web.listen", web, "-device.listen", dev,
			"-cluster.nats_url", natsURL, "-cluster.node", name,
			"-device.ping_interval", "30s", "-device.keepalive_timeout", "90s", "-device.max_handshakes_per_address", "1000",
			"-log.level", "error")
		cmd.Env = append(os.Environ(), "CLOUDCLOUD_DEVICE_AUTH_SECRET="+secret, "CLOUDCLOUD_WEB_PASSWORD="+password)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			c.Close()
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
		c.cmds = append(c.cmds, cmd)
		c.Nodes = append(c.Nodes, Node{Name: name, Lamps: "ws://" + dev + "/", API: "http://" + web, Kill: func() error {
			if err := cmd.Process.Kill(); err != nil {
				return err
			}
			_ = cmd.Wait()
			return nil
		}})
	}
	for _, node := range c.Nodes {
		if err := waitHealthy(node.API); err != nil {
			c.Close()
			return nil, fmt.Errorf("%s: %w", node.Name, err)
		}
	}
	return c, nil
}

// Close stops the nodes that still run and removes their data.
func (c *LocalCluster) Close() {
	for _, cmd := range c.cmds {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}
	os.RemoveAll(c.dir)
}

// ClientProcesses starts each lamp client as `exe bench -lamp-client`, its
// log to log; the process ends when its stdin closes or ctx does.
func ClientProcesses(exe string, log io.Writer) func(ctx context.Context, i int) (io.WriteCloser, io.ReadCloser, error) {
	return func(ctx context.Context, i int) (io.WriteCloser, io.ReadCloser, error) {
		cmd := exec.CommandContext(ctx, exe, "bench", ClientFlag)
		cmd.Stderr = log
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, nil, err
		}
		go func() { _ = cmd.Wait() }()
		return in, out, nil
	}
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return ""
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitHealthy waits up to 30s for api/healthz to answer ok.
func waitHealthy(api string) error {
	var last error
	for range 300 {
		resp, err := http.Get(strings.TrimRight(api, "/") + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not healthy within 30s: %w", last)
}
