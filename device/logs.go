package device

import (
	"slices"
	"sort"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"
)

// LogLine is one debug line a lamp sent ("d:<message>").
type LogLine struct {
	Seq     uint64    `json:"-"`
	Time    time.Time `json:"time"`
	Device  string    `json:"device"`
	Name    string    `json:"name"`
	Message string    `json:"message"`
	// Skipped, on a line sent live to open pages, counts the lines of this
	// lamp before it that were kept but not sent live (see liveRate).
	Skipped int `json:"skipped,omitempty"`
	// Node is the cluster node the lamp sent it to; empty on a server of
	// its own.
	Node string `json:"node,omitempty"`
	// Lamp is the lamp's id (API.md "Lamps"), which stays the same across
	// its reconnects as Device does not.
	Lamp string `json:"lamp,omitempty"`
}

// lineOverhead is what a stored line costs beyond its message: the struct
// and the slice slot. Device and Name share the lamp's strings.
const lineOverhead = 96

func (l LogLine) cost() int { return len(l.Message) + lineOverhead }

// Live lines: each lamp may send liveRate lines a second to open pages
// (bursts of liveBurst), all lamps together liveBytes bytes a second
// (bursts of liveBytesBurst); the rest are kept in the log but not pushed
// to every page, so lamps flooding debug lines cannot flood every phone.
const (
	liveRate       = 20
	liveBurst      = 50
	liveBytes      = 32 << 10
	liveBytesBurst = 128 << 10
)

// logBook keeps the newest lines of each lamp, bounded in lines and bytes
// per lamp and in bytes in total. Rings are keyed by lamp name when it has
// one, so a named lamp's log survives its reconnects; at most maxLamps
// rings are kept, and when the total is over its bound the quietest lamps'
// rings go first.
type logBook struct {
	perLamp      int
	perLampBytes int
	totalBytes   int
	maxLamps     int

	mu    sync.Mutex
	seq   uint64
	bytes int // of every ring
	rings map[string]*ring
	dirty bool // changed since the last snapshot
	live  *rate.Limiter
	now   func() time.Time // the live limiters' clock; tests set it
}

type ring struct {
	lines   []LogLine // oldest first, from head on
	head    int
	bytes   int
	last    uint64 // seq of the newest line
	live    *rate.Limiter
	skipped int // lines not sent live since the last one that was
}

func newLogBook(perLamp, perLampBytes, totalBytes, maxLamps int) *logBook {
	return &logBook{
		perLamp: perLamp, perLampBytes: min(perLampBytes, totalBytes), totalBytes: totalBytes, maxLamps: maxLamps,
		rings: make(map[string]*ring),
		live:  rate.NewLimiter(liveBytes, liveBytesBurst),
		now:   time.Now,
	}
}

func (r *ring) len() int { return len(r.lines) - r.head }

func (r *ring) dropOldest() int {
	c := r.lines[r.head].cost()
	r.lines[r.head] = LogLine{}
	r.head++
	r.bytes -= c
	if r.head > len(r.lines)/2 {
		r.lines = slices.Delete(r.lines, 0, r.head)
		r.head = 0
	}
	return c
}

// add stores line under key. It returns the line with its sequence number
// and whether it should be sent live; a live line's Skipped says how many
// before it were not.
func (b *logBook) add(key string, line LogLine) (LogLine, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if max := b.perLampBytes - lineOverhead; len(line.Message) > max {
		line.Message = truncateUTF8(line.Message, max)
	}
	b.seq++
	line.Seq = b.seq
	r := b.ring(key)
	b.push(r, line)
	b.dirty = true
	// The shared budget is only spent on lines the lamp's own allows.
	now := b.now()
	if !r.live.AllowN(now, 1) || !b.live.AllowN(now, line.cost()) {
		r.skipped++
		return line, false
	}
	line.Skipped, r.skipped = r.skipped, 0
	return line, true
}

// ring returns key's ring, making room for a new one; b.mu is held.
func (b *logBook) ring(key string) *ring {
	r := b.rings[key]
	if r == nil {
		if len(b.rings) >= b.maxLamps {
			b.evictQuietest(nil)
		}
		r = &ring{live: rate.NewLimiter(liveRate, liveBurst)}
		b.rings[key] = r
	}
	return r
}

// push appends line to r and enforces the bounds; b.mu is held.
func (b *logBook) push(r *ring, line LogLine) {
	r.last = line.Seq
	r.lines = append(r.lines, line)
	r.bytes += line.cost()
	b.bytes += line.cost()
	for r.len() > b.perLamp || r.bytes > b.perLampBytes {
		b.bytes -= r.dropOldest()
	}
	for b.bytes > b.totalBytes && len(b.rings) > 1 {
		b.evictQuietest(r)
	}
}

// evictQuietest drops the ring whose newest line is oldest, other than
// keep; b.mu is held.
func (b *logBook) evictQuietest(keep *ring) {
	var oldestKey string
	var oldest *ring
	for k, r := range b.rings {
		if r != keep && (oldest == nil || r.last < oldest.last) {
			oldestKey, oldest = k, r
		}
	}
	if oldest != nil {
		b.bytes -= oldest.bytes
		delete(b.rings, oldestKey)
	}
}

// query returns up to limit lines (no limit when 0), newest last, of the
// lamps match accepts (all lamps when match is nil).
func (b *logBook) query(match func(LogLine) bool, limit int) []LogLine {
	b.mu.Lock()
	var out []LogLine
	for _, r := range b.rings {
		for _, l := range r.lines[r.head:] {
			if match == nil || match(l) {
				out = append(out, l)
			}
		}
	}
	b.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	if out == nil {
		out = []LogLine{}
	}
	return out
}

// logFile is the debug log on disk: every ring with its lines, oldest
// first. It is rewritten whole, atomically, so a crash leaves the previous
// snapshot (see Gateway.saveLogsLoop).
type logFile struct {
	Lamps map[string][]LogLine `json:"lamps"`
}

// snapshot returns the log for saving when it changed since the last one.
func (b *logBook) snapshot() (logFile, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.dirty {
		return logFile{}, false
	}
	b.dirty = false
	f := logFile{Lamps: make(map[string][]LogLine, len(b.rings))}
	for k, r := range b.rings {
		f.Lamps[k] = slices.Clone(r.lines[r.head:])
	}
	return f, true
}

// markDirty makes the next snapshot happen, after a failed save.
func (b *logBook) markDirty() {
	b.mu.Lock()
	b.dirty = true
	b.mu.Unlock()
}

// load fills an empty book from a saved log, in time order, under the
// book's bounds (which may be smaller than when it was saved).
func (b *logBook) load(f logFile) {
	type keyed struct {
		key  string
		line LogLine
	}
	var all []keyed
	for k, lines := range f.Lamps {
		for _, l := range lines {
			all = append(all, keyed{k, l})
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].line.Time.Before(all[j].line.Time) })
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, kl := range all {
		l := kl.line
		if max := b.perLampBytes - lineOverhead; len(l.Message) > max {
			l.Message = truncateUTF8(l.Message, max)
		}
		b.seq++
		l.Seq, l.Skipped = b.seq, 0
		b.push(b.ring(kl.key), l)
	}
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
