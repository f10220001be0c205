package web

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/cloudcloud/cloudcloud/internal/errorbody"
	"github.com/cloudcloud/cloudcloud/internal/firmware"
	"github.com/cloudcloud/cloudcloud/internal/rollout"
)

// Firmware over the air: upload an image (checked by firmware.Store before
// any lamp can fetch it), see what is current, roll back, and follow each
// lamp's update live. The JSON routes and the no-script forms share
// receiveUpload and classify, so both refuse the same files with the same
// sentences.

// multipartSlack is what the upload body may carry beyond the image itself:
// the boundaries, part headers and the small form fields.
const multipartSlack = 64 << 10

// maxFieldSize bounds the small form fields read from an upload.
const maxFieldSize = 1 << 10

// Upload form fields. The original cloud-cloud server called the file
// field "binfile"; both are accepted.
const (
	fieldFirmware           = "firmware"
	fieldFirmwareLegacy     = "binfile"
	fieldAllowProjectChange = "allow_project_change"
)

// firmwareStatus is GET /api/firmware:
//
//	{"current": Info|null, "previous": Info|null, "updates": [rollout.Update, ...]}
//
// current is the image lamps download now (API.md's "the current image's
// info", kept as the first member), previous the one a rollback brings
// back, and updates the newest update of every lamp, newest first.
type firmwareStatus struct {
	Current  *firmware.Info   `json:"current"`
	Previous *firmware.Info   `json:"previous"`
	Updates  []rollout.Update `json:"updates"`
}

func (s *Server) firmwareStatus() firmwareStatus {
	st := firmwareStatus{Updates: []rollout.Update{}}
	if info, ok := s.deps.Firmware.Current(); ok {
		st.Current = &info
	}
	if info, ok := s.deps.Firmware.Previous(); ok {
		st.Previous = &info
	}
	if s.deps.Rollout != nil {
		if u := s.deps.Rollout.Updates(); u != nil {
			st.Updates = u
		}
	}
	return st
}

// errNoFirmware answers the firmware routes of a server wired without a
// firmware store.
var errNoFirmware = errorf(http.StatusServiceUnavailable, "firmware updates are not set up on this server")

func (s *Server) getFirmware(c echo.Context) error {
	if s.deps.Firmware == nil {
		return errNoFirmware
	}
	return noStoreJSON(c, http.StatusOK, s.firmwareStatus())
}

// postFirmware is POST /api/firmware: the multipart upload; answers the
// parsed image info.
func (s *Server) postFirmware(c echo.Context) error {
	info, err := s.receiveUpload(c)
	if err != nil {
		return err
	}
	return noStoreJSON(c, http.StatusOK, info)
}

// formFirmware is the same upload from the page without its script: the
// outcome comes back as a flash message on the page.
func (s *Server) formFirmware(c echo.Context) error {
	info, err := s.receiveUpload(c)
	if errors.Is(err, errCSRF) {
		// Answered like every other form's missing token: no flash, so a
		// forged post cannot even leave words on the page.
		return err
	}
	if err != nil {
		return s.flashError(c, err)
	}
	s.setFlash(c, flashOK, uploadedSentence(info))
	return c.Redirect(http.StatusSeeOther, "/#firmware")
}

func (s *Server) postFirmwareRollback(c echo.Context) error {
	info, err := s.rollback()
	if err != nil {
		return err
	}
	return noStoreJSON(c, http.StatusOK, info)
}

func (s *Server) formFirmwareRollback(c echo.Context) error {
	info, err := s.rollback()
	if err != nil {
		return s.flashError(c, err)
	}
	s.setFlash(c, flashOK, fmt.Sprintf("Rolled back: lamps now get %s %s. Press Update to send it to them.", info.Project, info.Version))
	return c.Redirect(http.StatusSeeOther, "/#firmware")
}

func (s *Server) rollback() (firmware.Info, error) {
	if s.deps.Firmware == nil {
		return firmware.Info{}, errNoFirmware
	}
	info, err := s.deps.Firmware.Rollback()
	if err != nil {
		return firmware.Info{}, err
	}
	return info, nil
}

