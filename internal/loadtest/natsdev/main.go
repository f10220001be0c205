// Command natsdev runs a NATS server with JetStream on loopback for the
// load tool's cluster mode (cloudcloud bench -cluster N -nats ...) and for
// trying several nodes by hand, until interrupted. It is a development
// tool: production runs the official nats-server (deploy/cluster).
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

func main() {
	addr := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.Int("port", 4222, "port to listen on")
	dir := flag.String("store", "", "JetStream's directory (empty: a temporary one, removed at the end)")
	flag.Parse()
	store := *dir
	if store == "" {
		tmp, err := os.MkdirTemp("", "natsdev-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(tmp)
		store = tmp
	}
	ns, err := natsserver.NewServer(&natsserver.Options{Host: *addr, Port: *port, JetStream: true, StoreDir: store, NoSigs: true})
	if err != nil {
		log.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		log.Fatal("NATS did not start within 10s")
	}
	fmt.Println("NATS with JetStream on", ns.ClientURL(), "- interrupt to stop")
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	ns.Shutdown()
	ns.WaitForShutdown()
}
