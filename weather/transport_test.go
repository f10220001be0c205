package weather

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// seenRequest is what the test server saw.
type seenRequest struct {
	path, rawQuery, host string
}

func recordingServer(t *testing.T, status int, body string) (*httptest.Server, func() seenRequest) {
	t.Helper()
	var mu sync.Mutex
	var seen seenRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = seenRequest{r.URL.Path, r.URL.RawQuery, r.Host}
		mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, func() seenRequest {
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
}

func TestEndpointTransportRewritesHost(t *testing.T) {
	srv, seen := recordingServer(t, http.StatusOK, "{}")
	const original = "https://api.openweathermap.org/data/2.5/weather?appid=k&q=S%C3%A3o+Paulo%2CBR&units=metric&lang=EN"
	tests := []struct {
		name     string
		endpoint string
		wantPath string
	}{
		{"scheme and host only", srv.URL, "/data/2.5/weather"},
		{"trailing slash", srv.URL + "/", "/data/2.5/weather"},
		{"path prefix of a proxy", srv.URL + "/owm", "/owm/data/2.5/weather"},
		{"path prefix with slash", srv.URL + "/owm/", "/owm/data/2.5/weather"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			endpoint, err := parseEndpoint(tt.endpoint)
			if err != nil {
				t.Fatal(err)
			}
			client := &http.Client{Transport: &endpointTransport{next: http.DefaultTransport, endpoint: endpoint}}
			req, err := http.NewRequest(http.MethodGet, original, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			resp.Body.Close()

			got := seen()
			wantHost := strings.TrimPrefix(srv.URL, "http://")
			if got.path != tt.wantPath || got.host != wantHost {
				t.Errorf("server saw path %q host %q, want %q %q", got.path, got.host, tt.wantPath, wantHost)
			}
			if want := "appid=k&q=S%C3%A3o+Paulo%2CBR&units=metric&lang=EN"; got.rawQuery != want {
				t.Errorf("query %q, want %q unchanged", got.rawQuery, want)
			}
			if req.URL.String() != original {
				t.Errorf("the caller's request changed to %s", req.URL)
			}
		})
	}
}

func TestFetchTransportRecordsStatus(t *testing.T) {
	const body = `{"cod":"404","message":"city not found"}`
	srv, _ := recordingServer(t, http.StatusNotFound, body)
	ft := &fetchTransport{next: http.DefaultTransport, ctx: context.Background()}
	resp, err := (&http.Client{Transport: ft}).Get(srv.URL + "/data/2.5/weather")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ft.status != http.StatusNotFound || string(ft.errorBody) != body {
		t.Errorf("recorded %d %q, want 404 and the body", ft.status, ft.errorBody)
	}
	// The library still gets the body to decode.
	if got, _ := io.ReadAll(resp.Body); string(got) != body {
		t.Errorf("body passed on %q, want %q", got, body)
	}
}

func TestFetchTransportUsesItsContext(t *testing.T) {
	srv, _ := recordingServer(t, http.StatusOK, "{}")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ft := &fetchTransport{next: http.DefaultTransport, ctx: ctx}
	_, err := (&http.Client{Transport: ft}).Get(srv.URL)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled from the fetch's context", err)
	}
	var urlErr *url.Error
	if !errors.As(err, &urlErr) {
		t.Errorf("error %T, want *url.Error", err)
	}
}

func TestFetchTransportLimitsBody(t *testing.T) {
	srv, _ := recordingServer(t, http.StatusOK, `{"name":"`+strings.Repeat("x", maxBodyBytes)+`"}`)
	ft := &fetchTransport{next: http.DefaultTransport, ctx: context.Background()}
	resp, err := (&http.Client{Transport: ft}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if !errors.Is(err, errBodyTooLarge) || len(got) != maxBodyBytes {
		t.Errorf("read %d bytes, error %v; want %d bytes then errBodyTooLarge", len(got), err, maxBodyBytes)
	}
}

func TestPollerRejectsHugeAnswer(t *testing.T) {
	huge := owmResponse{status: http.StatusOK, body: `{"name":"` + strings.Repeat("x", 2*maxBodyBytes) + `"}`}
	fake := newFakeOWM(t, huge)
	h := start(t, fake, nil)
	h.clock.waitTimer(t)
	if r := h.p.Report(); r.Status != StatusError || !strings.Contains(r.Error, "not weather data") {
		t.Errorf("status %q error %q, want an error about the answer", r.Status, r.Error)
	}
}
