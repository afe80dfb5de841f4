package store

import (
	"context"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/storagetest"
)

// The scale benchmarks of issue 14: what a node pays with many records in
// storage. They run on file storage in a temporary folder, or on Redis
// with WXAUTH_BENCH_STORAGE=redis (bench/storage.sh builds the Redis module
// in and starts a redis-server). Each generates its records first, the way
// the gateway writes them, outside the timing. Run with -benchtime 1x for
// those that measure one pass; see BENCHMARKS.md.

// benchNow is a fixed half past the hour, so that which buckets are over
// does not depend on when the benchmark runs.
var benchNow = time.Date(2026, 12, 1, 12, 30, 0, 0, time.UTC)

const benchAccessTTL = 2 * time.Hour

// fillRevocations writes n revocations made over the last access_ttl (as
// many logouts as that), each lasting access_ttl from when it was made.
func fillRevocations(b *testing.B, s *Store, n int) {
	b.Helper()
	step := benchAccessTTL / time.Duration(n)
	storagetest.Fill(b, n, 64, func(i int) error {
		made := benchNow.Add(-time.Duration(i) * step)
		id, _ := NewSessionID("wxbench", fmt.Sprintf("o%d", i))
		return s.SaveRevocation(context.Background(), &Revocation{SessionID: id, Until: made.Add(benchAccessTTL)}, made)
	})
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRevocationsFirstSync250k is how long a node takes to learn
// every current revocation when it starts, with 250k of them in storage
// (target: ≤ 2 s, the node ready).
func BenchmarkRevocationsFirstSync250k(b *testing.B) {
	storage, kind := storagetest.BenchStorage(b)
	s := NewStore(storage)
	fillRevocations(b, s, 250_000)
	b.Logf("storage %s: 250000 revocations written", kind)
	b.ResetTimer()
	for b.Loop() {
		r := NewRevocations()
		if err := r.Sync(context.Background(), s, benchNow); err != nil {
			b.Fatal(err)
		}
		if r.Len() != 250_000 {
			b.Fatalf("learned %d of 250000", r.Len())
		}
	}
}

// BenchmarkRevocationsSteadySync250k is a sync with nothing new, every
// revocation_sync on every node, with 250k revocations known (target:
// ≤ 5 ms of CPU). It reports CPU time per sync besides wall time. Every
// sync is the one 5 s after the newest revocation, so that the folders it
// lists again (those of the last 30 s) hold as many records as they do
// while 250k revocations accumulate over an access_ttl (35 a second).
func BenchmarkRevocationsSteadySync250k(b *testing.B) {
	storage, kind := storagetest.BenchStorage(b)
	s := NewStore(storage)
	fillRevocations(b, s, 250_000)
	r := NewRevocations()
	if err := r.Sync(context.Background(), s, benchNow); err != nil {
		b.Fatal(err)
	}
	b.Logf("storage %s: %d revocations known", kind, r.Len())
	now := benchNow.Add(5 * time.Second)
	b.ResetTimer()
	cpu := cpuTime(b)
	for b.Loop() {
		if err := r.Sync(context.Background(), s, now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N)/1e6, "cpu-ms/op")
}

// fillLogins writes n users who each logged in once with a session of
// life, their logins spread over the window before benchNow: the user
// record (filed for the sweep) and the session, as a login writes them.
func fillLogins(b *testing.B, s *Store, n int, window, life time.Duration) {
	b.Helper()
	step := window / time.Duration(n)
	storagetest.Fill(b, n, 64, func(i int) error {
		ctx := context.Background()
		when := benchNow.Add(-time.Duration(i) * step)
		openid := fmt.Sprintf("o%07d", i)
		u, err := s.UpdateUser(ctx, "wxbench", openid, func(u *User) error {
			u.SessionKey, u.SessionKeyUpdated = "k", when
			u.NoteLogin(when, life)
			return nil
		})
		if err != nil {
			return err
		}
		id, err := NewSessionID(u.AppID, u.OpenID)
		if err != nil {
			return err
		}
		return s.SaveSession(ctx, &Session{ID: id, AppID: u.AppID, OpenID: u.OpenID, Source: "wechat-miniprogram",
			Created: when, RefreshHash: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			RefreshExpires: when.Add(life), AccessExpires: when.Add(benchAccessTTL)})
	})
}

// BenchmarkSweepNothingExpired1M is the hourly sweep with 1M live
// sessions (of 1M users, logged in over the last 30 days) and nothing
// expired (target: ≤ 1 s).
func BenchmarkSweepNothingExpired1M(b *testing.B) {
	storage, kind := storagetest.BenchStorage(b)
	s := NewStore(storage)
	const life = 720 * time.Hour
	fillLogins(b, s, 1_000_000, 29*24*time.Hour, life)
	b.Logf("storage %s: 1000000 users with a live session", kind)
	policy := SweepPolicy{Interval: time.Hour, UserIdle: life}
	now := benchNow
	b.ResetTimer()
	for b.Loop() {
		now = now.Add(time.Hour) // a sweep an hour after the last, not skipped
		stats, err := s.Sweep(context.Background(), now, policy)
		if err != nil || stats.Skipped || stats.Sessions != 0 {
			b.Fatalf("sweep: %+v, %v", stats, err)
		}
	}
}

// BenchmarkSweepExpired100k is a sweep that removes 100k expired sessions
// and, since each was its user's last and they have been idle for
// refresh_ttl, their 100k users (target: ≤ 30 s on Redis).
func BenchmarkSweepExpired100k(b *testing.B) {
	const life = 720 * time.Hour
	for b.Loop() {
		b.StopTimer()
		storage, kind := storagetest.BenchStorage(b)
		s := NewStore(storage)
		// Logged in 31 days ago, over an hour: every session has expired.
		fillLogins(b, s, 100_000, time.Hour, life)
		b.Logf("storage %s: 100000 users with an expired session", kind)
		b.StartTimer()
		stats, err := s.Sweep(context.Background(), benchNow.Add(life+2*time.Hour), SweepPolicy{Interval: time.Hour, UserIdle: life})
		if err != nil || stats.Sessions != 100_000 || stats.Users != 100_000 {
			b.Fatalf("sweep: %+v, %v", stats, err)
		}
	}
}

// BenchmarkRevocationsMemory250k is the heap a node spends on knowing 250k
// revoked sessions (no storage: what Sync and Add keep).
func BenchmarkRevocationsMemory250k(b *testing.B) {
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		r := NewRevocations()
		for i := range 250_000 {
			id, _ := NewSessionID("wxbench", fmt.Sprintf("o%d", i))
			r.Add(id, benchNow.Add(time.Duration(i)*time.Millisecond))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/250_000, "heap-B/revocation")
		runtime.KeepAlive(r)
	}
}
