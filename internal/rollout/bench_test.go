package rollout

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/firmware"
	"github.com/cloudcloud/cloudcloud/internal/firmware/firmwaretest"
	"github.com/cloudcloud/cloudcloud/internal/storage"
)

// BenchmarkConcurrentDownloads is 20 lamps, each told to update, fetching a
// 2 MiB image at once through the real handler with the tracker's progress
// hook, the tracker on a temp dir. Each lamp downloads from its own loopback
// address (127.0.1.1-20), so the tracker follows 20 separate updates. One op
// is the whole round: from the first request to the last byte of the last
// lamp. BENCHMARKS.md has the figures; fsyncs are counted with
// `strace -f -c -e trace=fsync,fdatasync` around the test binary.
func BenchmarkConcurrentDownloads(b *testing.B) {
	const lamps = 20
	data, err := storage.OpenDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	fwRecords, err := data.Bucket("firmware")
	if err != nil {
		b.Fatal(err)
	}
	images, err := data.Objects("firmware")
	if err != nil {
		b.Fatal(err)
	}
	fw, err := firmware.OpenStore(fwRecords, images, nil, quiet)
	if err != nil {
		b.Fatal(err)
	}
	img := firmwaretest.Build(firmwaretest.Image{Version: "2.0", Payload: 2 << 20})
	if _, err := fw.Save(bytes.NewReader(img), firmware.SaveOptions{}); err != nil {
		b.Fatal(err)
	}
	tr, err := Open(data, nil, quiet, time.Hour, func() string { return "2.0" })
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(fw.Handler(firmware.Hooks{Served: tr.Served}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	clients := make([]*http.Client, lamps)
	for i := range clients {
		local := &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(i+1))}
		d := net.Dialer{LocalAddr: local}
		clients[i] = &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) },
		}}
	}
	ask := func() {
		for i := range lamps {
			tr.Device(device.Info{ID: fmt.Sprintf("d-%d", i), Name: fmt.Sprintf("lamp-%d", i),
				RemoteAddr: fmt.Sprintf("127.0.1.%d:4000", i+1), Event: "updating"})
		}
	}
	b.SetBytes(int64(lamps * len(img)))
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		ask()
		b.StartTimer()
		var wg sync.WaitGroup
		errs := make(chan error, lamps)
		for _, c := range clients {
			wg.Go(func() {
				res, err := c.Get(srv.URL + "/firmware.bin")
				if err != nil {
					errs <- err
					return
				}
				defer res.Body.Close()
				n, err := io.Copy(io.Discard, res.Body)
				if err != nil || n != int64(len(img)) {
					errs <- fmt.Errorf("got %d of %d bytes: %v", n, len(img), err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
	}
}
