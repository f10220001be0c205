package server

import (
	"log/slog"

	"golang.org/x/sys/unix"
)

// connectionLimit derives the lamp connection cap from the open-file limit.
// Go raises the soft limit to the hard one at start; we keep a reserve of
// descriptors for the web port, files and the firmware downloads, so that at
// the cap new lamps get a clear 503 instead of the server failing to open
// its own state file.
func connectionLimit(log *slog.Logger) int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	const reserve = 200
	limit := int(rl.Cur) - reserve
	if limit < 16 {
		limit = 16
	}
	log.Debug("lamp connection cap from the open-file limit", "open_files", rl.Cur, "max_connections", limit)
	return limit
}
