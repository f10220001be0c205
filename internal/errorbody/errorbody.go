// Package errorbody is the JSON body of every error answer, on every port:
// {"error": "<the full sentence, for scripts>", "message": "<the same for
// a person>"}. The web port's error renderer and the firmware download's
// login check both write it, so the two look the same on the wire.
package errorbody

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Body is the JSON object of an error answer.
type Body struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// For returns the body of the sentence msg.
func For(msg string) Body { return Body{Error: msg, Message: ForPerson(msg)} }

// technicalAside matches a parenthesis that is for scripts and developers,
// not for a person at the page: API fields and routes, byte offsets and
// sizes, hex values.
var technicalAside = regexp.MustCompile(`\s*\([^()]*(?:0x|API|/api/|\bbytes?\b)[^()]*\)`)

// ForPerson is an error sentence as the page shows it: without the
// technical asides (the API's JSON keeps them in "error"), starting with a
// capital letter and ending with a full stop.
func ForPerson(msg string) string {
	msg = strings.TrimSpace(technicalAside.ReplaceAllString(msg, ""))
	if msg == "" {
		return msg
	}
	r, n := utf8.DecodeRuneInString(msg)
	msg = string(unicode.ToUpper(r)) + msg[n:]
	if !strings.ContainsAny(msg[len(msg)-1:], ".!?") {
		msg += "."
	}
	return msg
}