// flashError shows a refusal on the page. A 5xx is logged by classify and
// shown as its generic sentence.
func (s *Server) flashError(c echo.Context, err error) error {
	he := s.classify(err, c)
	s.setFlash(c, flashError, errorbody.ForPerson(he.msg))
	return c.Redirect(http.StatusSeeOther, "/#firmware")
}

func uploadedSentence(info firmware.Info) string {
	return fmt.Sprintf("Uploaded %s %s. Lamps get it when you press Update.", info.Project, info.Version)
}

// receiveUpload streams the file part of a multipart upload into the
// firmware store: the image is never held in memory, and the body may be at
// most firmware.max_size plus a little for the multipart framing. Fields
// that change how the file is checked (allow_project_change, and the csrf
// field of a form post) must come before the file, which is where browsers
// put them when the form lists them first.
// uploadTimeout bounds the time one firmware upload may take to arrive.
const uploadTimeout = 5 * time.Minute

func (s *Server) receiveUpload(c echo.Context) (firmware.Info, error) {
	if s.deps.Firmware == nil {
		return firmware.Info{}, errNoFirmware
	}
	r := c.Request()
	ct := r.Header.Get(echo.HeaderContentType)
	mt, params, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || mt != "multipart/form-data" {
		got := "no Content-Type"
		if ct != "" {
			got = fmt.Sprintf("Content-Type %q", ct)
		}
		return firmware.Info{}, errorf(http.StatusUnsupportedMediaType,
			"send the image as multipart/form-data with the file in the field %q, for example curl -F firmware=@build/app.bin (got %s)", fieldFirmware, got)
	}
	if params["boundary"] == "" {
		return firmware.Info{}, errorf(http.StatusBadRequest, "the multipart Content-Type has no boundary parameter; let your HTTP client build the form (curl -F firmware=@build/app.bin)")
	}
	maxSize := s.opt.FirmwareMaxSize
	if r.ContentLength > maxSize+multipartSlack {
		// Refused before a byte of it is read.
		return firmware.Info{}, &firmware.TooLargeError{Limit: maxSize}
	}
	// An upload from a phone on a slow uplink may need longer than the
	// server's read timeout; it is logged in, so it may take its time.
	_ = http.NewResponseController(c.Response()).SetReadDeadline(time.Now().Add(uploadTimeout))
	body := &readTracker{r: http.MaxBytesReader(c.Response(), r.Body, maxSize+multipartSlack)}
	mr := multipart.NewReader(body, params["boundary"])

	// A cookie session's form post carries its CSRF token in the form,
	// which requireLogin cannot read without consuming the upload; it is
	// checked here, before anything is saved.
	csrfPending, _ := c.Get(ctxCSRFPending).(bool)
	var allow bool
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return firmware.Info{}, uploadReadError(body, err, maxSize)
		}
		switch name := part.FormName(); name {
		case csrfField:
			v, err := readField(part, body, maxSize)
			if err != nil {
				return firmware.Info{}, err
			}
			if csrfPending {
				a, _ := c.Get(ctxAuth).(authInfo)
				if !s.auth.checkCSRF(a.sess, v) {
					return firmware.Info{}, errCSRF
				}
				csrfPending = false
			}
		case fieldAllowProjectChange:
			v, err := readField(part, body, maxSize)
			if err != nil {
				return firmware.Info{}, err
			}
			if allow, err = parseCheckbox(v); err != nil {
				return firmware.Info{}, err
			}
		case fieldFirmware, fieldFirmwareLegacy:
			if csrfPending {
				return firmware.Info{}, errCSRF
			}
			return s.saveUpload(mr, part, body, allow)
		default:
			// Unknown fields are skipped, not refused: upload forms of other
			// tools send extras. They count against the body limit.
			if _, err := io.Copy(io.Discard, part); err != nil {
				return firmware.Info{}, uploadReadError(body, err, maxSize)
			}
		}
	}
	if csrfPending {
		return firmware.Info{}, errCSRF
	}
	return firmware.Info{}, errorf(http.StatusBadRequest, "no file was sent: put the image in the form field %q (or %q), for example curl -F firmware=@build/app.bin", fieldFirmware, fieldFirmwareLegacy)
}

