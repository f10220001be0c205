package web

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/cloudcloud/cloudcloud/internal/storage"

	"github.com/cloudcloud/cloudcloud/internal/errorbody"

	"github.com/labstack/echo/v4"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/atomicfile"
	"github.com/cloudcloud/cloudcloud/internal/automation"
	"github.com/cloudcloud/cloudcloud/internal/cluster"
	"github.com/cloudcloud/cloudcloud/internal/favorites"
	"github.com/cloudcloud/cloudcloud/internal/firmware"
	"github.com/cloudcloud/cloudcloud/internal/invalid"
	"github.com/cloudcloud/cloudcloud/internal/lamps"
	"github.com/cloudcloud/cloudcloud/web/templates"
)

// httpError is an error with the status it is answered with. Handlers
// return it (or an error renderError knows) and never write error
// responses themselves, so every error looks the same on the wire.
type httpError struct {
	status     int
	msg        string
	retryAfter int // seconds; sets Retry-After when > 0
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) *httpError {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

// classify turns any error into the status and sentence the client sees.
// Errors it does not know are a bug or a disk failure: 500 with a generic
// sentence, and the detail goes to the log, not to the client.
func (s *Server) classify(err error, c echo.Context) *httpError {
	var (
		he    *httpError
		ee    *echo.HTTPError
		ve    *invalid.Error
		stale *favorites.StaleError
		ude   *device.UnknownDeviceError
		ule   *lamps.UnknownError
		ole   *lamps.OnlineError
		mbe   *http.MaxBytesError
		tle   *firmware.TooLargeError
		iie   *firmware.InvalidImageError
		cme   *firmware.ChipMismatchError
		pce   *firmware.ProjectChangeError
		usc   *automation.UnknownSceneError
		usch  *automation.UnknownScheduleError
		node  *cluster.NodeError
		path  = c.Request().URL.Path
	)
	switch {
	case errors.As(err, &he):
		return he
	case errors.As(err, &tle):
		return errorf(http.StatusRequestEntityTooLarge, "%s", tle.Error())
	case errors.As(err, &iie):
		return errorf(http.StatusBadRequest, "%s", iie.Reason)
	case errors.As(err, &cme):
		return errorf(http.StatusConflict, "%s", cme.Error())
	case errors.As(err, &pce):
		return errorf(http.StatusConflict, "%s", pce.Error())
	case errors.Is(err, firmware.ErrNoPrevious):
		return errorf(http.StatusNotFound, "there is no previous firmware image to roll back to: the server keeps the one before the current image once a second image has been uploaded")
	case errors.Is(err, firmware.ErrNoImage):
		return errorf(http.StatusNotFound, "no firmware image has been uploaded yet")
	case errors.As(err, &usc):
		return errorf(http.StatusNotFound, "%s", usc.Error())
	case errors.As(err, &usch):
		return errorf(http.StatusNotFound, "%s", usch.Error())
	case errors.As(err, &ve):
		return errorf(http.StatusBadRequest, "%s", ve.Error())
	case errors.As(err, &stale):
		return errorf(http.StatusConflict, "%s", stale.Error())
	case errors.As(err, &ude):
		return errorf(http.StatusNotFound, "%s", ude.Error())
	case errors.As(err, &ule):
		return errorf(http.StatusNotFound, "%s", ule.Error())
	case errors.As(err, &ole):
		return errorf(http.StatusConflict, "%s", ole.Error())
	case errors.As(err, &mbe):
		return errorf(http.StatusRequestEntityTooLarge, "the request body is larger than %d bytes", mbe.Limit)
	case atomicfile.Kind(err) != "":
		return s.storageError(err, c)
	case errors.As(err, &node):
		return &httpError{status: http.StatusServiceUnavailable, retryAfter: 2, msg: node.Error()}
	case errors.Is(err, storage.ErrUnavailable):
		s.log.Error("request failed: the cluster's storage cannot be reached", "method", c.Request().Method, "path", path, "err", err)
		return &httpError{status: http.StatusServiceUnavailable, retryAfter: 5,
			msg: "the cluster's storage (NATS JetStream, cluster.nats_url) cannot be reached, so nothing was changed; the lamps keep showing what they show. Try again when NATS is back"}
	case errors.As(err, &ee):
		switch ee.Code {
		case http.StatusNotFound:
			return errorf(http.StatusNotFound, "nothing at %s %s; the routes are listed in API.md", c.Request().Method, path)
		case http.StatusMethodNotAllowed:
			allow := c.Response().Header().Get(echo.HeaderAllow)
			if allow == "" {
				if v, ok := c.Get(echo.ContextKeyHeaderAllow).(string); ok {
					allow = v
				}
			}
			return errorf(http.StatusMethodNotAllowed, "%s is not allowed on %s; use %s", c.Request().Method, path, allowedList(allow))
		}
		if ee.Code < 500 {
			return errorf(ee.Code, "%v", ee.Message)
		}
	}
	s.log.Error("request failed", "method", c.Request().Method, "path", path, "err", err)
	return errorf(http.StatusInternalServerError, "the server could not do that (%s); the log has the details", http.StatusText(http.StatusInternalServerError))
}

// storageError says what is wrong with the disk when a change could not be
// saved; the stores have changed nothing then (they save first).
func (s *Server) storageError(err error, c echo.Context) *httpError {
	s.log.Error("request failed: cannot write to the data directory", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
	dir := s.opt.DataDir
	switch atomicfile.Kind(err) {
	case atomicfile.NoSpace:
		return errorf(http.StatusInsufficientStorage, "the data directory %s is full (no space left on the device); nothing was changed: free some space and try again", dir)
	case atomicfile.ReadOnly:
		return errorf(http.StatusServiceUnavailable, "the data directory %s is read-only (the file system is mounted read-only); nothing was changed: remount it read-write and try again", dir)
	case atomicfile.Permission:
		return errorf(http.StatusServiceUnavailable, "the server may not write to the data directory %s (permission denied); nothing was changed: give the server's user write access and try again", dir)
	}
	return errorf(http.StatusInternalServerError, "the data directory %s could not be written (a disk error); nothing was changed: the log has the details", dir)
}

// wantsJSON says whether an error should be answered as JSON: the API and
// the firmware download (scripts and lamps), or any client asking for it.
func wantsJSON(r *http.Request) bool {
	return isAPIPath(r.URL.Path) || strings.Contains(r.Header.Get("Accept"), "application/json")
}

func isAPIPath(p string) bool {
	return strings.HasPrefix(p, "/api/") || p == "/api" || p == "/firmware.bin"
}

// renderError is echo's error handler: the one place errors are written.
func (s *Server) renderError(err error, c echo.Context) {
	he := s.classify(err, c)
	if c.Response().Committed {
		// A stream already started (SSE); all that is left is to log it.
		s.log.Debug("error after the response started", "path", c.Request().URL.Path, "err", err)
		return
	}
	h := c.Response().Header()
	if he.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(he.retryAfter))
	}
	h.Set("Cache-Control", "no-store")
	var werr error
	switch {
	case c.Request().Method == http.MethodHead:
		werr = c.NoContent(he.status)
	case wantsJSON(c.Request()):
		// "error" is the full sentence for scripts; "message" is what the
		// page shows a person.
		werr = c.JSON(he.status, errorbody.For(he.msg))
	default:
		detail := he.msg
		if detail == errorbody.ForPerson(detail) {
			detail = ""
		}
		werr = s.renderPage(c, he.status, templates.ErrorPage(s.pageData(c, "Error"), he.status, http.StatusText(he.status), errorbody.ForPerson(he.msg), detail))
	}
	if werr != nil {
		s.log.Debug("could not write the error response", "err", werr)
	}
}

// allowedList turns an Allow header ("OPTIONS, GET, PUT") into words for
// people ("GET or PUT"); OPTIONS is implied for every route.
func allowedList(allow string) string {
	var methods []string
	for m := range strings.SplitSeq(allow, ",") {
		if m = strings.TrimSpace(m); m != "" && m != http.MethodOptions {
			methods = append(methods, m)
		}
	}
	switch len(methods) {
	case 0:
		return "another method"
	case 1:
		return methods[0]
	}
	return strings.Join(methods[:len(methods)-1], ", ") + " or " + methods[len(methods)-1]
}
