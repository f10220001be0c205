package weather

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// endpointTransport sends requests meant for the library's built-in
// OpenWeatherMap URL to the configured endpoint instead: scheme and host are
// replaced, an endpoint path is put in front of the request path, and the
// query is kept. The library has no option for its base URL, only for its
// http.Client, so this is where a test server or a proxy is plugged in.
type endpointTransport struct {
	next     http.RoundTripper
	endpoint *url.URL
}

func (t *endpointTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// A RoundTripper must not change the caller's request.
	out := req.Clone(req.Context())
	out.URL.Scheme = t.endpoint.Scheme
	out.URL.Host = t.endpoint.Host
	if prefix := strings.TrimSuffix(t.endpoint.Path, "/"); prefix != "" {
		out.URL.Path = prefix + out.URL.Path
		out.URL.RawPath = ""
	}
	out.Host = "" // let the Host header follow the new URL
	return t.next.RoundTrip(out)
}

// maxBodyBytes bounds what is read from OpenWeatherMap: a real answer is
// about 1 KiB, so anything near this is not weather.
const maxBodyBytes = 1 << 20

// maxErrorBodyBytes bounds the error body kept for its message.
const maxErrorBodyBytes = 16 << 10

// errBodyTooLarge is returned when the answer exceeds maxBodyBytes.
var errBodyTooLarge = fmt.Errorf("the answer is larger than %d bytes", maxBodyBytes)

// fetchTransport is made for one fetch. It puts the fetch's context (with
// its timeout and the poller's cancellation) on the request, because the
// library calls http.Client.Get without a context, and it records the HTTP
// status and error body, because the library only checks for 401 and
// otherwise decodes any body as weather (a 429 decodes as an empty weather
// report, a 404 as a JSON type error). It is used from the goroutine that
// runs the fetch only.
type fetchTransport struct {
	next http.RoundTripper
	ctx  context.Context

	status    int    // of the last response, 0 when none arrived
	errorBody []byte // start of a non-2xx body
}

func (t *fetchTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req.WithContext(t.ctx))
	if err != nil {
		return nil, err
	}
	t.status = resp.StatusCode
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		body, readErr := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodyBytes))
		resp.Body.Close()
		if readErr != nil && !errors.Is(readErr, io.EOF) {
			body = nil // the status alone still classifies the failure
		}
		t.errorBody = body
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return resp, nil
	}
	resp.Body = &limitedBody{ReadCloser: resp.Body, remaining: maxBodyBytes}
	return resp, nil
}

// limitedBody fails a read past maxBodyBytes instead of letting a broken
// or hostile server fill the memory.
type limitedBody struct {
	io.ReadCloser
	remaining int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.remaining <= 0 {
		return 0, errBodyTooLarge
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.ReadCloser.Read(p)
	b.remaining -= int64(n)
	return n, err
}
