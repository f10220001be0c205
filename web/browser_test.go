package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/automation"
	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/firmware"
	"github.com/cloudcloud/cloudcloud/internal/lamps"
	"github.com/cloudcloud/cloudcloud/internal/state"
	"github.com/cloudcloud/cloudcloud/protocol"
	"github.com/cloudcloud/cloudcloud/weather"

	"github.com/cloudcloud/cloudcloud/internal/firmware/firmwaretest"
)

// The browser tests drive Debian's Chromium, headless, at a phone's size
// (390×844), against the real server with simulated lamps (real WebSocket
// clients). They are slow on two cores, so they share one browser in one
// test function. Screenshots of the main states go to $ARTIFACTS_DIR
// (the lead's CI sets it), else to a temp dir.

func findChromium() string {
	for _, p := range []string{os.Getenv("CHROMIUM_PATH"), "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	return ""
}

// browser is one headless Chromium for a whole test.
type browser struct {
	t         *testing.T
	ctx       context.Context // the first tab
	artifacts string

	mu       sync.Mutex
	problems []string // console errors, exceptions and CSP reports
	expected []string // console errors a test caused on purpose, each forgiven once
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := findChromium()
	if path == "" {
		t.Skip("no Chromium found (looked for /usr/bin/chromium, chromium-browser, google-chrome, $CHROMIUM_PATH); skipping the browser tests")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(390, 844),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Skipf("Chromium at %s did not start (%v); skipping the browser tests", path, err)
	}
	dir := os.Getenv("ARTIFACTS_DIR")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, ctx: ctx, artifacts: dir}
	b.watch(ctx)
	return b
}

// watch collects console errors and exceptions of a tab: a CSP violation
// or a script error fails the test at the end.
func (b *browser) watch(ctx context.Context) {
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			text := m.String()
			if strings.Contains(text, "net::ERR_") {
				continue // a dropped connection (the reconnect test drops them on purpose), not a page bug
			}
			if m.IsException() || m.Type == "error" || strings.Contains(text, "Content Security Policy") {
				if m.URL != "" {
					text += " (" + m.URL + ")" // a refused request names itself
				}
				b.report(text)
			}
		}
	}()
}

// report records a console problem, unless a test announced it.
func (b *browser) report(text string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, want := range b.expected {
		if strings.Contains(text, want) {
			b.expected = slices.Delete(b.expected, i, i+1)
			return
		}
	}
	if len(b.problems) < 100 {
		b.problems = append(b.problems, text)
	}
}

// expectConsoleError forgives one console error containing text: a refused
// request the test makes on purpose is logged by the browser as an error.
func (b *browser) expectConsoleError(text string) {
	b.mu.Lock()
	b.expected = append(b.expected, text)
	b.mu.Unlock()
}

// takeProblems returns the problems so far and forgets them.
func (b *browser) takeProblems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.problems
	b.problems = nil
	return p
}

// tab opens another tab in the same browser (sharing the login cookie).
func (b *browser) tab(t *testing.T) context.Context {
	ctx, cancel := chromedp.NewContext(b.ctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	b.watch(ctx)
	return ctx
}

func (b *browser) do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// waitJS waits until the expression is true in the page.
func (b *browser) waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ok, err := chromedp.Run(tctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		last = err // a navigation in progress is not a failure: ask again
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("waiting for %s (%s): timed out (last error: %v)", what, expr, last)
}

func evalJS[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (b *browser) viewport(t *testing.T, ctx context.Context, w, h int64, dark bool) {
	t.Helper()
	scheme := "light"
	if dark {
		scheme = "dark"
	}
	b.do(t, ctx, "viewport", chromedp.EmulateViewport(w, h, chromedp.EmulateScale(2)), chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return err
	}))
}

// shot saves what the screen shows, and with full also the whole page.
func (b *browser) shot(t *testing.T, ctx context.Context, name string, full ...bool) {
	t.Helper()
	// Let transitions and the live stream settle before the picture.
	time.Sleep(400 * time.Millisecond)
	save := func(name string, a chromedp.Action[[]byte]) {
		buf, err := chromedp.Run(ctx, a)
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		p := filepath.Join(b.artifacts, name+".png")
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s", p)
	}
	save(name, chromedp.CaptureScreenshot())
	if len(full) > 0 && full[0] {
		save(name+"-full", chromedp.FullScreenshot(100))
	}
}

