// Package deploy keeps cloudcloud's deployment examples honest: the
// Dockerfile and .dockerignore at the repository root, nginx.conf (TLS, wss
// for lamps, https for the UI) and cloudcloud.service (systemd) in this
// directory, cluster/ (a Docker Compose file with three nodes on NATS
// JetStream behind nginx, and that nginx's configuration), and the
// Makefile's release builds.
//
// The examples are what people copy, so the tests here use them as they are:
// they run nginx with deploy/nginx.conf in front of a real server and connect
// a lamp over wss, run the cluster's nginx.conf in front of three real
// nodes and move a lamp off a stopped one, verify the systemd unit with
// systemd-analyze, and check
// that every subcommand, flag, environment variable and port the examples
// name exists in the binary and its configuration.
//
// The small readers of those file formats live in parsers_test.go; they read just
// enough of each format for the checks and are fuzzed.
package deploy
