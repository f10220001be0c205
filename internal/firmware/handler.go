package firmware

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Hooks lets the server watch downloads.
type Hooks struct {
	// Served is called as bytes go out (at least every 64 KiB and once at the
	// end, with Done set) so the UI can show progress. It runs on the
	// request's goroutine: keep it quick. Only GET answers that carry the
	// image (200 or 206) report; HEAD, 304 and errors do not.
	Served func(d Download)
}

// Download is the progress of one firmware download.
type Download struct {
	RemoteAddr string
	Sent       int64 // bytes of the body written so far
	Total      int64 // bytes this answer carries (the range length for a 206)
	Done       bool  // the handler has finished; Sent < Total means the client went away
	Version    string

	// What the lamp says it runs, from the Arduino HTTPUpdate headers (empty
	// when the client sends none).
	ClientVersion, ClientMD5, ClientMAC string
}

// progressEvery is how often Served hears about a download in progress.
const progressEvery = 64 << 10

// Handler serves the current image: GET and HEAD, Content-Length always
// (Arduino's updater speaks HTTP/1.0), a strong ETag of the SHA-256,
// Last-Modified, Range and conditional requests, and x-MD5 for Arduino's
// updater. A client whose x-ESP32-sketch-md5 (or x-ESP8266-sketch-md5)
// already equals the image's MD5 gets 304, which Arduino's updater reads as
// "no update".
// DownloadTimeout bounds the time one download of the image may take.
const DownloadTimeout = 10 * time.Minute

func (s *Store) Handler(hooks Hooks) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "Only GET and HEAD are allowed here.", http.StatusMethodNotAllowed)
			return
		}
		f, info, since, err := s.open()
		if errors.Is(err, ErrNoImage) {
			http.Error(w, "No firmware image has been uploaded yet.", http.StatusNotFound)
			return
		}
		if err != nil {
			s.logger.Error("cannot serve firmware", "err", err)
			http.Error(w, "The firmware image cannot be read right now; see the server log.", http.StatusInternalServerError)
			return
		}
		defer f.Close()
		// A lamp on a weak link may need longer than the server's write
		// timeout for a whole image.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(DownloadTimeout))

		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Disposition", `attachment; filename="firmware.bin"`)
		h.Set("ETag", `"`+info.SHA256+`"`)
		h.Set("x-MD5", info.MD5)
		// The same URL serves a new image after every upload: caches must ask.
		h.Set("Cache-Control", "no-cache")

		client := clientHeaders(r)
		if client.md5 != "" && strings.EqualFold(client.md5, info.MD5) {
			w.WriteHeader(http.StatusNotModified)
			return
		}

		d := Download{
			RemoteAddr:    r.RemoteAddr,
			Version:       info.Version,
			ClientVersion: client.version,
			ClientMD5:     client.md5,
			ClientMAC:     client.mac,
		}
		pw := &progressWriter{ResponseWriter: w, hook: hooks.Served, report: r.Method == http.MethodGet, d: d}
		http.ServeContent(pw, r, "firmware.bin", since, f)
		pw.finish()
		if pw.carriesImage() {
			s.logger.Info("firmware served", "remote_addr", r.RemoteAddr, "version", info.Version,
				"status", pw.status, "sent", pw.d.Sent, "total", pw.d.Total, "complete", pw.d.Sent == pw.d.Total,
				"client_version", client.version, "client_mac", client.mac)
		}
	})
}

type updaterHeaders struct{ version, md5, mac string }

// clientHeaders reads what Arduino's HTTPUpdate (ESP32) or ESP8266httpUpdate
// says about the running firmware.
func clientHeaders(r *http.Request) updaterHeaders {
	get := func(suffix string) string {
		if v := r.Header.Get("x-ESP32-" + suffix); v != "" {
			return v
		}
		return r.Header.Get("x-ESP8266-" + suffix)
	}
	return updaterHeaders{version: get("version"), md5: get("sketch-md5"), mac: get("STA-MAC")}
}

// progressWriter counts body bytes and reports them to the Served hook.
type progressWriter struct {
	http.ResponseWriter
	hook       func(Download)
	report     bool // a GET (HEAD answers carry no body to report)
	d          Download
	status     int
	lastReport int64
}

func (p *progressWriter) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
		if n, err := strconv.ParseInt(p.Header().Get("Content-Length"), 10, 64); err == nil {
			p.d.Total = n
		}
	}
	p.ResponseWriter.WriteHeader(code)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.WriteHeader(http.StatusOK)
	}
	n, err := p.ResponseWriter.Write(b)
	p.d.Sent += int64(n)
	if p.reporting() && p.d.Sent-p.lastReport >= progressEvery {
		p.lastReport = p.d.Sent
		p.hook(p.d)
	}
	return n, err
}

// carriesImage is true for answers that send image bytes to a GET.
func (p *progressWriter) carriesImage() bool {
	return p.report && (p.status == http.StatusOK || p.status == http.StatusPartialContent)
}

func (p *progressWriter) reporting() bool { return p.hook != nil && p.carriesImage() }

func (p *progressWriter) finish() {
	if p.reporting() {
		p.d.Done = true
		p.hook(p.d)
	}
}

// Unwrap lets http.ResponseController reach the real writer.
func (p *progressWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }
