package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
)

// maxBody is the largest JSON body accepted (API.md: 64 KiB, else 413).
const maxBody = 64 << 10

// readJSONBody returns the body of a JSON request, enforcing API.md's rules:
// Content-Type application/json (415) and at most 64 KiB (413).
func readJSONBody(c echo.Context) ([]byte, error) {
	r := c.Request()
	ct := r.Header.Get(echo.HeaderContentType)
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || mt != echo.MIMEApplicationJSON {
		got := "no Content-Type"
		if ct != "" {
			got = fmt.Sprintf("Content-Type %q", ct)
		}
		return nil, errorf(http.StatusUnsupportedMediaType, "send the body as JSON with Content-Type: application/json (got %s)", got)
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(http.StatusRequestEntityTooLarge, "the body is larger than %d KiB; send less", maxBody>>10)
		}
		return nil, errorf(http.StatusBadRequest, "could not read the body: %v", err)
	}
	return body, nil
}

// field is one member of a JSON object a route accepts: its name, where to
// decode it, and what a valid value looks like (for error sentences).
type field struct {
	name string
	dst  any
	want string
}

// decodeObject decodes body, which must be one JSON object, into fields.
// Each member is decoded on its own so an error can name the member; a
// member the route does not know is an error naming it and the known ones.
// Every error is a 400 *httpError whose sentence a person can act on.
func decodeObject(body []byte, fields []field) error {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	example := `{"` + strings.Join(names, `": …, "`) + `": …}`
	if len(bytes.TrimSpace(body)) == 0 {
		return errorf(http.StatusBadRequest, "the body is empty; send a JSON object like %s", example)
	}
	if err := noDuplicateKeys(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var members map[string]json.RawMessage
	if err := dec.Decode(&members); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return errorf(http.StatusBadRequest, "the body must be a JSON object like %s, not %s", example, te.Value)
		}
		return errorf(http.StatusBadRequest, "the body is not valid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if members == nil {
		return errorf(http.StatusBadRequest, "the body must be a JSON object like %s, not null", example)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errorf(http.StatusBadRequest, "the body has more after the JSON object; send exactly one object")
	}
	var unknown []string
	for name := range members {
		if !slices.Contains(names, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return errorf(http.StatusBadRequest, "unknown field %q; the fields are %s", unknown[0], strings.Join(names, ", "))
	}
	for _, f := range fields {
		raw, ok := members[f.name]
		if !ok {
			continue
		}
		if err := decodeMember(raw, f.dst); err != nil {
			return memberError(f, raw, err)
		}
	}
	return nil
}

// noDuplicateKeys refuses an object, at any depth, that names a member
// twice: encoding/json would silently keep the last one, so a client's
// mistake would change state it did not mean to. Syntax errors are left to
// the decoding that follows.
func noDuplicateKeys(body []byte) error {
	type level struct {
		keys     map[string]bool // nil for an array
		path     string
		wantKey  bool
		childKey string
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var stack []*level
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		var top *level
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.keys != nil && top.wantKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			key, _ := tok.(string)
			name := top.path + key
			if top.keys[key] {
				return errorf(http.StatusBadRequest, "field %q appears twice; send each field once", name)
			}
			top.keys[key], top.wantKey, top.childKey = true, false, name+"."
			continue
		}
		// tok is a value: of an object member, of an array, or the root.
		path := ""
		if top != nil {
			path = top.path
			if top.keys != nil {
				path, top.wantKey = top.childKey, true
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &level{keys: map[string]bool{}, path: path, wantKey: true})
		case json.Delim('['):
			stack = append(stack, &level{path: path})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
	}
}

// decodeMember decodes one member strictly: unknown fields inside nested
// objects are errors too.
func decodeMember(raw json.RawMessage, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(dst)
}

// memberError explains why a member could not be decoded.
func memberError(f field, raw json.RawMessage, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return errorf(http.StatusBadRequest, "%s must be %s, not %s", f.name, f.want, describeJSON(raw))
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if strings.HasPrefix(msg, f.name) {
		return errorf(http.StatusBadRequest, "%s", msg)
	}
	return errorf(http.StatusBadRequest, "%s: %s", f.name, msg)
}

// describeJSON names a JSON value for an error sentence, keeping it short:
// a client's mistake is echoed, but never a whole body.
func describeJSON(raw json.RawMessage) string {
	t := bytes.TrimSpace(raw)
	kind := "a number"
	if len(t) > 0 {
		switch t[0] {
		case '"':
			kind = "a string"
		case '{':
			kind = "an object"
		case '[':
			kind = "a list"
		case 't', 'f':
			kind = "a boolean"
		case 'n':
			return "null"
		}
	}
	if len(t) > 40 {
		return kind
	}
	return kind + " " + string(t)
}
