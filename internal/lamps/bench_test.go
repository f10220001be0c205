package lamps

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/state"
)

// registryLamps is how many lamps BenchmarkRegistry keeps:
// BENCH_REGISTRY_LAMPS, else 1,000.
func registryLamps() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_REGISTRY_LAMPS")); err == nil && n > 0 {
		return n
	}
	return 1000
}

// BenchmarkRegistry: a registry of n lamps, each with its own state. It
// reports the start-up time (loading every record), the size of the
// records on disk, and, per op, one lamp's change including its write.
func BenchmarkRegistry(b *testing.B) {
	n := registryLamps()
	dir := b.TempDir()
	e := openWith(b, dir)
	for i := range n {
		id := fmt.Sprintf("lamp-%d", i)
		e.reg.Seen(device.LampSeen{Lamp: id, Addr: "192.0.2.7", FirmwareVersion: "1.4.2", Online: true, Time: time.Now()})
		if _, err := e.reg.SetState(id, state.Change{Mode: ptr(state.ModeManual), Brightness: ptr(i % 101)}); err != nil {
			b.Fatal(err)
		}
	}
	e.reg.Close()
	start := time.Now()
	e = openWith(b, dir)
	startup := time.Since(start)
	if got := len(e.reg.Lamps()); got != n {
		b.Fatalf("%d lamps loaded, want %d", got, n)
	}
	var size int64
	filepath.WalkDir(filepath.Join(dir, "lamps"), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				size += fi.Size()
			}
		}
		return nil
	})
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := e.reg.SetState(fmt.Sprintf("lamp-%d", i%n), state.Change{Pulse: ptr(i % 10)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(startup.Milliseconds()), "startup-ms")
	b.ReportMetric(float64(size)/1024, "disk-KiB")
	b.ReportMetric(float64(size)/float64(n), "disk-B/lamp")
}

// BenchmarkSeen: one lamp's connection coming or going in a registry of n
// lamps (the hot path of thousands of lamps connecting), without the
// flusher's write.
func BenchmarkSeen(b *testing.B) {
	n := registryLamps()
	e := openWith(b, b.TempDir())
	now := time.Now()
	for i := range n {
		e.reg.Seen(device.LampSeen{Lamp: fmt.Sprintf("lamp-%d", i), Addr: "192.0.2.7", Online: true, Time: now})
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("lamp-%d", i)
	}
	for i := 0; b.Loop(); i++ {
		e.reg.Seen(device.LampSeen{Lamp: ids[i%n], Addr: "192.0.2.7", FirmwareVersion: "1.4.2", Online: i%2 == 0, Time: now})
	}
}

// BenchmarkLamps: listing a registry of n lamps (GET /api/lamps without
// the encoding).
func BenchmarkLamps(b *testing.B) {
	n := registryLamps()
	e := openWith(b, b.TempDir())
	for i := range n {
		e.reg.Seen(device.LampSeen{Lamp: fmt.Sprintf("lamp-%d", i), Addr: "192.0.2.7", Online: true, Time: time.Now()})
	}
	for b.Loop() {
		if got := len(e.reg.Lamps()); got != n {
			b.Fatalf("%d lamps, want %d", got, n)
		}
	}
}
