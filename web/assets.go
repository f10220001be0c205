package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/cloudcloud/cloudcloud/web/templates"
)

//go:embed static
var staticFiles embed.FS

// asset is one static file, ready to serve: its URL carries a hash of its
// content, so it can be cached for a year and a new build is fetched at once.
type asset struct {
	name        string // "app.js"
	hashed      string // "app.3f9a1c2b4d.js"
	contentType string
	body        []byte
	gz          []byte // nil when compressing does not pay
	etag        string
}

// assetSet is every static file by hashed and by plain name.
type assetSet struct {
	byHashed map[string]*asset
	byName   map[string]*asset
	// manifests are the web app manifest for a light and a dark system
	// theme (the splash screen's colours).
	manifests map[bool][]byte
	// serviceWorker is static/sw.js with its cache list filled in.
	serviceWorker []byte
}

var (
	assetsOnce   sync.Once
	loadedAssets *assetSet
	assetsErr    error
)

// loadAssets reads, hashes and compresses the embedded files and draws the
// PNG icons, once per process.
func loadAssets() (*assetSet, error) {
	assetsOnce.Do(func() { loadedAssets, assetsErr = buildAssets() })
	return loadedAssets, assetsErr
}

func buildAssets() (*assetSet, error) {
	set := &assetSet{byHashed: map[string]*asset{}, byName: map[string]*asset{}}
	err := fs.WalkDir(staticFiles, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := staticFiles.ReadFile(p)
		if err != nil {
			return err
		}
		return set.add(path.Base(p), body)
	})
	if err != nil {
		return nil, fmt.Errorf("load static files: %w", err)
	}
	for _, ic := range pngIcons {
		var buf bytes.Buffer
		if err := png.Encode(&buf, drawIcon(ic.size, ic.maskable)); err != nil {
			return nil, fmt.Errorf("draw icon %s: %w", ic.name, err)
		}
		if err := set.add(ic.name, buf.Bytes()); err != nil {
			return nil, err
		}
	}
	set.manifests = map[bool][]byte{}
	for _, dark := range []bool{false, true} {
		if set.manifests[dark], err = set.buildManifest(dark); err != nil {
			return nil, err
		}
	}
	set.serviceWorker, err = set.buildServiceWorker()
	return set, err
}

func (s *assetSet) add(name string, body []byte) error {
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:5])
	ext := path.Ext(name)
	a := &asset{
		name:        name,
		hashed:      strings.TrimSuffix(name, ext) + "." + hash + ext,
		contentType: mime.TypeByExtension(ext),
		body:        body,
		etag:        `"` + hash + `"`,
	}
	if a.contentType == "" {
		a.contentType = http.DetectContentType(body)
	}
	if !strings.HasPrefix(a.contentType, "image/png") {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		if _, err := zw.Write(body); err != nil {
			return fmt.Errorf("compress %s: %w", name, err)
		}
		if err := zw.Close(); err != nil {
			return fmt.Errorf("compress %s: %w", name, err)
		}
		if buf.Len() < len(body)*9/10 {
			a.gz = buf.Bytes()
		}
	}
	s.byHashed[a.hashed] = a
	s.byName[name] = a
	return nil
}

// url is the content-hashed address of a static file.
func (s *assetSet) url(name string) string {
	if a, ok := s.byName[name]; ok {
		return "/static/" + a.hashed
	}
	return "/static/" + name
}

func (s *assetSet) templ() templates.Assets {
	return templates.Assets{
		CSS: s.url("app.css"), JS: s.url("app.js"), NoScriptCSS: s.url("noscript.css"),
		Icon: s.url("icon.svg"), Icon192: s.url("icon-192.png"), AppleTouchIcon: s.url("apple-touch-icon.png"),
		Manifest: "/manifest.webmanifest",
	}
}

// Theme colours of the manifest and of the theme-color meta tags in
// templates/layout.templ: app.css's --bg of each theme.
const (
	lightBackground = "#f3f1f7"
	darkBackground  = "#111016"
)