// saveUpload hands the file part to the store.
func (s *Server) saveUpload(mr *multipart.Reader, part *multipart.Part, body *readTracker, allow bool) (firmware.Info, error) {
	maxSize := s.opt.FirmwareMaxSize
	// Read errors of the part (a body cut short, broken framing) are the
	// client's; anything else Save reports is the server's own.
	partRead := &readTracker{r: part}
	file := bufio.NewReader(partRead)
	if _, err := file.Peek(1); errors.Is(err, io.EOF) && part.FileName() == "" {
		return firmware.Info{}, errorf(http.StatusBadRequest, "no file was chosen: pick the application .bin from your build directory first")
	}
	info, err := s.deps.Firmware.Save(file, firmware.SaveOptions{MaxSize: maxSize, Chip: s.opt.FirmwareChip, AllowProjectChange: allow})
	if partRead.err != nil || body.err != nil {
		return firmware.Info{}, uploadReadError(body, partRead.err, maxSize)
	}
	var pce *firmware.ProjectChangeError
	if errors.As(err, &pce) && !allow && overrideFollows(mr) {
		return firmware.Info{}, errorf(http.StatusConflict,
			"%s; the form field %s came after the file, so it was read too late: send it before the file (curl: -F %s=1 -F firmware=@app.bin)",
			pce.Error(), fieldAllowProjectChange, fieldAllowProjectChange)
	}
	if err != nil {
		return firmware.Info{}, err
	}
	s.log.Info("firmware uploaded", "project", info.Project, "version", info.Version, "chip", info.Chip,
		"size", info.Size, "sha256", info.SHA256, "allow_project_change", allow)
	return info, nil
}

// overrideFollows reports whether allow_project_change is set in the parts
// after the file, so a script that put it last learns why it did not count.
func overrideFollows(mr *multipart.Reader) bool {
	// The whole body is bounded by MaxBytesReader; the loop by the parts in it.
	for {
		part, err := mr.NextPart()
		if err != nil {
			return false
		}
		if part.FormName() == fieldAllowProjectChange {
			v, err := io.ReadAll(io.LimitReader(part, maxFieldSize))
			if err != nil {
				return false
			}
			on, err := parseCheckbox(string(v))
			return err == nil && on
		}
		if _, err := io.Copy(io.Discard, part); err != nil {
			return false
		}
	}
}

// readField reads a small form field.
func readField(part *multipart.Part, body *readTracker, maxSize int64) (string, error) {
	v, err := io.ReadAll(io.LimitReader(part, maxFieldSize+1))
	if err != nil {
		return "", uploadReadError(body, err, maxSize)
	}
	if len(v) > maxFieldSize {
		return "", errorf(http.StatusBadRequest, "the form field %q is longer than %d bytes", part.FormName(), maxFieldSize)
	}
	return strings.TrimSpace(string(v)), nil
}

// parseCheckbox reads a checkbox-like field: browsers send "on" (or the
// input's value), scripts "1" or "true".
func parseCheckbox(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "1", "on", "yes", "true":
		return true, nil
	case "", "0", "off", "no", "false":
		return false, nil
	}
	return false, errorf(http.StatusBadRequest, "%s must be 1 (allow) or 0, not %q", fieldAllowProjectChange, v)
}

// uploadReadError explains why the upload could not be read.
func uploadReadError(body *readTracker, err error, maxSize int64) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) || errors.As(body.err, &mbe) {
		return &firmware.TooLargeError{Limit: maxSize}
	}
	if body.err != nil {
		err = body.err
	}
	return errorf(http.StatusBadRequest, "the upload could not be read (%v); it may have broken off: try again", err)
}

// readTracker remembers the first error reading the request body, so a
// failed upload is told apart from a failing disk.
type readTracker struct {
	r   io.Reader
	err error
}

func (t *readTracker) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && t.err == nil {
		t.err = err
	}
	return n, err
}

// haveFirmware says whether there is an image lamps can update to.
func (s *Server) haveFirmware() bool {
	if s.deps.Firmware == nil {
		return false
	}
	_, ok := s.deps.Firmware.Current()
	return ok
}