// shotElement saves a picture of one element (a card). The page is
// scrolled to the top first, so the sticky top bar and the toasts, which
// sit in the viewport, do not cover the element.
func (b *browser) shotElement(t *testing.T, ctx context.Context, name, sel string) {
	t.Helper()
	b.do(t, ctx, "clear the view", chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0); document.querySelectorAll('.toast').forEach((el) => el.remove())`))
	time.Sleep(400 * time.Millisecond)
	buf, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(b.artifacts, name+".png")
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", p)
}

// noHorizontalScroll checks the page fits the viewport's width.
func (b *browser) noHorizontalScroll(t *testing.T, ctx context.Context, where string) {
	t.Helper()
	if w := evalJS[[]int](t, ctx, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
		// Too wide: a box past the edge, or text spilling out of its box
		// (a long URL that does not wrap).
		wide := evalJS[[]string](t, ctx, `[...document.querySelectorAll('body *')].filter(el => el.getBoundingClientRect().right > window.innerWidth + 0.5 || (el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0 && getComputedStyle(el).overflowX === 'visible')).slice(0, 8).map(el => el.tagName + '.' + el.className + ' ' + Math.round(el.getBoundingClientRect().right) + ' ' + el.scrollWidth + '/' + el.clientWidth)`)
		t.Errorf("%s: the page is %d px wide in a %d px viewport (horizontal scrolling); too wide: %q", where, w[0], w[1], wide)
	}
}

// click clicks the element the CSS selector finds, scrolled into view.
// signIn opens the page of the server at url, signs in and waits until
// the page is live.
func (b *browser) signIn(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	b.do(t, ctx, "open the page", chromedp.Navigate(url+"/"))
	b.waitJS(t, ctx, "the login form", `!!document.querySelector('input[name="password"]')`)
	b.do(t, ctx, "sign in",
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), testUser),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), testPassword),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
	)
	b.waitJS(t, ctx, "the live page", `location.pathname === "/" && document.querySelector('#conn').dataset.conn === "live"`)
}

func (b *browser) click(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	b.do(t, ctx, "click "+sel, chromedp.ScrollIntoView(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests are slow; skipped with -short")
	}
	b := newBrowser(t)
	auto := &automationEnv{clock: &testClock{now: time.Now()}}
	e := newFirmwareEnv(t, fwConfig{}, withAutomation(t, auto))
	// Devices snapshots twice a second, so a test sees counters move.
	e.srv.heartbeat = 500 * time.Millisecond
	lamp := e.lamp(t)
	ctx := b.ctx
	b.viewport(t, ctx, 390, 844, false)

	t.Run("login", func(t *testing.T) {
		b.do(t, ctx, "open the page", chromedp.Navigate(e.web.URL+"/"))
		b.waitJS(t, ctx, "the login form", `location.pathname === "/login" && !!document.querySelector('input[name="password"]')`)
		if f := evalJS[string](t, ctx, `document.activeElement.name`); f != "username" {
			t.Errorf("the login page focuses %q while the user name is empty", f)
		}
		b.shot(t, ctx, "login-light")
		b.do(t, ctx, "sign in",
			chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), testUser),
			chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), testPassword),
			chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		)
		b.waitJS(t, ctx, "the app page", `location.pathname === "/" && !!document.querySelector('#lamp')`)
		b.waitJS(t, ctx, "the live indicator", `document.querySelector('#conn').dataset.conn === "live"`)
		b.noHorizontalScroll(t, ctx, "390 px")
		b.shot(t, ctx, "app-off-light")
	})

	t.Run("each mode reaches the lamp", func(t *testing.T) {
		tests := []struct {
			mode   string
			packet string
		}{
			{"manual", "[cc:2:255,65,174:0]"},
			{"weather", "[cc:1:3:9]"},
			{"off", "[cc:0:?:?]"},
		}
		for _, tt := range tests {
			b.click(t, ctx, fmt.Sprintf(`.mode[value="%s"]`, tt.mode))
			lamp.waitFor(t, tt.packet)
			b.waitJS(t, ctx, "the preview in "+tt.mode, fmt.Sprintf(`document.querySelector('#lamp').dataset.mode === %q`, tt.mode))
			if got := e.store.Get().Mode; string(got) != tt.mode {
				t.Errorf("after tapping %s the state's mode is %s", tt.mode, got)
			}
		}
	})

	t.Run("pick a colour", func(t *testing.T) {
		// A tap on the wheel: the right edge is red at full saturation.
		b.do(t, ctx, "scroll to the wheel", chromedp.ScrollIntoView(chromedp.CSS("#wheel")))
		box := evalJS[[]float64](t, ctx, `(() => { const r = document.querySelector('#wheel').getBoundingClientRect(); return [r.left, r.top, r.width]; })()`)
		cx, cy, r := box[0]+box[2]/2, box[1]+box[2]/2, box[2]/2
		b.do(t, ctx, "tap the wheel's red edge", chromedp.MouseClickXY(cx+r-2, cy))
		tapped := evalJS[string](t, ctx, `document.querySelector('#hex').value`)
		red, err := parseHex(tapped)
		if err != nil || red[0] != 255 || red[1] > 20 || red[2] > 20 {
			t.Fatalf("a tap on the red edge picked %q", tapped)
		}
		lamp.waitFor(t, fmt.Sprintf("[cc:2:%d,%d,%d:0]", red[0], red[1], red[2]))

		// A drag around the wheel: the lamp follows, and the last position wins.
		held := func(p *input.DispatchMouseEventParams) { p.Buttons = 1 }
		steps := []chromedp.Action[chromedp.Void]{chromedp.MouseEvent(input.DispatchMouseEventTypeMousePressed, cx+r-2, cy, chromedp.ButtonLeft, chromedp.ClickCount(1))}
		for i := 1; i <= 12; i++ {
			steps = append(steps, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, cx+r-2, cy+float64(i)*r/12, chromedp.ButtonLeft, held), chromedp.Sleep(40*time.Millisecond))
		}
		// End straight below the centre, near the rim: hue 90° (y grows downwards).
		steps = append(steps, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, cx, cy+r-2, chromedp.ButtonLeft, held),
			chromedp.MouseEvent(input.DispatchMouseEventTypeMouseReleased, cx, cy+r-2, chromedp.ButtonLeft, chromedp.ClickCount(1)))
		b.do(t, ctx, "drag on the wheel", steps...)
		want := evalJS[string](t, ctx, `document.querySelector('#hex').value`)
		if !strings.HasPrefix(want, "#") {
			t.Fatalf("hex field shows %q", want)
		}
		c, err := parseHex(want)
		if err != nil {
			t.Fatal(err)
		}
		lamp.waitFor(t, fmt.Sprintf("[cc:2:%d,%d,%d:0]", c[0], c[1], c[2]))
		waitState(t, e, func(st state.State) bool { return st.Color.Hex() == want })

		// Exact entry.
		b.do(t, ctx, "type a hex colour",
			chromedp.ScrollIntoView(chromedp.CSS("#hex")),
			chromedp.Evaluate[chromedp.Void](`document.querySelector('#hex').value = ''`),
			chromedp.SendKeys(chromedp.CSS("#hex"), "#00ff80"),
			chromedp.Click(chromedp.CSS(`#exact button[type="submit"]`)),
		)
		lamp.waitFor(t, "[cc:2:0,255,128:0]")

		// A favourite: one tap.
		b.click(t, ctx, `#fav-list .swatch[value="#409cff"]`)
		lamp.waitFor(t, "[cc:2:64,156,255:0]")

		// Pulse.
		b.do(t, ctx, "set pulse 4", chromedp.ScrollIntoView(chromedp.CSS("#pulse")), chromedp.Evaluate[chromedp.Void](`(() => { const p = document.querySelector('#pulse'); p.value = "4"; p.dispatchEvent(new Event('input', {bubbles: true})); })()`))
		lamp.waitFor(t, "[cc:2:64,156,255:4]")
		b.do(t, ctx, "scroll to the top", chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
		b.shot(t, ctx, "app-manual-light", true)
	})

	t.Run("the colour controls agree", func(t *testing.T) {
		b.viewport(t, ctx, 360, 740, true)
		defer b.viewport(t, ctx, 390, 844, false)
		hexValue := func() string { return evalJS[string](t, ctx, `document.querySelector('#hex').value`) }
		// Enter sends the hex and lets go of the field (a phone's keyboard
		// closes), so the wheel's later changes show in it.
		b.do(t, ctx, "type a hex and press Enter",
			chromedp.ScrollIntoView(chromedp.CSS("#hex")),
			chromedp.Evaluate[chromedp.Void](`document.querySelector('#hex').select()`),
			chromedp.SendKeys(chromedp.CSS("#hex"), "#00ff00\r"),
		)
		lamp.waitFor(t, "[cc:2:0,255,0:4]") // pulse 4 from before
		if evalJS[bool](t, ctx, `document.activeElement === document.querySelector('#hex')`) {
			t.Error("the hex field keeps the focus after Enter")
		}
		cx, cy, r := b.wheelBox(t, ctx)
		b.do(t, ctx, "tap the wheel's red edge", chromedp.MouseClickXY(cx+r-2, cy))
		waitState(t, e, func(st state.State) bool { return st.Color.R == 255 && st.Color.G < 20 })
		if got := hexValue(); got != e.store.Get().Color.Hex() {
			t.Errorf("after a wheel change the hex field shows %s, the lamps %s", got, e.store.Get().Color.Hex())
		}

		// Typed but not submitted: the wheel wins, and leaving the field
		// sends nothing.
		b.do(t, ctx, "type a hex without Enter",
			chromedp.Evaluate[chromedp.Void](`document.querySelector('#hex').select()`),
			chromedp.SendKeys(chromedp.CSS("#hex"), "#0000ff"),
		)
		cx, cy, r = b.wheelBox(t, ctx)
		b.do(t, ctx, "tap the wheel's bottom edge", chromedp.MouseClickXY(cx, cy+r-2))
		waitState(t, e, func(st state.State) bool { return st.Color.G > 200 && st.Color.B < 20 })
		// A tap may send the colour in more than one throttled step: wait
		// until the last one is in before checking what leaving the field
		// sends.
		settled := settledColour(t, e)
		wheelColour := settled.Hex()
		lamp.waitFor(t, fmt.Sprintf("[cc:2:%d,%d,%d:4]", settled.R, settled.G, settled.B))
		lamp.drain()
		b.do(t, ctx, "leave the field", chromedp.Evaluate[chromedp.Void](`document.activeElement.blur(); document.body.focus()`))
		lamp.quietFor(t, 500*time.Millisecond)
		if got := e.store.Get().Color.Hex(); got != wheelColour {
			t.Errorf("leaving the field undid the wheel: %s, want %s", got, wheelColour)
		}
		if got := hexValue(); got != wheelColour {
			t.Errorf("the hex field shows %s, the lamps %s", got, wheelColour)
		}

		// Touch: a vertical swipe over the wheel scrolls the page and
		// leaves the lamps alone; a tap picks a colour.
		b.touchMode(t, ctx, true)
		defer b.touchMode(t, ctx, false)
		before := e.store.Get()
		lamp.drain()
		cx, cy, r = b.wheelBox(t, ctx)
		x0, y0 := cx-r/3, cy+r/3 // away from the knob
		swipe := []chromedp.Action[chromedp.Void]{touchAt(input.DispatchTouchEventTypeTouchStart, x0, y0)}
		for i := 1; i <= 10; i++ {
			swipe = append(swipe, touchAt(input.DispatchTouchEventTypeTouchMove, x0, y0-float64(i)*15), chromedp.Sleep(16*time.Millisecond))
		}
		swipe = append(swipe, touchAt(input.DispatchTouchEventTypeTouchEnd, 0, 0))
		b.do(t, ctx, "swipe up over the wheel", swipe...)
		lamp.quietFor(t, 500*time.Millisecond)
		if after := e.store.Get(); after.Color != before.Color || after.UpdatedAt != before.UpdatedAt {
			t.Errorf("a swipe over the wheel changed the lamps: %s → %s", before.Color.Hex(), after.Color.Hex())
		}
		cx, cy, r = b.wheelBox(t, ctx)
		b.do(t, ctx, "tap the wheel's red edge with a finger", touchAt(input.DispatchTouchEventTypeTouchStart, cx+r-3, cy), touchAt(input.DispatchTouchEventTypeTouchEnd, 0, 0))
		waitState(t, e, func(st state.State) bool { return st.Color.R == 255 && st.Color.G < 20 && st.Color.B < 20 })

		// A drag that starts on the knob (now at the red edge) moves it:
		// down the rim towards 6 o'clock, hue 90°.
		drag := []chromedp.Action[chromedp.Void]{touchAt(input.DispatchTouchEventTypeTouchStart, cx+r-3, cy)}
		for i := 1; i <= 10; i++ {
			a := float64(i) / 10 * math.Pi / 2
			drag = append(drag, touchAt(input.DispatchTouchEventTypeTouchMove, cx+(r-3)*math.Cos(a), cy+(r-3)*math.Sin(a)), chromedp.Sleep(16*time.Millisecond))
		}
		drag = append(drag, touchAt(input.DispatchTouchEventTypeTouchEnd, 0, 0))
		b.do(t, ctx, "drag the knob", drag...)
		waitState(t, e, func(st state.State) bool {
			return st.Color.G == 255 && st.Color.R > 100 && st.Color.R < 180 && st.Color.B < 20
		})

		// A short hold first, then a drag from anywhere.
		hold := []chromedp.Action[chromedp.Void]{touchAt(input.DispatchTouchEventTypeTouchStart, cx, cy-r/2), chromedp.Sleep(450 * time.Millisecond)}
		for i := 1; i <= 5; i++ {
			hold = append(hold, touchAt(input.DispatchTouchEventTypeTouchMove, cx, cy-r/2-float64(i)*(r/2-3)/5), chromedp.Sleep(16*time.Millisecond))
		}
		hold = append(hold, touchAt(input.DispatchTouchEventTypeTouchEnd, 0, 0))
		b.do(t, ctx, "hold, then drag up to 12 o'clock", hold...)
		// Hue 270°, full saturation: violet.
		waitState(t, e, func(st state.State) bool {
			return st.Color.B == 255 && st.Color.G < 20 && st.Color.R > 100 && st.Color.R < 160
		})
	})

	t.Run("saving a favourite keeps colours another phone saved", func(t *testing.T) {
		// Saved elsewhere, and this page has not heard of it yet.
		other := protocol.RGB{R: 0x12, G: 0x31, B: 0x23}
		if _, err := e.favs.Add(other); err != nil {
			t.Fatal(err)
		}
		mine := e.store.Get().Color
		b.click(t, ctx, "#fav-add")
		for range 500 {
			if list := e.favs.Get().Colors; slices.Contains(list, mine) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if list := e.favs.Get().Colors; !slices.Contains(list, mine) || !slices.Contains(list, other) {
			t.Errorf("after saving %s from a page with a stale list the favourites are %v; %s was lost", mine.Hex(), list, other.Hex())
		}
	})

	t.Run("the wheel is drawn by CSS with the colours app.js picks", func(t *testing.T) {
		// Red at 3 o'clock, green-yellow towards 6 (hue 90°), white in the
		// middle: the same angles wheelAt uses.
		cx, cy, r := b.wheelBox(t, ctx)
		scroll := evalJS[[]float64](t, ctx, `[window.scrollX, window.scrollY]`) // the clip is in page coordinates
		png := b.screenshotClip(t, ctx, scroll[0]+cx-r, scroll[1]+cy-r, 2*r)
		for _, p := range []struct {
			name   string
			fx, fy float64 // in units of the radius, from the centre
			want   [3]int
		}{
			{"centre", 0, 0, [3]int{255, 255, 255}},
			{"3 o'clock", 0.93, 0, [3]int{255, 18, 18}},
			{"6 o'clock", 0, 0.93, [3]int{137, 255, 18}},
			{"9 o'clock", -0.93, 0, [3]int{18, 255, 255}},
		} {
			got := pixelAt(t, png, 0.5+p.fx/2, 0.5+p.fy/2)
			for i := range 3 {
				if d := got[i] - p.want[i]; d < -40 || d > 40 {
					t.Errorf("the wheel at %s is rgb%v, want about rgb%v", p.name, got, p.want)
					break
				}
			}
		}
		if evalJS[bool](t, ctx, `!!document.querySelector('#wheel canvas')`) {
			t.Error("the wheel still has a canvas drawn by script")
		}
	})

	t.Run("two tabs stay in sync", func(t *testing.T) {
		other := b.tab(t)
		b.viewport(t, other, 390, 844, true)
		b.do(t, other, "open a second tab", chromedp.Navigate(e.web.URL+"/"))
		b.waitJS(t, other, "the second tab live", `document.querySelector('#conn').dataset.conn === "live"`)
		b.click(t, ctx, `.mode[value="weather"]`)
		b.waitJS(t, other, "weather in the other tab", `document.querySelector('#lamp').dataset.mode === "weather"`)
		lamp.waitFor(t, "[cc:1:3:9]")
		b.click(t, other, `.wx-chip[data-override="5"]`)
		b.waitJS(t, ctx, "the rain preview in the first tab", `document.querySelector('#lamp').dataset.wx === "5" && document.querySelector('[data-field="headline"]').textContent === "Rain"`)
		lamp.waitFor(t, "[cc:1:5:9]") // the intensity slider starts at the live intensity
		// One slider for every code: at 10, cloudy previews 10 and a storm
		// its strongest, 9.
		b.do(t, other, "set the intensity to 10", chromedp.Evaluate[chromedp.Void](`(() => { const i = document.querySelector('#intensity'); i.value = "10"; i.dispatchEvent(new Event('input', {bubbles: true})); })()`))
		b.click(t, other, `.wx-chip[data-override="4"]`)
		lamp.waitFor(t, "[cc:1:4:10]")
		b.click(t, other, `.wx-chip[data-override="6"]`)
		lamp.waitFor(t, "[cc:1:6:9]")
		b.do(t, other, "scroll to the top", chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
		b.shot(t, other, "app-weather-dark")
		b.click(t, ctx, `.wx-chip[data-override="live"]`)
		b.waitJS(t, other, "live weather in the other tab", `document.querySelector('#lamp').dataset.wx === "3"`)
		b.click(t, other, `.mode[value="manual"]`)
		b.waitJS(t, ctx, "manual in the first tab", `document.querySelector('#lamp').dataset.mode === "manual"`)
		b.do(t, other, "scroll to the top", chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
		b.shot(t, other, "app-manual-dark")
	})

	t.Run("the page says what is true", func(t *testing.T) {
		b.viewport(t, ctx, 360, 740, false)
		defer b.viewport(t, ctx, 390, 844, false)
		row := fmt.Sprintf(`.device[data-id="%s"]`, lamp.id)
		// No image uploaded yet: a lamp's Update button is off and says why.
		b.waitJS(t, ctx, "the lamp's Update button off", fmt.Sprintf(`(() => { const u = document.querySelector('%s button[value="update"]'); return !!u && u.disabled && u.title.includes('Upload a firmware image'); })()`, row))

		// Packet counters and last seen follow the gateway between events.
		lamp.send(t, "d:one")
		lamp.send(t, "d:two")
		waitFor(t, "the gateway to count the lines", func() bool {
			for _, d := range e.gw.Devices() {
				if d.ID == lamp.id && d.PacketsReceived >= 2 {
					return true
				}
			}
			return false
		})
		var want uint64
		for _, d := range e.gw.Devices() {
			if d.ID == lamp.id {
				want = d.PacketsReceived
			}
		}
		b.waitJS(t, ctx, "the received counter to follow", fmt.Sprintf(`document.querySelector('%s [data-field="received"]').textContent === "%d"`, row, want))

		// Live weather: the intensity slider is off, with a sentence.
		b.click(t, ctx, `.mode[value="weather"]`)
		b.click(t, ctx, `.wx-chip[data-override="live"]`)
		b.waitJS(t, ctx, "the slider off while live", `document.querySelector('#intensity').disabled && !document.querySelector('#intensity-hint').hidden && document.querySelector('#preview-note').hidden`)
		// A preview: the slider works, and the page says when it ends.
		b.click(t, ctx, `.wx-chip[data-override="6"]`)
		b.waitJS(t, ctx, "the preview's end on screen", `!document.querySelector('#intensity').disabled && document.querySelector('#intensity-hint').hidden && /ends by itself in \d+ s/.test(document.querySelector('#preview-note').textContent) && /ends in \d+ s/.test(document.querySelector('[data-field="detail"]').textContent)`)
		b.shotElement(t, ctx, "weather-preview-360-light", "#weather")
		b.click(t, ctx, `.wx-chip[data-override="live"]`)

		// No weather key: fetching is off and says why; the hero does not
		// call the built-in default live.
		noKey := weather.Report{Reading: weather.Reading{Code: 3, Intensity: 9}, Source: weather.SourceDefault, Status: weather.StatusNoAPIKey,
			Description: "no weather key: clear sky", Error: "No OpenWeatherMap key is set: add weather.api_key (get one free at https://home.openweathermap.org/users/sign_up) to show the real weather."}
		e.weather.set(noKey)
		e.store.SetWeather(state.Weather{Code: 3, Intensity: 9, Description: noKey.Description, Source: weather.SourceDefault})
		e.bus.Publish(events.Event{Type: events.TypeWeather})
		b.waitJS(t, ctx, "the fetch button off without a key", `(() => { const r = document.querySelector('#weather .card-action .icon-button'); return r.disabled && r.getAttribute('aria-label').includes('weather.api_key'); })()`)
		b.waitJS(t, ctx, "the hero saying built-in", `document.querySelector('[data-field="detail"]').textContent === "Built-in clear sky · no live weather"`)
		b.viewport(t, ctx, 360, 740, false)
		b.noHorizontalScroll(t, ctx, "360 px light, no weather key")
		b.shotElement(t, ctx, "weather-no-key-360-light", "#weather")
		b.viewport(t, ctx, 360, 740, true)
		b.noHorizontalScroll(t, ctx, "360 px dark, no weather key")
		b.shotElement(t, ctx, "weather-no-key-360-dark", "#weather")
		b.viewport(t, ctx, 360, 740, false)
		e.weather.set(sampleReport())
		e.store.SetWeather(state.Weather{Code: 4, Intensity: 8, Description: "broken clouds", Source: weather.SourceOpenWeatherMap})
		e.bus.Publish(events.Event{Type: events.TypeWeather})
		b.waitJS(t, ctx, "the fetch button back", `!document.querySelector('#weather .card-action .icon-button').disabled`)

		// The server out of reach: the rows and the count say they are old.
		b.setOffline(t, ctx, true)
		b.waitJS(t, ctx, "stale marks", fmt.Sprintf(`document.querySelector('#synced').textContent.startsWith('not live') && document.querySelector('%s [data-field="status"]').textContent === "Unknown"`, row))
		for _, msg := range evalJS[[]string](t, ctx, contrastJS+`(['.device .pill', '.device-facts dd', '.device-facts dt', '.synced'])`) {
			t.Errorf("stale rows: contrast %s", msg)
		}
		b.shotElement(t, ctx, "lamps-stale-360-light", "#lamps")
		b.setOffline(t, ctx, false)
		b.waitJS(t, ctx, "live again", fmt.Sprintf(`document.querySelector('#conn').dataset.conn === "live" && document.querySelector('%s [data-field="status"]').textContent === "Online"`, row))
		b.click(t, ctx, `.mode[value="manual"]`)
		waitState(t, e, func(st state.State) bool { return st.Mode == state.ModeManual })
		lamp.waitFor(t, e.store.Get().Packet)
	})

	t.Run("reboot a lamp from its row", func(t *testing.T) {
		row := fmt.Sprintf(`.device[data-id="%s"]`, lamp.id)
		b.waitJS(t, ctx, "the lamp's row", fmt.Sprintf(`!!document.querySelector('%s') && document.querySelector('%s').dataset.status === "online"`, row, row))
		btn := row + ` button[value="reset"]`
		lamp.drain()
		b.click(t, ctx, btn)
		b.waitJS(t, ctx, "the confirm state", fmt.Sprintf(`document.querySelector('%s').classList.contains('armed')`, btn))
		lamp.quietFor(t, 300*time.Millisecond) // one tap sends nothing
		b.click(t, ctx, btn)
		lamp.waitFor(t, "[cc:r:?:?]")
	})

	t.Run("without javascript a reboot asks first and the jump shows the heading", func(t *testing.T) {
		plain := b.tab(t)
		b.do(t, plain, "no script", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
			return err
		}))
		b.viewport(t, plain, 360, 740, false)
		b.do(t, plain, "open the page", chromedp.Navigate(e.web.URL+"/"))
		btn := fmt.Sprintf(`.device[data-id="%s"] button[value="reset"]`, lamp.id)
		lamp.drain()
		b.click(t, plain, btn)
		b.waitJS(t, plain, "the question", `location.pathname === "/ui/command" && document.querySelector('h1').textContent.startsWith('Reboot')`)
		lamp.quietFor(t, 300*time.Millisecond) // asking sent nothing
		b.shot(t, plain, "nojs-confirm-360-light")
		b.click(t, plain, `button[type="submit"]`)
		lamp.waitFor(t, "[cc:r:?:?]")
		b.waitJS(t, plain, "back on the lamps card", `location.pathname === "/" && location.hash === "#lamps"`)
		gap := evalJS[float64](t, plain, `document.querySelector('#lamps-title').getBoundingClientRect().top - document.querySelector('.topbar').getBoundingClientRect().bottom`)
		if gap < 0 {
			t.Errorf("after the jump the Lamps heading is %.0f px under the sticky bar", -gap)
		}
		b.shot(t, plain, "nojs-lamps-360-light")

		// The lamp's own card: a mode of its own, then Follow all lamps.
		var id string
		for _, l := range e.lamps.Lamps() {
			for _, d := range l.Devices {
				if d.ID == lamp.id {
					id = l.ID
				}
			}
		}
		shared := e.store.Get()
		mode, packet := "off", "[cc:0:?:?]"
		if shared.Mode == state.ModeOff {
			mode, packet = "weather", "[cc:1:"
		}
		card := fmt.Sprintf(`.lamp-card[data-lamp="%s"]`, id)
		b.do(t, plain, "mark this page", chromedp.Evaluate[chromedp.Void](`document.documentElement.dataset.before = '1'`))
		b.click(t, plain, card+` summary`)
		b.click(t, plain, card+fmt.Sprintf(` button[data-lamp-mode="%s"]`, mode))
		waitFor(t, "the lamp's own state", func() bool { l, err := e.lamps.Lamp(id); return err == nil && !l.FollowsShared })
		b.waitJS(t, plain, "back on the lamps card", `location.pathname === "/" && location.hash === "#lamps" && document.readyState === "complete" && !document.documentElement.dataset.before`)
		own, err := e.lamps.Lamp(id)
		if err != nil || own.FollowsShared || string(own.State.Mode) != mode || !strings.HasPrefix(own.State.Packet, packet) {
			t.Fatalf("after %s on its card the lamp is %+v (%v)", mode, own, err)
		}
		lamp.waitFor(t, own.State.Packet)
		b.click(t, plain, card+` summary`)
		b.click(t, plain, card+` [data-lamp-action="follow"]`)
		lamp.waitFor(t, shared.Packet)
		b.waitJS(t, plain, "the card follows", fmt.Sprintf(`document.querySelector('%s [data-field="lamp-shows"]').textContent === 'Follows all lamps'`, card))
	})

	t.Run("debug lines appear in the log", func(t *testing.T) {
		row := fmt.Sprintf(`.device[data-id="%s"]`, lamp.id)
		b.click(t, ctx, row+` button[data-field="debug"]`)
		lamp.waitFor(t, "[cc:d:1:?]")
		b.waitJS(t, ctx, "debug on in the row", fmt.Sprintf(`document.querySelector('%s button[data-field="debug"]').getAttribute('aria-pressed') === "true"`, row))
		lamp.send(t, "d:wifi rssi -67")
		lamp.send(t, "d:heap free 182340")
		b.waitJS(t, ctx, "the d: lines in the log view", `document.querySelector('#log').textContent.includes('heap free 182340')`)
		for _, dark := range []bool{false, true} {
			b.viewport(t, ctx, 360, 740, dark)
			for _, msg := range evalJS[[]string](t, ctx, contrastJS+`(['.button.toggle[aria-pressed="true"]', '.device .pill', '.device-facts dd', '.log-line span'])`) {
				t.Errorf("dark %v: contrast %s", dark, msg)
			}
		}
		b.viewport(t, ctx, 390, 844, false)
		b.do(t, ctx, "scroll to the log", chromedp.ScrollIntoView(chromedp.CSS("#logs")))
		b.shot(t, ctx, "app-lamps-log-light")
	})

	t.Run("the page reconnects and resyncs", func(t *testing.T) {
		// Drop every connection to the web port: the stream ends, the page
		// shows it is reconnecting, comes back live, and shows a change made
		// meanwhile (from the event or from the fresh stream's snapshot).
		e.web.CloseClientConnections()
		if res := e.call(t, http.MethodPut, "/api/state", `{"mode": "manual", "color": "#ffa000", "pulse": 0}`); res.status != 200 {
			t.Fatalf("PUT: %d %s", res.status, res.body)
		}
		b.waitJS(t, ctx, "live again", `document.querySelector('#conn').dataset.conn === "live"`)
		b.waitJS(t, ctx, "the change made while reconnecting", `document.querySelector('[data-field="packet"]').textContent === "[cc:2:255,160,0:0]"`)
		lamp.waitFor(t, "[cc:2:255,160,0:0]")
	})

	t.Run("a lamp that leaves stays as an offline row until it is back", func(t *testing.T) {
		gone := e.lamp(t)
		row := fmt.Sprintf(`.device[data-id="%s"]`, gone.id)
		b.waitJS(t, ctx, "the second lamp's row", fmt.Sprintf(`document.querySelector('%s')?.dataset.status === "online" && document.querySelector('#lamp-count').textContent === "2"`, row))
		gone.leave(t, websocket.CloseGoingAway)
		offline := fmt.Sprintf(`(() => {
			const r = document.querySelector('%s');
			return !!r && r.dataset.status === "offline"
				&& r.querySelector('[data-field="status"]').textContent === "Offline"
				&& r.querySelector('[data-field="reason"]').textContent === "Lamp closed the connection (code 1001)"
				&& r.querySelector('[data-field="label"]').textContent === "127.0.0.1"
				&& /^\d\d:\d\d \(\d+ s\)$/.test(r.querySelector('[data-field="offline-since"]').textContent)
				&& r.querySelector('[data-field="offline-since"]').offsetParent !== null
				&& [...r.querySelectorAll('button')].every((b) => b.offsetParent === null)
				&& document.querySelector('#lamp-count').textContent === "1"
				&& document.querySelector('#devices').lastElementChild === r;
		})()`, row)
		b.waitJS(t, ctx, "the offline row, with why, without buttons, below the online lamp", offline)
		// Before, the row went after 4 s: it must still be there after that.
		time.Sleep(4500 * time.Millisecond)
		b.waitJS(t, ctx, "the offline row after 4.5 s", offline)
		b.shotElement(t, ctx, "lamps-offline-light", "#lamps")
		b.viewport(t, ctx, 390, 844, true)
		b.shotElement(t, ctx, "lamps-offline-dark", "#lamps")
		b.viewport(t, ctx, 390, 844, false)

		// A fresh page (server-rendered, then the stream's snapshot) shows it too.
		b.do(t, ctx, "reload", chromedp.Navigate(e.web.URL+"/"))
		b.waitJS(t, ctx, "live after the reload", `document.querySelector('#conn').dataset.conn === "live"`)
		b.waitJS(t, ctx, "the offline row after a reload", offline)

		// It comes back (same address, so the same lamp): the live row replaces it.
		back := e.lamp(t)
		b.waitJS(t, ctx, "the live row instead of the offline one", fmt.Sprintf(`!document.querySelector('%s') && document.querySelector('.device[data-id="%s"]')?.dataset.status === "online" && !document.querySelector('.device[data-status="offline"]') && document.querySelector('#lamp-count').textContent === "2"`, row, back.id))
		back.leave(t, websocket.CloseNormalClosure)
		b.waitJS(t, ctx, "the lamp offline again", fmt.Sprintf(`document.querySelector('.device[data-id="%s"]')?.dataset.status === "offline" && document.querySelector('#lamp-count').textContent === "1"`, back.id))
	})

	t.Run("firmware over the air", func(t *testing.T) {
		// One lamp that updates like the firmware does; the plain test
		// lamp would only ever be "asked".
		lamp.conn.Close()
		kitchen := e.otaLamp(t, kitchenSecret, "1.2.9", arduinoUpdater)
		// What the lamps run now; the page learns of it from the stream.
		e.uploadImage(t, firmwaretest.Build(firmwaretest.Image{Version: "1.2.9", Payload: 1000}))
		b.waitJS(t, ctx, "the current image from the stream", `document.querySelector('[data-field="fw-version"]').textContent === "1.2.9"`)
		b.waitJS(t, ctx, "the kitchen lamp's row", `[...document.querySelectorAll('.device [data-field="label"]')].some(el => el.textContent === "kitchen")`)
		dir := t.TempDir()
		textFile, binFile := filepath.Join(dir, "notes.txt"), filepath.Join(dir, "cloud-lamp.bin")
		img := firmwaretest.Build(firmwaretest.Image{Version: "1.3.0", Payload: 300 << 10})
		if err := os.WriteFile(textFile, []byte("this is not firmware\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(binFile, img, 0o644); err != nil {
			t.Fatal(err)
		}

		// A wrong file: refused inline, nothing saved.
		b.expectConsoleError("status of 400")
		b.do(t, ctx, "choose a text file", chromedp.ScrollIntoView(chromedp.CSS("#firmware")), chromedp.SetUploadFiles(chromedp.CSS("#fw-file"), []string{textFile}))
		b.click(t, ctx, "#fw-send")
		b.waitJS(t, ctx, "the refusal under the upload", `!document.querySelector('#fw-error').hidden && document.querySelector('#fw-error').textContent.includes('text file')`)
		if msg := evalJS[string](t, ctx, `document.querySelector('#fw-error').textContent`); !regexp.MustCompile(`^[A-Z]`).MatchString(msg) || regexp.MustCompile(`API|/api/|0x`).MatchString(msg) {
			t.Errorf("the refusal is not said for a person: %q", msg)
		}
		if info, _ := e.fw.Current(); info.Version != "1.2.9" {
			t.Fatalf("after a refusal the current image is %+v", info)
		}

		// The image: its info appears.
		b.do(t, ctx, "choose the image", chromedp.SetUploadFiles(chromedp.CSS("#fw-file"), []string{binFile}))
		b.click(t, ctx, "#fw-send")
		b.waitJS(t, ctx, "the uploaded image's info", `!document.querySelector('#fw-current').hidden && document.querySelector('[data-field="fw-version"]').textContent === "1.3.0"`)
		if info, ok := e.fw.Current(); !ok || info.Version != "1.3.0" {
			t.Fatalf("current image %+v", info)
		}
		for field, want := range map[string]string{"fw-project": "cloud-lamp", "fw-idf": "v5.3.1", "fw-chip": "esp32", "fw-built": "Nov 21 2026 22:00:00", "fw-size": firmware.FormatSize(int64(len(img)))} {
			if got := evalJS[string](t, ctx, fmt.Sprintf(`document.querySelector('[data-field=%q]').textContent`, field)); got != want {
				t.Errorf("%s shows %q, want %q", field, got, want)
			}
		}
		if evalJS[bool](t, ctx, `document.querySelector('#fw-error').hidden`) == false {
			t.Error("the earlier refusal still shows after a good upload")
		}

		// Update all (a second tap confirms): the lamp downloads, reboots
		// and the panel shows it back.
		b.click(t, ctx, "#fw-update-all")
		b.waitJS(t, ctx, "the confirm state", `document.querySelector('#fw-update-all').classList.contains('armed')`)
		b.click(t, ctx, "#fw-update-all")
		row := `.fw-update[data-lamp="kitchen"]`
		b.waitJS(t, ctx, "the lamp back in the panel", fmt.Sprintf(`(() => { const r = document.querySelector('%s'); return !!r && r.dataset.state === "back" && r.querySelector('[data-field="state"]').textContent.startsWith("Back after"); })()`, row))
		if _, downloads, _ := kitchen.state(); len(downloads) != 1 || !bytes.Equal(downloads[0], img) {
			t.Errorf("the lamp downloaded %d images; the first equals the upload: %v", len(downloads), len(downloads) > 0 && bytes.Equal(downloads[0], img))
		}
		if got := evalJS[string](t, ctx, fmt.Sprintf(`document.querySelector('%s [data-field="detail"]').textContent`, row)); got != "now on 1.3.0 (was 1.2.9)" {
			t.Errorf("the row says %q", got)
		}
		b.do(t, ctx, "scroll to the panel", chromedp.ScrollIntoView(chromedp.CSS("#firmware")))
		b.shotElement(t, ctx, "firmware-light", "#firmware")
		b.viewport(t, ctx, 390, 844, true)
		b.shotElement(t, ctx, "firmware-dark", "#firmware")
		b.viewport(t, ctx, 390, 844, false)

		// One click (and its confirmation) rolls back.
		b.waitJS(t, ctx, "the previous image", `!document.querySelector('#fw-previous').hidden && document.querySelector('[data-field="fw-prev-version"]').textContent === "1.2.9"`)
		b.click(t, ctx, "#fw-rollback")
		b.click(t, ctx, "#fw-rollback")
		b.waitJS(t, ctx, "the rolled-back image", `document.querySelector('[data-field="fw-version"]').textContent === "1.2.9" && document.querySelector('[data-field="fw-prev-version"]').textContent === "1.3.0"`)
		if info, _ := e.fw.Current(); info.Version != "1.2.9" {
			t.Errorf("after the rollback the current image is %s", info.Version)
		}
	})

	t.Run("no javascript errors or CSP violations", func(t *testing.T) {
		for _, p := range b.takeProblems() {
			t.Errorf("browser console: %s", p)
		}
	})

	t.Run("scenes and schedules on a phone", func(t *testing.T) {
		b.viewport(t, ctx, 360, 740, false)
		defer b.viewport(t, ctx, 390, 844, false)
		if res := e.call(t, http.MethodPut, "/api/scenes/movie-night", `{"name": "Movie night", "shared": {"mode": "manual", "color": "#8000ff", "pulse": 2}}`); res.status != http.StatusOK {
			t.Fatalf("PUT scene: %d %s", res.status, res.body)
		}
		b.do(t, ctx, "reload", chromedp.Navigate(e.web.URL+"/"))
		b.waitJS(t, ctx, "the scene button", `!!document.querySelector('#scene-list [data-scene="movie-night"]')`)
		lamp := e.lamp(t) // the lamp of the tests above was sent off by a reset
		b.click(t, ctx, `#scene-list [data-scene="movie-night"]`)
		lamp.waitFor(t, "[cc:2:128,0,255:2]")

		// Save current as scene: the name comes from a prompt.
		b.do(t, ctx, "answer the prompt", chromedp.Evaluate[chromedp.Void](`window.prompt = () => 'Purple now'`))
		b.click(t, ctx, "#scene-save")
		b.waitJS(t, ctx, "the new scene button", `!!document.querySelector('#scene-list [data-scene="purple-now"]')`)

		// A wake-up light through the editor.
		b.click(t, ctx, "#schedule-add")
		b.waitJS(t, ctx, "the editor", `document.querySelector('#schedule-editor').open`)
		b.do(t, ctx, "fill in the editor",
			chromedp.SendKeys(chromedp.CSS(`#schedule-form input[name="name"]`), "Wake up"),
			chromedp.Evaluate[chromedp.Void](`(() => { const f = document.querySelector('#schedule-form'); f.time.value = '06:30'; f.fade.value = '30'; f.color.value = '#ffb36b'; })()`),
		)
		for _, d := range []string{"mon", "tue", "wed", "thu", "fri"} {
			b.click(t, ctx, `#day-chips label:has(input[value="`+d+`"])`)
		}
		b.noHorizontalScroll(t, ctx, "360 px, schedule editor")
		b.shot(t, ctx, "schedule-editor-360-light")
		b.click(t, ctx, "#editor-save")
		b.waitJS(t, ctx, "the schedule row", `!!document.querySelector('#schedule-list [data-schedule="wake-up"]')`)
		got := decode[automation.Schedule](t, e.call(t, http.MethodGet, "/api/schedules/wake-up", ""))
		if got.At != "06:30" || strings.Join(got.Days, ",") != "mon,tue,wed,thu,fri" || got.Fade != "30m" || !got.Enabled ||
			got.Do.State == nil || got.Do.State.Color == nil || got.Do.State.Color.Hex() != "#ffb36b" {
			t.Errorf("the editor saved %+v", got)
		}
		next := evalJS[string](t, ctx, `document.querySelector('[data-schedule="wake-up"] .schedule-next').textContent`)
		if !regexp.MustCompile(`^(today|tomorrow|Mon|Tue|Wed|Thu|Fri) .*06:30$`).MatchString(next) {
			t.Errorf("the next run reads %q, want words like \"tomorrow 06:30\"", next)
		}
		// The switch turns it off.
		b.click(t, ctx, `[data-schedule="wake-up"] .switch`)
		waitFor(t, "the schedule switched off", func() bool {
			sc, err := auto.sched.Get("wake-up")
			return err == nil && !sc.Enabled
		})

		// The sleep timer shows the time left.
		b.click(t, ctx, `[data-sleep="30"]`)
		b.waitJS(t, ctx, "the time left", `/^Off in (29|30) min$/.test(document.querySelector('#sleep-left').textContent)`)
		if _, err := auto.sched.Get("sleep-timer"); err != nil {
			t.Errorf("no sleep timer after the tap: %v", err)
		}
		b.noHorizontalScroll(t, ctx, "360 px, scenes and schedules")
		b.shotElement(t, ctx, "scenes-360-light", "#scenes")
		b.shotElement(t, ctx, "schedules-360-light", "#schedules")
	})

	t.Run("each lamp on its own at 360 px", func(t *testing.T) {
		b.viewport(t, ctx, 360, 740, false)
		defer b.viewport(t, ctx, 390, 844, false)
		if res := e.call(t, http.MethodPut, "/api/state", `{"mode": "manual", "color": "#ffa000", "pulse": 0, "brightness": 100}`); res.status != http.StatusOK {
			t.Fatalf("PUT /api/state: %d %s", res.status, res.body)
		}
		shared := e.store.Get().Packet
		bedroom, hall := e.namedLamp(t, "bedroom"), e.namedLamp(t, "hall")
		b.do(t, ctx, "reload", chromedp.Navigate(e.web.URL+"/"))
		card := `.lamp-card[data-lamp="bedroom"]`
		b.waitJS(t, ctx, "the lamp cards", `!!document.querySelector('`+card+`') && !!document.querySelector('.lamp-card[data-lamp="hall"]')`)
		if open := evalJS[bool](t, ctx, `document.querySelector('`+card+` details').open`); open {
			t.Error("a lamp card is open before it is tapped")
		}
		b.click(t, ctx, card+` summary`)
		b.waitJS(t, ctx, "the card open", `document.querySelector('`+card+` details').open`)

		// Manual with a colour, for the bedroom only.
		b.click(t, ctx, card+` [data-lamp-mode="manual"]`)
		b.do(t, ctx, "pick green", chromedp.Evaluate[chromedp.Void](`(() => { const i = document.querySelector('`+card+` [data-lamp-input="color"]'); i.value = '#00ff00'; i.dispatchEvent(new Event('change', {bubbles: true})); })()`))
		const green = "[cc:2:0,255,0:0]"
		bedroom.waitFor(t, green)
		// The hall gets nothing of it: a packet for the hall afterwards
		// comes with nothing green before it.
		if res := e.call(t, http.MethodPut, "/api/lamps/hall/state", `{"mode": "off"}`); res.status != http.StatusOK {
			t.Fatalf("PUT /api/lamps/hall/state: %d %s", res.status, res.body)
		}
		if seen := hall.waitFor(t, "[cc:0:?:?]"); slices.Contains(seen, green) {
			t.Errorf("the hall lamp got the bedroom's colour too: %q", seen)
		}
		hallShows := `document.querySelector('.lamp-card[data-lamp="hall"] [data-field="lamp-shows"]').textContent`
		b.waitJS(t, ctx, "the hall's card, from the stream", hallShows+` === 'Own: Off'`)
		if res := e.call(t, http.MethodDelete, "/api/lamps/hall/state", ""); res.status != http.StatusOK {
			t.Fatalf("DELETE /api/lamps/hall/state: %d %s", res.status, res.body)
		}
		hall.waitFor(t, shared)
		b.waitJS(t, ctx, "the hall's card follows again", hallShows+` === 'Follows all lamps'`)
		if got := e.store.Get().Packet; got != shared {
			t.Errorf("one lamp's colour changed the shared state to %s", got)
		}

		// The card and the top card say that the bedroom shows its own.
		b.waitJS(t, ctx, "the card says so", `document.querySelector('`+card+` [data-field="lamp-shows"]').textContent === 'Own colour #00ff00'`)
		var online, following int
		for _, l := range e.lamps.Lamps() {
			if l.Online {
				online++
				if l.FollowsShared {
					following++
				}
			}
		}
		want := fmt.Sprintf("%d of %d lamps show this", following, online)
		b.waitJS(t, ctx, "the top card says "+want, fmt.Sprintf(`document.querySelector('#synced').textContent === %q`, want))
		b.noHorizontalScroll(t, ctx, "360 px, a lamp card open")
		b.shotElement(t, ctx, "lamp-card-360-light", card)

		// Renamed in place.
		b.do(t, ctx, "type a name", chromedp.Evaluate[chromedp.Void](`document.querySelector('`+card+` input[name="label"]').value = 'Bedroom shelf'`))
		b.click(t, ctx, card+` .lamp-rename button`)
		waitFor(t, "the new label in GET /api/lamps", func() bool {
			for _, l := range decode[[]lamps.Lamp](t, e.call(t, http.MethodGet, "/api/lamps", "")) {
				if l.ID == "bedroom" {
					return l.Label == "Bedroom shelf"
				}
			}
			return false
		})
		b.waitJS(t, ctx, "the new label on the card", `document.querySelector('`+card+` [data-field="lamp-label"]').textContent === 'Bedroom shelf'`)

		// Follow all lamps: the shared packet again.
		b.click(t, ctx, card+` [data-lamp-action="follow"]`)
		bedroom.waitFor(t, shared)
		b.waitJS(t, ctx, "the card follows", `document.querySelector('`+card+` [data-field="lamp-shows"]').textContent === 'Follows all lamps'`)
		if l, err := e.lamps.Lamp("bedroom"); err != nil || !l.FollowsShared {
			t.Errorf("after Follow all lamps the bedroom lamp is %+v (%v)", l, err)
		}
		b.waitJS(t, ctx, "the top card", `/^(\d+ lamps?|1 lamp) shows? this$/.test(document.querySelector('#synced').textContent)`)

		// Forget: offered only once a lamp is offline, and asked twice.
		if visible := evalJS[bool](t, ctx, `!document.querySelector('`+card+` form[data-lamp-form="forget"]').hidden`); visible {
			t.Error("a connected lamp's card offers to forget it")
		}
		hall.conn.Close()
		hallCard := `.lamp-card[data-lamp="hall"]`
		b.waitJS(t, ctx, "the hall's card offers to forget it", `!document.querySelector('`+hallCard+` form[data-lamp-form="forget"]').hidden`)
		b.click(t, ctx, hallCard+` summary`)
		b.click(t, ctx, hallCard+` [data-lamp-action="forget"]`)
		b.waitJS(t, ctx, "the button asks again", `document.querySelector('`+hallCard+` [data-lamp-action="forget"] span').textContent === 'Tap again'`)
		if _, err := e.lamps.Lamp("hall"); err != nil {
			t.Fatalf("one tap forgot the hall: %v", err)
		}
		b.click(t, ctx, hallCard+` [data-lamp-action="forget"]`)
		b.waitJS(t, ctx, "the hall's card gone", `!document.querySelector('`+hallCard+`')`)
		if _, err := e.lamps.Lamp("hall"); err == nil {
			t.Error("the hall is still known after Forget")
		}

		// Fifty lamps (they were seen and are offline now), one with a long
		// name, still fit a 360 px phone, closed and open.
		for i := range 50 {
			id := fmt.Sprintf("lamp-%02d", i)
			e.lamps.Seen(device.LampSeen{Lamp: id, Addr: "127.0.0.1", Online: true, FirmwareVersion: "1.4.2", Time: time.Now()})
			e.lamps.Seen(device.LampSeen{Lamp: id, Addr: "127.0.0.1", Online: false, Time: time.Now()})
		}
		if _, err := e.lamps.SetLabel("lamp-07", "The lamp on the windowsill of the upstairs bathroom, left"); err != nil {
			t.Fatal(err)
		}
		b.do(t, ctx, "reload", chromedp.Navigate(e.web.URL+"/"))
		// More than 50 lamps: the first 50 cards, and a word on the others.
		total := len(e.lamps.Lamps())
		b.waitJS(t, ctx, "50 lamp cards", `document.querySelectorAll('.lamp-card').length === 50 && !!document.querySelector('.lamp-card[data-lamp="lamp-46"]')`)
		if got, want := evalJS[string](t, ctx, `document.querySelector('#lamp-find-status').textContent`), fmt.Sprintf("Showing 50 of %d lamps: find one by name or id.", total); got != want {
			t.Errorf("%d lamps: the card says %q, want %q", total, got, want)
		}
		b.noHorizontalScroll(t, ctx, "360 px, 53 lamps")
		b.click(t, ctx, `.lamp-card[data-lamp="lamp-07"] summary`)
		b.noHorizontalScroll(t, ctx, "360 px, 53 lamps, one open")
		b.shotElement(t, ctx, "lamps-50-360-light", "#lamps")

		// Among them one is found as its name is typed, and stays found
		// while the others change.
		shown := `[...document.querySelectorAll('.lamp-card')].filter(c => !c.hidden).map(c => c.dataset.lamp).join()`
		b.do(t, ctx, "type a search", chromedp.SendKeys(chromedp.CSS("#lamp-find"), "WINDOWSILL"))
		b.waitJS(t, ctx, "only the lamp on the windowsill", shown+` === 'lamp-07'`)
		if got := evalJS[string](t, ctx, `document.querySelector('#lamp-find-status').textContent`); got != fmt.Sprintf("1 of %d lamps match “WINDOWSILL”.", total) {
			t.Errorf("the search says %q", got)
		}
		// A lamp renamed to what is searched for joins the found, one beyond
		// the first 50 too.
		if _, err := e.lamps.SetLabel("lamp-49", "Windowsill, kitchen"); err != nil {
			t.Fatal(err)
		}
		b.waitJS(t, ctx, "the renamed lamp found too", shown+` === 'lamp-07,lamp-49'`)
		b.noHorizontalScroll(t, ctx, "360 px, a search")
		b.shotElement(t, ctx, "lamps-find-360-light", "#lamps")
		b.do(t, ctx, "clear the search", chromedp.Evaluate[chromedp.Void](`(() => { const f = document.querySelector('#lamp-find'); f.value = ''; f.dispatchEvent(new Event('input')); })()`))
		b.waitJS(t, ctx, "the first 50 cards again", `document.querySelectorAll('.lamp-card').length === 50 && document.querySelector('#lamp-find-status').textContent.startsWith('Showing 50 of ')`)
		b.viewport(t, ctx, 360, 740, true)
		b.shotElement(t, ctx, "lamp-card-open-360-dark", `.lamp-card[data-lamp="lamp-07"]`)
	})

	t.Run("layout and access at 360 px", func(t *testing.T) {
		e.login(t) // another device signed in, for the sessions card
		for _, dark := range []bool{false, true} {
			theme := map[bool]string{false: "light", true: "dark"}[dark]
			b.viewport(t, ctx, 360, 740, dark)
			b.do(t, ctx, "reload", chromedp.Navigate(e.web.URL+"/"))
			b.waitJS(t, ctx, "live", `document.querySelector('#conn').dataset.conn === "live"`)
			b.noHorizontalScroll(t, ctx, "360 px "+theme)
			// One lamp card open, so its controls are checked too.
			b.do(t, ctx, "open a lamp card", chromedp.Evaluate[chromedp.Void](`document.querySelector('.lamp-card details').open = true`))
			b.noHorizontalScroll(t, ctx, "360 px "+theme+", a lamp card open")

			// The colour controls are on the first screen.
			if top := evalJS[float64](t, ctx, `(() => { const r = document.querySelector('#wheel').getBoundingClientRect(); return r.top + r.height / 2; })()`); top > 740 {
				t.Errorf("%s: the wheel's middle is %.0f px down a 740 px screen; the first screen is all preview", theme, top)
			}

			// Text contrast (WCAG AA: 4.5, large text 3) of what Lighthouse
			// flagged, computed from the styles the page really has.
			bad := evalJS[[]string](t, ctx, contrastJS+`(['.pill', '.button.toggle[aria-pressed="true"]', '.alert', '.hint', '.muted', '.slider-label', '.chip', '.conn', '.subhead', '.device-facts dt', '.session-meta', '.footer a', '.button', '.empty p', '.lamp-card-name', '.lamp-card-shows', '.lamp-mode', '.lamp-card .slider-value'])`)
			for _, msg := range bad {
				t.Errorf("%s: contrast %s", theme, msg)
			}

			// Tap targets at least 44 px, as --tap intends.
			small := evalJS[[]string](t, ctx, `[...document.querySelectorAll('.chip, .device .button, .range, #fw-copy, .swatch, .icon-button, .mode, .button, summary, .lamp-mode, .lamp-colour, .lamp-card input')].filter(el => el.offsetParent !== null).map(el => [el, el.getBoundingClientRect()]).filter(([el, r]) => r.width < 43.5 || r.height < 43.5).slice(0, 10).map(([el, r]) => (el.id || el.className || el.tagName) + ' ' + Math.round(r.width) + '×' + Math.round(r.height))`)
			for _, msg := range small {
				t.Errorf("%s: tap target smaller than 44 px: %s", theme, msg)
			}

			b.shot(t, ctx, "phone-360-"+theme, true)
			b.shotElement(t, ctx, "sessions-360-"+theme, "#sessions")

			// "Pulse 9" on one line.
			b.do(t, ctx, "pulse 9", chromedp.Evaluate[chromedp.Void](`document.querySelector('#pulse-out').textContent = 'Pulse 9'`))
			if lines := evalJS[float64](t, ctx, `(() => { const o = document.querySelector('#pulse-out'); return o.getBoundingClientRect().height / parseFloat(getComputedStyle(o).lineHeight); })()`); lines > 1.5 {
				t.Errorf("%s: 'Pulse 9' takes %.1f lines", theme, lines)
			}
		}

		// Changing the mode, here or from another phone, moves nothing
		// on the page.
		b.do(t, ctx, "watch layout shifts", chromedp.Evaluate[chromedp.Void](`window.__shift = 0; window.__shifts = []; new PerformanceObserver((list) => { for (const e of list.getEntries()) { window.__shift += e.value; window.__shifts.push(e.sources.map(s => s.node ? (s.node.id || s.node.className || s.node.nodeName) : '?').join(',')); } }).observe({type: 'layout-shift'})`))
		heroHeight := func() float64 {
			return evalJS[float64](t, ctx, `document.querySelector('.hero').getBoundingClientRect().height`)
		}
		h0 := heroHeight()
		for i, body := range []string{
			`{"mode": "manual", "color": "#ff41ae", "pulse": 0}`,
			`{"mode": "weather", "weather_override": null}`,
			`{"mode": "manual", "color": "#12ab34", "pulse": 7}`,
			`{"mode": "off"}`,
			`{"mode": "manual", "color": "#ffa000", "pulse": 0}`,
		} {
			if res := e.call(t, http.MethodPut, "/api/state", body); res.status != 200 {
				t.Fatalf("PUT %s: %d %s", body, res.status, res.body)
			}
			want := e.store.Get().Packet
			b.waitJS(t, ctx, "the remote change", fmt.Sprintf(`document.querySelector('[data-field="packet"]').textContent === %q`, want))
			time.Sleep(300 * time.Millisecond) // let a shift, if any, be reported
			if h := heroHeight(); h != h0 {
				t.Errorf("change %d (%s) made the preview %.0f px instead of %.0f: everything below moves", i, body, h, h0)
			}
		}
		if shift := evalJS[float64](t, ctx, `window.__shift`); shift > 0 {
			t.Errorf("remote changes shifted the layout by %.3f (sources %v)", shift, evalJS[[]string](t, ctx, `window.__shifts`))
		}
		b.viewport(t, ctx, 390, 844, false)
	})

	t.Run("narrow phone and desktop", func(t *testing.T) {
		b.viewport(t, ctx, 360, 740, true)
		b.do(t, ctx, "reload", chromedp.Navigate(e.web.URL+"/"))
		b.waitJS(t, ctx, "live", `document.querySelector('#conn').dataset.conn === "live"`)
		b.noHorizontalScroll(t, ctx, "360 px dark")
		b.shot(t, ctx, "phone-360-dark", true)
		b.viewport(t, ctx, 1280, 900, false)
		b.do(t, ctx, "reload", chromedp.Navigate(e.web.URL+"/"))
		b.waitJS(t, ctx, "live", `document.querySelector('#conn').dataset.conn === "live"`)
		b.noHorizontalScroll(t, ctx, "1280 px")
		b.shot(t, ctx, "desktop-light")
		b.viewport(t, ctx, 1280, 900, true)
		b.shot(t, ctx, "desktop-dark")
	})
	// Last: it stops the web port for good.
	t.Run("the installed app says when the server is out of reach", func(t *testing.T) {
		for _, dark := range []bool{false, true} {
			b.viewport(t, ctx, 360, 740, dark)
			b.do(t, ctx, "reload", chromedp.Navigate(e.web.URL+"/"))
			b.waitJS(t, ctx, "the service worker in control", `!!navigator.serviceWorker.controller`)
		}
		e.web.CloseClientConnections()
		e.web.Close()
		for _, dark := range []bool{false, true} {
			b.viewport(t, ctx, 360, 740, dark)
			b.do(t, ctx, "reload with the server gone", chromedp.Navigate(e.web.URL+"/"))
			b.waitJS(t, ctx, "the offline page", `document.querySelector('h1')?.textContent === "Cannot reach your cloudcloud"`)
			b.noHorizontalScroll(t, ctx, "offline page")
			b.shot(t, ctx, "offline-360-"+map[bool]string{false: "light", true: "dark"}[dark])
		}
	})
}

// setOffline tells the tab it lost the network (navigator.onLine and the
// offline event, as a phone leaving Wi-Fi does) or got it back.
func (b *browser) setOffline(t *testing.T, ctx context.Context, offline bool) {
	t.Helper()
	b.do(t, ctx, "network conditions", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := chromedp.Call(ctx, network.OverrideNetworkState, network.OverrideNetworkStateParams{Offline: offline, DownloadThroughput: -1, UploadThroughput: -1})
		return err
	}))
}

