package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"sync/atomic"
	"syscall"
)

// StorageKind says what is wrong with the disk behind a failed write, so
// that a person can be told what to fix.
type StorageKind string

// The kinds of storage failure; "" is none (or not one of the disk).
const (
	NoSpace    StorageKind = "no_space"   // ENOSPC, EDQUOT: the disk or quota is full
	ReadOnly   StorageKind = "read_only"  // EROFS: the file system is mounted read-only
	Permission StorageKind = "permission" // EACCES, EPERM: the server may not write there
	OtherIO    StorageKind = "other"      // EIO and other disk errors
)

// Kind classifies err; "" when err is nil or not a storage failure. Only
// errors of file operations count (*fs.PathError, *os.LinkError): a
// network error carries an errno too.
func Kind(err error) StorageKind {
	var (
		errno syscall.Errno
		pe    *fs.PathError
		le    *os.LinkError
	)
	if err == nil || !errors.As(err, &pe) && !errors.As(err, &le) || !errors.As(err, &errno) {
		return ""
	}
	switch errno {
	case syscall.ENOSPC, syscall.EDQUOT:
		return NoSpace
	case syscall.EROFS:
		return ReadOnly
	case syscall.EACCES, syscall.EPERM:
		return Permission
	}
	return OtherIO
}

// Kinds lists every kind, for metrics.
var Kinds = []StorageKind{NoSpace, ReadOnly, Permission, OtherIO}

var failures = map[StorageKind]*atomic.Uint64{
	NoSpace: new(atomic.Uint64), ReadOnly: new(atomic.Uint64), Permission: new(atomic.Uint64), OtherIO: new(atomic.Uint64),
}

// Note counts err if it is a storage failure. Write counts its own; stores
// that write files another way (firmware uploads) call Note for theirs.
func Note(err error) {
	if c := failures[Kind(err)]; c != nil {
		c.Add(1)
	}
}

// Failures is how many storage failures of kind were noted since start.
func Failures(kind StorageKind) uint64 {
	if c := failures[kind]; c != nil {
		return c.Load()
	}
	return 0
}

// fault, when set, fails Write before it touches the disk. Tests set it
// with SetFault to stand for a full or read-only disk: making the data
// directory read-only does not work for them (root ignores permissions),
// and a small file system of their own is not available. A function in
// front of the write is the least intrusive seam that covers every store.
var fault atomic.Pointer[func(path string) error]

// SetFault makes every Write of a path for which f returns an error fail
// with that error (wrap a syscall.Errno such as syscall.ENOSPC), until
// restore is called. For tests only; not safe for tests running in parallel.
func SetFault(f func(path string) error) (restore func()) {
	fault.Store(&f)
	return func() { fault.Store(nil) }
}
