// Package ratelimit is the abuse limit of the login endpoints: a token
// bucket per key (a client IP, or a user the platform told us to slow
// down), held in memory with bounded size.
//
// It is node-local on purpose: a request must not wait on shared storage
// to learn whether it may be served. Several nodes each allow the limit, so
// a cluster of n nodes allows up to n times it.
package ratelimit

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"time"
)

// shardCount spreads the buckets over independent locks, so concurrent
// requests from different clients rarely wait on one another.
const shardCount = 64

// DefaultMaxKeys bounds the number of keys tracked. A bucket costs about
// 100 bytes with its key and map entry, so this is about 25 MB at most.
const DefaultMaxKeys = 1 << 18

// Limiter allows each key Requests per Window, in bursts of up to Requests.
// It is safe for concurrent use.
type Limiter struct {
	perToken time.Duration // the time one request's allowance takes to come back
	burst    float64
	seed     maphash.Seed
	shards   [shardCount]shard
	maxPer   int // keys per shard
	// overflow is the one bucket shared by every new key once the shards
	// are full: a flood from more addresses than can be tracked is
	// throttled as a whole instead of escaping the limit.
	overflow shard
}

type shard struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	// swept is when the shard was last swept. A full shard is swept again
	// for room at most once per request's share of the window (sooner no
	// bucket can have refilled by a whole request), so that a flood of new
	// addresses does not make every one of its requests scan the shard.
	swept time.Time
}

// bucket is one key's allowance.
type bucket struct {
	tokens float64   // requests allowed now, up to burst
	last   time.Time // when tokens was computed
	// until: a backoff set by Block; nothing is allowed before it.
	until time.Time
}

// New returns a limiter allowing requests per window for each key, with
// room for maxKeys keys (DefaultMaxKeys when maxKeys <= 0).
func New(requests int, window time.Duration, maxKeys int) *Limiter {
	if requests < 1 || window <= 0 {
		panic("ratelimit: requests and window must be positive")
	}
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	l := &Limiter{
		perToken: window / time.Duration(requests),
		burst:    float64(requests),
		seed:     maphash.MakeSeed(),
		maxPer:   max(1, maxKeys/shardCount),
	}
	for i := range l.shards {
		l.shards[i].buckets = make(map[string]*bucket)
	}
	l.overflow.buckets = make(map[string]*bucket, 1)
	return l
}

// Allow takes one request from key's allowance. When none is left it
// returns false and how long until one is.
func (l *Limiter) Allow(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	s, b := l.bucket(key, now, true)
	defer s.mu.Unlock()
	if now.Before(b.until) {
		return false, b.until.Sub(now)
	}
	l.refill(b, now)
	if b.tokens < 1 {
		return false, time.Duration((1 - b.tokens) * float64(l.perToken))
	}
	b.tokens--
	return true, 0
}

// Block refuses every request of key for d from now: the backoff after
// the platform itself said "too often" (errcode 45011).
func (l *Limiter) Block(key string, now time.Time, d time.Duration) {
	s, b := l.bucket(key, now, true)
	defer s.mu.Unlock()
	if until := now.Add(d); until.After(b.until) {
		b.until = until
	}
}

// Blocked reports whether key is in a backoff, and for how long still.
// Unlike Allow it takes nothing from the allowance.
func (l *Limiter) Blocked(key string, now time.Time) (bool, time.Duration) {
	s, b := l.bucket(key, now, false)
	if b == nil {
		return false, 0
	}
	defer s.mu.Unlock()
	if now.Before(b.until) {
		return true, b.until.Sub(now)
	}
	return false, 0
}

// bucket finds key's bucket and returns it with its shard locked; with
// create, a missing one is made (in the overflow bucket when the shard is
// full). Without create a missing one is (s, nil) with nothing locked.
func (l *Limiter) bucket(key string, now time.Time, create bool) (*shard, *bucket) {
	s := &l.shards[maphash.String(l.seed, key)%shardCount]
	s.mu.Lock()
	if b, ok := s.buckets[key]; ok {
		return s, b
	}
	if !create {
		s.mu.Unlock()
		return s, nil
	}
	if len(s.buckets) >= l.maxPer && now.Sub(s.swept) >= l.perToken {
		l.sweepShard(s, now)
	}
	if len(s.buckets) < l.maxPer {
		b := &bucket{tokens: l.burst, last: now}
		s.buckets[key] = b
		return s, b
	}
	s.mu.Unlock()
	o := &l.overflow
	o.mu.Lock()
	b, ok := o.buckets[""]
	if !ok {
		b = &bucket{tokens: l.burst, last: now}
		o.buckets[""] = b
	}
	return o, b
}

func (l *Limiter) refill(b *bucket, now time.Time) {
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(l.burst, b.tokens+float64(elapsed)/float64(l.perToken))
		b.last = now
	}
}

// Sweep forgets the keys that are back to a full allowance and not in a
// backoff: remembering them changes nothing. Call it about once a window.
func (l *Limiter) Sweep(now time.Time) {
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		l.sweepShard(s, now)
		s.mu.Unlock()
	}
}

func (l *Limiter) sweepShard(s *shard, now time.Time) {
	s.swept = now
	for key, b := range s.buckets {
		if now.Before(b.until) {
			continue
		}
		l.refill(b, now)
		if b.tokens >= l.burst {
			delete(s.buckets, key)
		}
	}
}

// Len is the number of keys tracked (the overflow bucket not counted).
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.buckets)
		s.mu.Unlock()
	}
	return n
}

// ClientKey is the key of a client address: the IP itself for IPv4, and
// its /64 network for IPv6, since one customer is routinely given a whole
// /64 and could otherwise take a fresh allowance per address. An address
// that does not parse is its own key.
func ClientKey(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	addr = addr.Unmap()
	if addr.Is4() {
		return addr.String()
	}
	prefix, _ := addr.WithZone("").Prefix(64)
	return prefix.String()
}