// wheelBox scrolls the wheel into view and returns its centre and radius
// in viewport pixels.
func (b *browser) wheelBox(t *testing.T, ctx context.Context) (cx, cy, r float64) {
	t.Helper()
	b.do(t, ctx, "scroll to the wheel", chromedp.Evaluate[chromedp.Void](`document.querySelector('#wheel').scrollIntoView({block: 'center'})`))
	box := evalJS[[]float64](t, ctx, `(() => { const r = document.querySelector('#wheel').getBoundingClientRect(); return [r.left, r.top, r.width]; })()`)
	return box[0] + box[2]/2, box[1] + box[2]/2, box[2] / 2
}

// touchMode makes the tab a touch screen (pointerType "touch").
func (b *browser) touchMode(t *testing.T, ctx context.Context, on bool) {
	t.Helper()
	b.do(t, ctx, "touch emulation", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetTouchEmulationEnabled, emulation.SetTouchEmulationEnabledParams{Enabled: on, MaxTouchPoints: 1})
		return err
	}))
}

// touchAt is one finger's touch event; end and cancel carry no point.
func touchAt(kind input.DispatchTouchEventType, x, y float64) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		p := input.DispatchTouchEventParams{Type: kind, TouchPoints: []*input.TouchPoint{}}
		if kind == input.DispatchTouchEventTypeTouchStart || kind == input.DispatchTouchEventTypeTouchMove {
			p.TouchPoints = []*input.TouchPoint{{X: x, Y: y}}
		}
		_, err := chromedp.Call(ctx, input.DispatchTouchEvent, p)
		return err
	})
}

