package firmware

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/firmware/firmwaretest"
)

// recorder keeps what the Served hook reports. The final report of a
// download can come after the client has read the last byte, so tests wait
// for it.
type recorder struct {
	mu    sync.Mutex
	got   []Download
	dones chan struct{}
}

func (r *recorder) served(d Download) {
	r.mu.Lock()
	r.got = append(r.got, d)
	r.mu.Unlock()
	if d.Done {
		r.dones <- struct{}{}
	}
}

// waitDone waits for n more finished downloads and returns every report so far.
func (r *recorder) waitDone(t *testing.T, n int) []Download {
	t.Helper()
	for range n {
		select {
		case <-r.dones:
		case <-time.After(10 * time.Second):
			t.Fatal("Served never reported the download as done")
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Download(nil), r.got...)
}

// serve starts the download handler on 127.0.0.1 and records hook calls.
func serve(t *testing.T, s *Store) (string, *recorder) {
	t.Helper()
	rec := &recorder{dones: make(chan struct{}, 100)}
	srv := httptest.NewServer(s.Handler(Hooks{Served: rec.served}))
	t.Cleanup(srv.Close)
	return srv.URL + "/firmware.bin", rec
}

func do(t *testing.T, method, url string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestHandlerNoImage(t *testing.T) {
	url, rec := serve(t, openTestStore(t, t.TempDir()))
	resp, body := do(t, http.MethodGet, url, nil)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "No firmware image has been uploaded yet.") {
		t.Errorf("got %d %q", resp.StatusCode, body)
	}
	if got := rec.waitDone(t, 0); len(got) != 0 {
		t.Error("Served called for a 404")
	}
}

func TestHandlerResponses(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	img := firmwaretest.Build(firmwaretest.Image{Payload: 3000})
	info := mustSave(t, s, img)
	url, rec := serve(t, s)
	etag := `"` + info.SHA256 + `"`
	full, _ := do(t, http.MethodGet, url, nil)
	lastModified := full.Header.Get("Last-Modified")

	tests := []struct {
		name       string
		method     string
		header     map[string]string
		wantStatus int
		wantBody   []byte
		wantHeader map[string]string
	}{
		{
			name: "full GET", method: http.MethodGet, wantStatus: http.StatusOK, wantBody: img,
			wantHeader: map[string]string{
				"Content-Length": fmt.Sprint(len(img)), "Content-Type": "application/octet-stream",
				"ETag": etag, "X-Md5": info.MD5, "Accept-Ranges": "bytes",
			},
		},
		{
			name: "HEAD", method: http.MethodHead, wantStatus: http.StatusOK, wantBody: []byte{},
			wantHeader: map[string]string{"Content-Length": fmt.Sprint(len(img)), "ETag": etag, "X-Md5": info.MD5},
		},
		{
			name: "range", method: http.MethodGet, header: map[string]string{"Range": "bytes=10-19"},
			wantStatus: http.StatusPartialContent, wantBody: img[10:20],
			wantHeader: map[string]string{"Content-Range": fmt.Sprintf("bytes 10-19/%d", len(img)), "Content-Length": "10"},
		},
		{
			name: "resume to the end", method: http.MethodGet, header: map[string]string{"Range": "bytes=100-"},
			wantStatus: http.StatusPartialContent, wantBody: img[100:],
		},
		{
			name: "range past the end", method: http.MethodGet, header: map[string]string{"Range": fmt.Sprintf("bytes=%d-", len(img)+10)},
			wantStatus: http.StatusRequestedRangeNotSatisfiable,
			wantHeader: map[string]string{"Content-Range": fmt.Sprintf("bytes */%d", len(img))},
		},
		{
			name: "If-Range with the current ETag", method: http.MethodGet, header: map[string]string{"Range": "bytes=0-3", "If-Range": etag},
			wantStatus: http.StatusPartialContent, wantBody: img[:4],
		},
		{
			name: "If-Range with an old ETag gets the whole new image", method: http.MethodGet, header: map[string]string{"Range": "bytes=0-3", "If-Range": `"old"`},
			wantStatus: http.StatusOK, wantBody: img,
		},
		{
			name: "If-None-Match", method: http.MethodGet, header: map[string]string{"If-None-Match": etag},
			wantStatus: http.StatusNotModified, wantBody: []byte{},
		},
		{
			name: "If-None-Match with another ETag", method: http.MethodGet, header: map[string]string{"If-None-Match": `"old"`},
			wantStatus: http.StatusOK, wantBody: img,
		},
		{
			name: "If-Modified-Since", method: http.MethodGet, header: map[string]string{"If-Modified-Since": lastModified},
			wantStatus: http.StatusNotModified, wantBody: []byte{},
		},
		{
			name: "Arduino lamp already runs this image", method: http.MethodGet,
			header:     map[string]string{"x-ESP32-sketch-md5": strings.ToUpper(info.MD5), "User-Agent": "ESP32-http-Update"},
			wantStatus: http.StatusNotModified, wantBody: []byte{},
		},
		{
			name: "ESP8266 updater already runs this image", method: http.MethodGet,
			header:     map[string]string{"x-ESP8266-sketch-md5": info.MD5},
			wantStatus: http.StatusNotModified, wantBody: []byte{},
		},
		{
			name: "Arduino lamp runs another image", method: http.MethodGet,
			header:     map[string]string{"x-ESP32-sketch-md5": "0123456789abcdef0123456789abcdef"},
			wantStatus: http.StatusOK, wantBody: img,
		},
		{
			name: "POST", method: http.MethodPost, wantStatus: http.StatusMethodNotAllowed,
			wantHeader: map[string]string{"Allow": "GET, HEAD"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, tt.method, url, tt.header)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d (body %.80q)", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantBody != nil && !bytes.Equal(body, tt.wantBody) {
				t.Errorf("body is %d bytes, want %d bytes", len(body), len(tt.wantBody))
			}
			for k, want := range tt.wantHeader {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
		})
	}
	if lastModified == "" {
		t.Error("no Last-Modified header")
	}
	// Only answers carrying image bytes to a GET report progress: the full
	// GET above, then every 200/206 GET in the table.
	const carriedImage = 8
	rec.waitDone(t, carriedImage)
	select {
	case <-rec.dones:
		t.Error("Served reported more finished downloads than answers that carried the image")
	default:
	}
}

