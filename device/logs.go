package device

import (
	"sort"
	"sync"
	"time"
)

// LogLine is one debug line a lamp sent ("d:<message>").
type LogLine struct {
	Seq     uint64    `json:"-"`
	Time    time.Time `json:"time"`
	Device  string    `json:"device"`
	Name    string    `json:"name"`
	Message string    `json:"message"`
}

// logBook keeps the newest lines of each lamp in a bounded ring. Rings are
// keyed by lamp name when it has one, so a named lamp's log survives its
// reconnects; at most maxLamps rings are kept, the quietest dropped first.
type logBook struct {
	perLamp  int
	maxLamps int

	mu    sync.Mutex
	seq   uint64
	rings map[string]*ring
}

type ring struct {
	lines []LogLine // grows to perLamp, then wraps
	next  int
	last  uint64
}

func newLogBook(perLamp, maxLamps int) *logBook {
	return &logBook{perLamp: perLamp, maxLamps: maxLamps, rings: make(map[string]*ring)}
}

func (b *logBook) add(key string, line LogLine) LogLine {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	line.Seq = b.seq
	r := b.rings[key]
	if r == nil {
		if len(b.rings) >= b.maxLamps {
			b.evictOldest()
		}
		r = &ring{}
		b.rings[key] = r
	}
	r.last = line.Seq
	if len(r.lines) < b.perLamp {
		r.lines = append(r.lines, line)
	} else {
		r.lines[r.next] = line
		r.next = (r.next + 1) % b.perLamp
	}
	return line
}

func (b *logBook) evictOldest() {
	var oldestKey string
	var oldest uint64
	for k, r := range b.rings {
		if oldestKey == "" || r.last < oldest {
			oldestKey, oldest = k, r.last
		}
	}
	delete(b.rings, oldestKey)
}

// query returns up to limit lines, newest last, of the lamps match accepts
// (all lamps when match is nil).
func (b *logBook) query(match func(LogLine) bool, limit int) []LogLine {
	b.mu.Lock()
	var out []LogLine
	for _, r := range b.rings {
		for _, l := range r.lines {
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