// screenshotClip captures a square of the viewport, at scale 1.
func (b *browser) screenshotClip(t *testing.T, ctx context.Context, x, y, size float64) image.Image {
	t.Helper()
	var buf []byte
	b.do(t, ctx, "capture the wheel", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		res, err := chromedp.Call(ctx, page.CaptureScreenshot, page.CaptureScreenshotParams{
			Format: page.CaptureScreenshotFormatPng,
			Clip:   &page.Viewport{X: x, Y: y, Width: size, Height: size, Scale: 1},
		})
		buf = res.Data
		return err
	}))
	img, err := png.Decode(bytes.NewReader(buf))
	if err != nil {
		t.Fatalf("decode the screenshot: %v", err)
	}
	return img
}

// pixelAt is the colour at a fraction of the image's width and height.
func pixelAt(t *testing.T, img image.Image, fx, fy float64) [3]int {
	t.Helper()
	bounds := img.Bounds()
	x := bounds.Min.X + int(fx*float64(bounds.Dx()-1))
	y := bounds.Min.Y + int(fy*float64(bounds.Dy()-1))
	r, g, bl, _ := img.At(x, y).RGBA()
	return [3]int{int(r >> 8), int(g >> 8), int(bl >> 8)}
}

func parseHex(s string) ([3]int, error) {
	var c [3]int
	_, err := fmt.Sscanf(s, "#%02x%02x%02x", &c[0], &c[1], &c[2])
	return c, err
}

