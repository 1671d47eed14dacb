package cacheclient

import (
	"sync"
	"time"
)

// nearMax bounds the values kept per client, whatever names a function reads.
const nearMax = 1000

type nearKey struct{ route, name string }

// raw is an answer's value as the extension sent it: read methods decode it anew on every read, so that what
// a caller gets is its own (changing a returned map or slice never changes the next read).
type raw struct {
	text   string
	binary bool // not text/*: a binary secret's bytes, or an item's JSON
	// jsonValue: an offline value given as a JSON value other than a string: its JSON text, never base64
	jsonValue bool
}

type nearEntry struct {
	expires time.Time // carries Go's monotonic clock reading: a change of the wall clock does not matter
	value   raw
	seq     uint64 // when it was kept: the oldest goes first when the cache is full
}

// nearCache keeps values the extension answered with Cache-Control max-age=N, N > 0, for N seconds from the
// answer's arrival. generation counts drops, so that an answer in flight during a refresh is not kept after it.
type nearCache struct {
	mu         sync.RWMutex
	entries    map[nearKey]nearEntry
	generation uint64
	seq        uint64
}

func newNearCache() *nearCache { return &nearCache{entries: make(map[nearKey]nearEntry)} }

func (n *nearCache) get(key nearKey, now time.Time) (raw, bool) {
	n.mu.RLock()
	entry, ok := n.entries[key]
	n.mu.RUnlock()
	if !ok || !now.Before(entry.expires) {
		return raw{}, false
	}
	return entry.value, true
}

func (n *nearCache) currentGeneration() uint64 {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.generation
}

// keep stores value until expires, unless a drop happened since generation was read (the answer may predate a
// refresh). When full, expired entries go first, then the oldest kept.
func (n *nearCache) keep(key nearKey, value raw, now, expires time.Time, generation uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if generation != n.generation {
		return
	}
	if _, present := n.entries[key]; !present && len(n.entries) >= nearMax {
		for k, e := range n.entries {
			if !now.Before(e.expires) {
				delete(n.entries, k)
			}
		}
		if len(n.entries) >= nearMax {
			var oldest nearKey
			first := true
			var oldestSeq uint64
			for k, e := range n.entries {
				if first || e.seq < oldestSeq {
					oldest, oldestSeq, first = k, e.seq, false
				}
			}
			delete(n.entries, oldest)
		}
	}
	n.seq++
	n.entries[key] = nearEntry{expires: expires, value: value, seq: n.seq}
}

// forget drops name in the routes given (every route when none), or everything when all is set.
func (n *nearCache) forget(name string, routes []string, all bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.generation++
	if all {
		clear(n.entries)
		return
	}
	for _, route := range routes {
		delete(n.entries, nearKey{route, name})
	}
}

func (n *nearCache) len() int {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return len(n.entries)
}
