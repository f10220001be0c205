package firmware

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/cloudcloud/cloudcloud/internal/errorbody"

	"github.com/cloudcloud/cloudcloud/internal/backoff"
	"github.com/cloudcloud/cloudcloud/internal/realip"
)

// Access is who may download the image, the rule of PROTOCOL.md "Firmware
// download": an image holds what was compiled into it (Wi-Fi credentials,
// the lamp secret), so every download needs HTTP basic auth. Guard applies
// it, and the server puts Guard in front of /firmware.bin on every port.
type Access struct {
	// Open serves the image without a login (firmware.download_auth =
	// false), for firmware that cannot send one.
	Open bool
	// Secrets are the lamp secrets: any user name with one of them as the
	// password is let in.
	Secrets []string
	// Logins are user name and password pairs let in: the UI login and
	// firmware.download_username / download_password.
	Logins []Login
	// Backoff slows down wrong logins per address; required unless Open.
	Backoff *backoff.PerAddress
	Logger  *slog.Logger
}

// Login is a user name and its password.
type Login struct{ Username, Password string }

// challenge makes an updater that sent no login send one: ESP-IDF's
// esp_http_client sends the credentials of its URL only after a 401 that
// names Basic.
const challenge = `Basic realm="cloudcloud firmware", charset="UTF-8"`

// Guard lets a request through to h only with a login Access accepts.
// r.RemoteAddr must be the client's address (behind trusted proxies): the
// back-off counts per address.
//
// A request without a login gets 401 and the challenge, and costs nothing,
// since that is how ESP-IDF's updater starts. A wrong login gets 401 too
// and makes the address wait, like a wrong lamp secret; while it waits, a
// request with a login gets 429 with Retry-After without being checked.
// Errors are JSON ({"error": "..."}), as on the web port.
func (a Access) Guard(h http.Handler) http.Handler {
	if a.Open {
		return h
	}
	logger := a.Logger
	if logger == nil {
		logger = slog.Default()
	}
	secrets := make([][sha256.Size]byte, len(a.Secrets))
	for i, s := range a.Secrets {
		secrets[i] = sha256.Sum256([]byte(s))
	}
	type loginDigest struct{ user, pass [sha256.Size]byte }
	logins := make([]loginDigest, len(a.Logins))
	for i, l := range a.Logins {
		logins[i] = loginDigest{sha256.Sum256([]byte(l.Username)), sha256.Sum256([]byte(l.Password))}
	}
	// accepts compares digests in constant time and walks every candidate,
	// so neither the time taken nor anything else tells which one came close.
	accepts := func(user, pass string) bool {
		u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
		ok := 0
		for _, s := range secrets {
			ok |= subtle.ConstantTimeCompare(p[:], s[:])
		}
		for _, l := range logins {
			ok |= subtle.ConstantTimeCompare(u[:], l.user[:]) & subtle.ConstantTimeCompare(p[:], l.pass[:])
		}
		return ok == 1
	}

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok {
			refuse(w, http.StatusUnauthorized, "log in to download the firmware: HTTP basic auth with a lamp secret as the password (any user name), the UI login, or firmware.download_username / download_password", 0)
			return
		}
		ip := realip.IP(r.RemoteAddr)
		if d := a.Backoff.Wait(ip); d > 0 {
			refuse(w, http.StatusTooManyRequests, "too many wrong logins from your address; try again in "+strconv.Itoa(seconds(d))+" s", seconds(d))
			return
		}
		if !accepts(user, pass) {
			d := a.Backoff.Fail(ip)
			logger.Warn("wrong login for the firmware download", "client", ip, "next_attempt_in", d)
			refuse(w, http.StatusUnauthorized, "wrong login for the firmware download: use a lamp secret as the password (any user name), the UI login, or firmware.download_username / download_password", 0)
			return
		}
		a.Backoff.Succeed(ip)
		h.ServeHTTP(w, r)
	})
}

// refuse writes an error the way the web port does (errorbody): JSON, never cached,
// with the challenge on a 401 and Retry-After on a 429.
func refuse(w http.ResponseWriter, status int, msg string, retryAfter int) {
	h := w.Header()
	if status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", challenge)
	}
	if retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(retryAfter))
	}
	h.Set("Content-Type", "application/json; charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	body, _ := json.Marshal(errorbody.For(msg)) // strings always marshal
	_, _ = w.Write(append(body, '\n'))          // the client may be gone; nothing to do then
}

// seconds rounds a wait up to whole seconds for Retry-After.
func seconds(d time.Duration) int { return max(1, int(math.Ceil(d.Seconds()))) }
