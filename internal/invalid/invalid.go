// Package invalid is the one error type for input that breaks a rule, from
// a request, a form, a saved file or the configuration: it names the field
// and says what to do. The web layer answers it with 400; the config
// loader prints it with the file and line.
package invalid

import "fmt"

// Error says which field is wrong and what to write instead.
type Error struct {
	Field   string // "pulse", "colors[2]", "device.ping_interval"
	Message string // a sentence a person can act on
}

func (e *Error) Error() string { return e.Field + ": " + e.Message }

// Field returns an *Error for field.
func Field(field, format string, args ...any) *Error {
	return &Error{Field: field, Message: fmt.Sprintf(format, args...)}
}