// waitState waits until the display state satisfies ok.
// settledColour waits until the colour has not changed for 400 ms (the
// page's throttle sends a drag's last value within that) and returns it.
func settledColour(t *testing.T, e *env) protocol.RGB {
	t.Helper()
	last, since := e.store.Get().Color, time.Now()
	for range 500 {
		if cur := e.store.Get().Color; cur != last {
			last, since = cur, time.Now()
		} else if time.Since(since) >= 400*time.Millisecond {
			return last
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the colour never settled")
	return last
}

func waitState(t *testing.T, e *env, ok func(state.State) bool) {
	t.Helper()
	for range 500 {
		if ok(e.store.Get()) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	b, _ := json.Marshal(e.store.Get())
	t.Fatalf("the state never became what was expected: %s", b)
}

// contrastJS is a function of a list of selectors: for every visible
// element with its own text it computes the WCAG contrast of its colour on
// the background behind it (the first opaque one up the tree, with
// translucent ones blended in) and lists those below AA. Colours are
// resolved by painting them on a canvas, so color-mix() and color() count
// as the browser shows them. Elements on the hero's gradient are left out.
const contrastJS = `((selectors) => {
	// Colours are read as they end up, not halfway through a transition
	// (a toggle that was just pressed, a theme that was just switched);
	// endless animations (the live dot) are left alone.
	document.getAnimations().forEach((a) => { if (a instanceof CSSTransition) a.finish(); });
	const cv = document.createElement('canvas'); cv.width = cv.height = 1;
	const g = cv.getContext('2d', {willReadFrequently: true});
	const rgba = (css) => { g.clearRect(0, 0, 1, 1); g.fillStyle = '#000'; g.fillStyle = css; g.fillRect(0, 0, 1, 1); const d = g.getImageData(0, 0, 1, 1).data; return [d[0], d[1], d[2], d[3] / 255]; };
	const over = (top, under) => [0, 1, 2].map(i => top[i] * top[3] + under[i] * (1 - top[3])).concat(1);
	const lum = (c) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }; return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
	const background = (el) => {
		const layers = [];
		for (let n = el; n; n = n.parentElement) {
			const c = rgba(getComputedStyle(n).backgroundColor);
			if (c[3] > 0) layers.push(c);
			if (c[3] >= 1) break;
		}
		let bg = [255, 255, 255, 1];
		for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
		return bg;
	};
	const out = [];
	for (const sel of selectors) {
		for (const el of document.querySelectorAll(sel)) {
			if (el.offsetParent === null || el.closest('.hero') || el.disabled || el.closest('[disabled]')) continue;
			if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()) && !el.querySelector('span')) continue;
			const cs = getComputedStyle(el);
			const fg = over(rgba(cs.color), background(el));
			const bg = background(el);
			const a = lum(fg), b = lum(bg);
			const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
			const px = parseFloat(cs.fontSize), bold = parseInt(cs.fontWeight) >= 700;
			const need = px >= 24 || (bold && px >= 18.66) ? 3 : 4.5;
			if (ratio < need) out.push(sel + ' "' + el.textContent.trim().slice(0, 30) + '" ' + ratio.toFixed(2) + ' < ' + need + ' (' + cs.color + ' on rgb(' + bg.slice(0, 3).map(Math.round) + '))');
		}
	}
	return [...new Set(out)].slice(0, 20);
})`
