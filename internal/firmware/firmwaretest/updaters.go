package firmwaretest

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// The two updaters lamp firmware uses to fetch /firmware.bin, as they send
// their requests and a login, so tests download the way real lamps do.

// Answer is the final answer an updater got.
type Answer struct {
	Status   int
	Header   http.Header
	Body     []byte
	Requests int // requests sent: ESP-IDF's updater sends a second after a 401
}

// DialFunc opens the connection to addr (host:port); nil dials plain TCP.
// Tests pass one that dials a proxy or wraps TLS.
type DialFunc func(ctx context.Context, addr string) (net.Conn, error)

// ArduinoDownload fetches rawURL as Arduino-ESP32's HTTPUpdate does:
// HTTP/1.0, User-Agent ESP32-http-Update, the x-ESP32-* headers in header,
// and the login (httpUpdate.setAuthorization, or user:pass@ in the URL)
// sent with the first and only request.
func ArduinoDownload(ctx context.Context, dial DialFunc, rawURL string, header map[string]string) (Answer, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return Answer{}, err
	}
	if dial == nil {
		dial = func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}
	}
	conn, err := dial(ctx, u.Host)
	if err != nil {
		return Answer{}, err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	} else {
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	}
	req := fmt.Sprintf("GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: ESP32-http-Update\r\nConnection: close\r\n", u.RequestURI(), u.Host)
	if u.User != nil {
		pass, _ := u.User.Password()
		req += "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pass)) + "\r\n"
	}
	for k, v := range header {
		req += k + ": " + v + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		return Answer{}, err
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return Answer{}, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return Answer{}, err
	}
	return Answer{Status: res.StatusCode, Header: res.Header, Body: body, Requests: 1}, nil
}

// IDFDownload fetches rawURL as ESP-IDF's esp_https_ota does through
// esp_http_client: the user:pass@ of the URL is not sent at first; only
// after a 401 whose WWW-Authenticate names Basic does it ask again, on the
// same connection, with the login. c is the client (nil: a new one, so
// no connection is shared with other tests); its transport keeps the
// connection alive between the two requests.
func IDFDownload(ctx context.Context, c *http.Client, rawURL string) (Answer, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return Answer{}, err
	}
	login := u.User
	u.User = nil
	if c == nil {
		c = &http.Client{Transport: &http.Transport{}}
		defer c.CloseIdleConnections()
	}
	get := func(withLogin bool) (*http.Response, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return nil, nil, err
		}
		req.Header.Set("User-Agent", "ESP32 HTTP Client/1.0")
		if withLogin {
			pass, _ := login.Password()
			req.SetBasicAuth(login.Username(), pass)
		}
		res, err := c.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		return res, body, err
	}
	res, body, err := get(false)
	if err != nil {
		return Answer{}, err
	}
	a := Answer{Status: res.StatusCode, Header: res.Header, Body: body, Requests: 1}
	if res.StatusCode != http.StatusUnauthorized || login == nil || !startsWithBasic(res.Header.Get("WWW-Authenticate")) {
		return a, nil
	}
	res, body, err = get(true)
	if err != nil {
		return Answer{}, err
	}
	return Answer{Status: res.StatusCode, Header: res.Header, Body: body, Requests: 2}, nil
}

func startsWithBasic(challenge string) bool {
	return len(challenge) >= 5 && (challenge[:5] == "Basic" || challenge[:5] == "basic")
}