// buildManifest writes the web app manifest: installed on a phone's home
// screen, the page opens full screen like an app, in any orientation (a
// tablet on its stand, a desktop window). A manifest has one set of
// colours; dark is the set for a dark system theme, served to browsers
// that say so (see manifest).
func (s *assetSet) buildManifest(dark bool) ([]byte, error) {
	bg, other, otherScheme := lightBackground, darkBackground, "color_scheme_dark"
	if dark {
		bg, other, otherScheme = darkBackground, lightBackground, "color_scheme_light"
	}
	type icon struct {
		Src     string `json:"src"`
		Sizes   string `json:"sizes"`
		Type    string `json:"type"`
		Purpose string `json:"purpose,omitempty"`
	}
	m := map[string]any{
		"name":             "cloudcloud",
		"short_name":       "cloudcloud",
		"description":      "Colour, weather and status of your cloud lamps.",
		"id":               "/",
		"start_url":        "/",
		"scope":            "/",
		"display":          "standalone",
		"background_color": bg,
		"theme_color":      bg,
		// The proposed per-theme colours, for browsers that read them.
		"user_preferences": map[string]any{
			otherScheme: map[string]string{"background_color": other, "theme_color": other},
		},
		"icons": []icon{
			{Src: s.url("icon.svg"), Sizes: "any", Type: "image/svg+xml"},
			{Src: s.url("icon-192.png"), Sizes: "192x192", Type: "image/png"},
			{Src: s.url("icon-512.png"), Sizes: "512x512", Type: "image/png"},
			{Src: s.url("icon-maskable-512.png"), Sizes: "512x512", Type: "image/png", Purpose: "maskable"},
		},
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("web app manifest: %w", err)
	}
	return b, nil
}

// static serves /static/<name>. A hashed name is immutable; a plain or
// outdated name (a page cached before a deploy) still gets the current file,
// but must revalidate.
func (s *Server) static(c echo.Context) error {
	name := c.Param("name")
	a, immutable := s.assets.byHashed[name]
	if !immutable {
		var ok bool
		if a, ok = s.assets.byName[stripHash(name)]; !ok {
			return errorf(http.StatusNotFound, "no static file %q", name)
		}
	}
	h := c.Response().Header()
	if immutable {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	return serveAsset(c, a)
}

// stripHash turns "app.0123456789.js" back into "app.js".
func stripHash(name string) string {
	ext := path.Ext(name)
	base := strings.TrimSuffix(name, ext)
	if i := strings.LastIndexByte(base, '.'); i >= 0 && len(base)-i-1 == 10 {
		return base[:i] + ext
	}
	return name
}

func serveAsset(c echo.Context, a *asset) error {
	h := c.Response().Header()
	h.Set("ETag", a.etag)
	h.Set("Vary", "Accept-Encoding")
	h.Set(echo.HeaderContentType, a.contentType)
	if match := c.Request().Header.Get("If-None-Match"); match != "" && strings.Contains(match, a.etag) {
		return c.NoContent(http.StatusNotModified)
	}
	body := a.body
	if a.gz != nil && acceptsGzip(c.Request()) {
		h.Set(echo.HeaderContentEncoding, "gzip")
		body = a.gz
	}
	return c.Blob(http.StatusOK, a.contentType, body)
}

func acceptsGzip(r *http.Request) bool {
	for part := range strings.SplitSeq(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(enc) == "gzip" && !strings.Contains(strings.ReplaceAll(q, " ", ""), "q=0") {
			return true
		}
	}
	return false
}

// colorSchemeHint is the client hint in which Chromium says the system
// theme; pages ask for it (Accept-CH), so the manifest request carries it.
const colorSchemeHint = "Sec-CH-Prefers-Color-Scheme"

// manifest serves the manifest whose splash colours match the system
// theme the browser reports (light when it says nothing).
func (s *Server) manifest(c echo.Context) error {
	h := c.Response().Header()
	h.Set("Cache-Control", "no-cache")
	h.Set("Vary", colorSchemeHint)
	dark := strings.Trim(c.Request().Header.Get(colorSchemeHint), `" `) == "dark"
	return c.Blob(http.StatusOK, "application/manifest+json", s.assets.manifests[dark])
}

// buildServiceWorker fills static/sw.js's placeholders: what to keep for
// the offline page, and a cache name that changes with every build.
func (s *assetSet) buildServiceWorker() ([]byte, error) {
	src, ok := s.byName["sw.js"]
	if !ok {
		return nil, fmt.Errorf("static/sw.js is missing")
	}
	precache, err := json.Marshal([]string{offlinePath, s.url("app.css"), s.url("icon.svg")})
	if err != nil {
		return nil, fmt.Errorf("service worker: %w", err)
	}
	build := sha256.Sum256(append(append([]byte{}, precache...), src.body...))
	out := bytes.ReplaceAll(src.body, []byte("__PRECACHE__"), precache)
	return bytes.ReplaceAll(out, []byte("__BUILD__"), []byte(hex.EncodeToString(build[:5]))), nil
}

// offlinePath is the page the service worker shows when the server cannot
// be reached.
const offlinePath = "/offline.html"

// serviceWorker serves /sw.js from the root, so that it may control every
// page; it must be revalidated, or a new build's worker would be missed.
func (s *Server) serviceWorker(c echo.Context) error {
	h := c.Response().Header()
	h.Set("Cache-Control", "no-cache")
	return c.Blob(http.StatusOK, "text/javascript; charset=utf-8", s.assets.serviceWorker)
}

// offline is the page the service worker keeps: it says the server cannot
// be reached and reloads every few seconds until it can.
func (s *Server) offline(c echo.Context) error {
	return s.renderPage(c, http.StatusOK, templates.OfflinePage(templates.Page{Title: "Cannot reach cloudcloud", Assets: s.assets.templ(), Version: s.opt.Version}))
}

// favicon answers browsers that ask for /favicon.ico by habit.
func (s *Server) favicon(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "public, max-age=86400")
	return serveAsset(c, s.assets.byName["icon-192.png"])
}

