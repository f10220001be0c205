#!/usr/bin/env bash
# Runs the load tool against a real server and writes BENCHMARKS.md.
# The server is pinned to core 0 and the load tool to core 1, so the figures
# say what one core of this machine does. Usage: scripts/bench.sh [outdir]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench-results}
mkdir -p "$out"
bin=$(mktemp -d)/cloudcloud
go build -o "$bin" ./cmd/cloudcloud

secret=bench-lamp-secret password=bench-password
web=127.0.0.1:18000 dev=127.0.0.1:18080

# scenario NAME ARGS...: a fresh server, one run of the load tool.
scenario() {
  local name=$1; shift
  local data; data=$(mktemp -d)
  CLOUDCLOUD_DEVICE_AUTH_SECRET=$secret CLOUDCLOUD_WEB_PASSWORD=$password CLOUDCLOUD_LOG_LEVEL=error \
    taskset -c 0 "$bin" serve -storage.dir "$data" -web.listen $web -device.listen $dev \
    -device.ping_interval 30s -device.keepalive_timeout 90s -device.max_handshakes_per_address 1000 >"$out/$name.server.log" 2>&1 &
  local pid=$!
  for _ in $(seq 50); do "$bin" healthcheck -url "http://$web/healthz" 2>/dev/null && break; sleep 0.1; done
  echo "== $name: $*"
  taskset -c 1 "$bin" bench -url "ws://$dev/" -api "http://$web" -secret $secret -password $password \
    -pid $pid -json "$out/$name.json" "$@" | tee "$out/$name.txt"
  kill $pid; wait $pid 2>/dev/null || true
  rm -rf "$data"
}

scenario 1000        -lamps 1000  -changes 50
scenario 10000       -lamps 10000 -changes 50
scenario 19500       -lamps 19500 -changes 50
scenario 19500-overload -lamps 19500 -changes 100 -every 50ms
scenario 10lamps     -lamps 10    -changes 200 -every 20ms
scenario 1000-stuck0 -lamps 1000  -changes 200 -every 50ms
scenario 1000-stuck1 -lamps 1000  -changes 200 -every 50ms -stuck 1

echo "== go benchmarks"
go test -run XXX -bench . -benchmem ./protocol ./device | grep -E '^(Benchmark|goos|goarch|cpu)' | tee "$out/gobench.txt"

machine="$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/{print $2}') GiB, $(go version | cut -d' ' -f3), open-file limit $(ulimit -n)"
# The report replaces the part of BENCHMARKS.md above the marker; the
# sections written by hand below it (other tools' figures) stay.
marker='<!-- Everything above is written by `make bench`'
{
  "$bin" bench -report "$out" -machine "$machine"
  echo
  sed -n "/^$marker/,\$p" BENCHMARKS.md
} > "$out/BENCHMARKS.md"
mv "$out/BENCHMARKS.md" BENCHMARKS.md
echo "wrote BENCHMARKS.md"
