package protocol

import (
	"bytes"
	"strings"
	"unicode"
	"unicode/utf8"
)

// LampMessage is what a lamp may send after the handshake.
type LampMessage int

const (
	// LampOther is anything the protocol does not define; the server ignores it.
	LampOther LampMessage = iota
	// LampPing is the text "ping"; the server answers "pong".
	LampPing
	// LampDebug is "d:<message>", a debug log line.
	LampDebug
)

// Pong is the server's answer to a text ping.
var Pong = []byte("pong")

// OK is the server's answer to a good secret.
var OK = []byte("ok")

// ClassifyLamp tells what a text frame from a lamp is. For a debug line it
// returns the message, cleaned for display (see CleanLogLine).
func ClassifyLamp(frame []byte) (LampMessage, string) {
	if string(frame) == "ping" {
		return LampPing, ""
	}
	if msg, ok := bytes.CutPrefix(frame, []byte("d:")); ok {
		return LampDebug, CleanLogLine(msg)
	}
	return LampOther, ""
}

// CleanLogLine makes a lamp's log text safe to store and show: invalid UTF-8
// becomes U+FFFD, trailing CR/LF (serial habits) go, and other control
// characters become spaces so one line stays one line in the UI and files.
func CleanLogLine(b []byte) string {
	b = bytes.TrimRight(b, "\r\n")
	var sb strings.Builder
	sb.Grow(len(b))
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		switch {
		case r == utf8.RuneError && size == 1:
			sb.WriteRune(utf8.RuneError)
		case r == '\t':
			sb.WriteByte(' ')
		case unicode.IsControl(r):
			sb.WriteByte(' ')
		default:
			sb.WriteRune(r)
		}
	}
	return sb.String()
}

// TrimSecret removes the white space a serial-minded firmware may add around
// the secret (PROTOCOL.md: leading and trailing white space is ignored).
func TrimSecret(frame []byte) []byte { return bytes.TrimSpace(frame) }
