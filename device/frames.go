package device

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Reading lamp frames ourselves, instead of through gorilla's Conn, is a
// memory decision: an idle lamp's reader then waits in a plain conn.Read
// with a shallow stack that fits Go's smallest (2 KiB) goroutine stack,
// where a reader parked inside gorilla's NextReader needs 4 KiB, and gorilla's
// read buffer is not needed. gorilla only does the upgrade; writer.go writes.
// Lamps send few, small frames, so a few syscalls per frame cost nothing.

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// frameError is a protocol violation; it carries the close code to send.
type frameError struct {
	code   int
	reason string
}

func (e *frameError) Error() string {
	return fmt.Sprintf("websocket protocol error %d: %s", e.code, e.reason)
}

// errTooBig is returned for a frame or message above the read limit.
var errTooBig = &frameError{code: 1009, reason: "frame too large"}

// frame is one frame from a lamp with its payload unmasked.
type frame struct {
	fin     bool
	opcode  byte
	payload []byte
}

// readFrame reads one client frame. limit bounds the payload; hdr is scratch
// space the caller keeps so reading allocates only the payload itself.
func readFrame(r io.Reader, hdr *[14]byte, limit int64) (frame, error) {
	if _, err := io.ReadFull(r, hdr[:2]); err != nil {
		return frame{}, err
	}
	b0, b1 := hdr[0], hdr[1]
	f := frame{fin: b0&0x80 != 0, opcode: b0 & 0x0f}
	if b0&0x70 != 0 {
		return frame{}, &frameError{1002, "reserved bits set"}
	}
	switch f.opcode {
	case opContinuation, opText, opBinary:
	case opClose, opPing, opPong:
		if !f.fin {
			return frame{}, &frameError{1002, "fragmented control frame"}
		}
	default:
		return frame{}, &frameError{1002, fmt.Sprintf("unknown opcode %d", f.opcode)}
	}
	if b1&0x80 == 0 {
		return frame{}, &frameError{1002, "client frame not masked"}
	}
	n := int64(b1 & 0x7f)
	ext := 0
	switch n {
	case 126:
		ext = 2
	case 127:
		ext = 8
	}
	if f.opcode >= opClose && n > 125 {
		return frame{}, &frameError{1002, "control frame payload over 125 bytes"}
	}
	if _, err := io.ReadFull(r, hdr[2:2+ext+4]); err != nil {
		return frame{}, unexpected(err)
	}
	switch ext {
	case 2:
		n = int64(binary.BigEndian.Uint16(hdr[2:4]))
	case 8:
		u := binary.BigEndian.Uint64(hdr[2:10])
		if u > 1<<62 {
			return frame{}, errTooBig
		}
		n = int64(u)
	}
	if n > limit {
		return frame{}, errTooBig
	}
	mask := hdr[2+ext : 2+ext+4]
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return frame{}, unexpected(err)
	}
	for i := range f.payload {
		f.payload[i] ^= mask[i&3]
	}
	return f, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