// pngIcons are drawn at start: PNG icons for home screens that do not take
// SVG, from the same geometry as static/icon.svg.
var pngIcons = []struct {
	name     string
	size     int
	maskable bool
}{
	{"icon-192.png", 192, false},
	{"icon-512.png", 512, false},
	{"icon-maskable-512.png", 512, true},
	{"apple-touch-icon.png", 180, true}, // iOS rounds the corners itself
}

// drawIcon renders the logo: a white cloud on a pink-to-violet tile. The
// shapes are in the 48-unit box of icon.svg; each pixel is supersampled 4×4
// so edges are smooth. A maskable icon fills the square (the platform cuts
// its own shape) and keeps the cloud inside the central safe zone.
func drawIcon(size int, maskable bool) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	scale := float64(size) / 48
	cloudScale, offset := 1.0, 0.0
	if maskable {
		cloudScale = 0.8
		offset = 24 * (1 - cloudScale)
	}
	from := [3]float64{0xff, 0x7a, 0xc3}
	to := [3]float64{0x7b, 0x6c, 0xff}
	const ss = 4
	for py := range size {
		for px := range size {
			var tile, cloud int
			for sy := range ss {
				for sx := range ss {
					x := (float64(px) + (float64(sx)+0.5)/ss) / scale
					y := (float64(py) + (float64(sy)+0.5)/ss) / scale
					if maskable || inRoundRect(x, y, 0, 0, 48, 48, 13) {
						tile++
					}
					if inCloud((x-offset)/cloudScale, (y-offset)/cloudScale) {
						cloud++
					}
				}
			}
			if tile == 0 {
				continue
			}
			t := (float64(px) + float64(py)) / float64(2*size)
			var c [3]float64
			for i := range c {
				bg := from[i] + (to[i]-from[i])*t
				cov := float64(cloud) / float64(tile)
				c[i] = bg + (255-bg)*min(cov, 1)
			}
			img.SetNRGBA(px, py, color.NRGBA{R: uint8(c[0] + 0.5), G: uint8(c[1] + 0.5), B: uint8(c[2] + 0.5), A: uint8(tile * 255 / (ss * ss))})
		}
	}
	return img
}

func inCloud(x, y float64) bool {
	return inCircle(x, y, 17.5, 27, 6.5) || inCircle(x, y, 24.5, 22.5, 8.5) ||
		inCircle(x, y, 31.5, 27.5, 5.5) || inRoundRect(x, y, 11, 27, 26, 6.5, 3.25)
}

func inCircle(x, y, cx, cy, r float64) bool { return (x-cx)*(x-cx)+(y-cy)*(y-cy) <= r*r }

func inRoundRect(x, y, rx, ry, w, h, rad float64) bool {
	if x < rx || y < ry || x > rx+w || y > ry+h {
		return false
	}
	cx := min(max(x, rx+rad), rx+w-rad)
	cy := min(max(y, ry+rad), ry+h-rad)
	return inCircle(x, y, cx, cy, rad)
}