func TestHandlerServedHook(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	img := firmwaretest.Build(firmwaretest.Image{Version: "4.2", Payload: 300 << 10})
	mustSave(t, s, img)

	tests := []struct {
		name      string
		header    map[string]string
		wantTotal int64
	}{
		{"full download", map[string]string{
			"x-ESP32-version": "4.1", "x-ESP32-sketch-md5": "0123456789abcdef0123456789abcdef", "x-ESP32-STA-MAC": "24:0A:C4:A3:15:3C",
		}, int64(len(img))},
		{"resumed download", map[string]string{"Range": "bytes=1000-"}, int64(len(img) - 1000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, rec := serve(t, s)
			do(t, http.MethodGet, url, tt.header)
			got := rec.waitDone(t, 1)
			if len(got) < int(tt.wantTotal/progressEvery) {
				t.Fatalf("Served called %d times for %d bytes; want at least one call per 64 KiB", len(got), tt.wantTotal)
			}
			var lastSent int64
			for i, d := range got {
				if d.Total != tt.wantTotal || d.Sent < lastSent || d.Sent > d.Total || d.Done != (i == len(got)-1) {
					t.Fatalf("call %d: %+v (previous sent %d)", i, d, lastSent)
				}
				lastSent = d.Sent
			}
			last := got[len(got)-1]
			if last.Sent != tt.wantTotal || last.Version != "4.2" || !strings.HasPrefix(last.RemoteAddr, "127.0.0.1:") {
				t.Errorf("final call %+v", last)
			}
			if last.ClientVersion != tt.header["x-ESP32-version"] || last.ClientMD5 != tt.header["x-ESP32-sketch-md5"] ||
				last.ClientMAC != tt.header["x-ESP32-STA-MAC"] {
				t.Errorf("client headers not passed on: %+v", last)
			}
		})
	}

	t.Run("HEAD reports nothing", func(t *testing.T) {
		url, rec := serve(t, s)
		do(t, http.MethodHead, url, nil)
		if got := rec.waitDone(t, 0); len(got) != 0 {
			t.Errorf("Served called for HEAD: %+v", got)
		}
	})
	t.Run("no hook", func(t *testing.T) {
		srv := httptest.NewServer(s.Handler(Hooks{}))
		defer srv.Close()
		if resp, body := do(t, http.MethodGet, srv.URL, nil); resp.StatusCode != http.StatusOK || !bytes.Equal(body, img) {
			t.Errorf("status %d, %d bytes", resp.StatusCode, len(body))
		}
	})
}

func TestHandlerLastModifiedMovesOnRollback(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	// A frozen clock: every change lands in the same second.
	clock := time.Date(2026, 11, 21, 22, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return clock }
	a := firmwaretest.Build(firmwaretest.Image{Version: "1"})
	b := firmwaretest.Build(firmwaretest.Image{Version: "2"})
	mustSave(t, s, a)
	mustSave(t, s, b)
	url, _ := serve(t, s)
	resp, _ := do(t, http.MethodGet, url, nil)
	seen := resp.Header.Get("Last-Modified")

	if _, err := s.Rollback(); err != nil {
		t.Fatal(err)
	}
	resp, body := do(t, http.MethodGet, url, map[string]string{"If-Modified-Since": seen})
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, a) {
		t.Errorf("after rollback If-Modified-Since gave %d and %d bytes; want the rolled-back image", resp.StatusCode, len(body))
	}
}

func TestHandlerDownloadDuringReplace(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	old := firmwaretest.Build(firmwaretest.Image{Version: "1", Payload: 1 << 20, Seed: 1})
	mustSave(t, s, old)

	// The hook runs on the serving goroutine: holding it at the first
	// progress report pauses the server in the middle of the file.
	midway, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(s.Handler(Hooks{Served: func(d Download) {
		if !d.Done {
			once.Do(func() {
				close(midway)
				<-resume
			})
		}
	}}))
	defer srv.Close()

	type result struct {
		resp *http.Response
		body []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get(srv.URL)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		done <- result{resp, body, err}
	}()
	select {
	case <-midway:
	case r := <-done:
		t.Fatalf("download finished without a progress report: %v", r.err)
	}
	// Two uploads: the first pushes the old image to "previous", the second
	// deletes it from disk, all while the download is half sent.
	newest := firmwaretest.Build(firmwaretest.Image{Version: "3", Seed: 3})
	mustSave(t, s, firmwaretest.Build(firmwaretest.Image{Version: "2", Seed: 2}))
	mustSave(t, s, newest)
	if _, err := os.Stat(filepath.Join(dir, sha256Hex(old)+".bin")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the old image is still on disk (%v); the test would prove nothing", err)
	}
	close(resume)

	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !bytes.Equal(r.body, old) {
		t.Errorf("download that started before the replace got %d bytes that are not the old image", len(r.body))
	}
	if r.resp.Header.Get("ETag") != `"`+sha256Hex(old)+`"` {
		t.Error("ETag does not describe the bytes sent")
	}
	if _, body := do(t, http.MethodGet, srv.URL, nil); !bytes.Equal(body, newest) {
		t.Error("a new download does not get the newest image")
	}
}

func TestHandlerConcurrentDownloadsAndUploads(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	images := map[string][]byte{}
	var versions [][]byte
	for i := range 4 {
		img := firmwaretest.Build(firmwaretest.Image{Version: fmt.Sprint(i), Payload: 100 << 10, Seed: uint64(i)})
		images[sha256Hex(img)] = img
		versions = append(versions, img)
	}
	mustSave(t, s, versions[0])
	url, _ := serve(t, s)

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 4 {
		wg.Go(func() {
			for range 10 {
				resp, err := http.Get(url)
				if err != nil {
					errs <- err
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					errs <- err
					return
				}
				etag := strings.Trim(resp.Header.Get("ETag"), `"`)
				if want, ok := images[etag]; !ok || !bytes.Equal(body, want) {
					errs <- fmt.Errorf("download of %d bytes does not match its ETag %s", len(body), etag)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := 1; i <= 12; i++ {
			if _, err := s.Save(bytes.NewReader(versions[i%len(versions)]), SaveOptions{}); err != nil {
				errs <- err
				return
			}
			if i%3 == 0 {
				if _, err := s.Rollback(); err != nil {
					errs <- err
					return
				}
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func sha256Hex(b []byte) string {
	info, err := Parse(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		panic(err)
	}
	return info.SHA256
}
