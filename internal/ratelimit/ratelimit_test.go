package ratelimit

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)

func TestAllowsBurstThenRefusesWithRetryAfter(t *testing.T) {
	l := New(3, 3*time.Second, 0)
	for i := range 3 {
		if ok, _ := l.Allow("1.2.3.4", t0); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, retry := l.Allow("1.2.3.4", t0)
	if ok {
		t.Fatal("fourth request within the window allowed")
	}
	if retry != time.Second {
		t.Fatalf("retry after %v, want 1s (one request's share of the window)", retry)
	}
	if ok, _ := l.Allow("5.6.7.8", t0); !ok {
		t.Fatal("another client was refused: keys must not share an allowance")
	}
}

func TestRecoversAtTheConfiguredRate(t *testing.T) {
	l := New(2, 2*time.Second, 0)
	l.Allow("k", t0)
	l.Allow("k", t0)
	if ok, _ := l.Allow("k", t0.Add(999*time.Millisecond)); ok {
		t.Fatal("allowed before one request's share of the window came back")
	}
	if ok, _ := l.Allow("k", t0.Add(time.Second)); !ok {
		t.Fatal("refused after one request's share of the window came back")
	}
	// A long pause refills to the burst, not beyond.
	later := t0.Add(time.Hour)
	for i := range 2 {
		if ok, _ := l.Allow("k", later); !ok {
			t.Fatalf("request %d after a long pause refused", i+1)
		}
	}
	if ok, _ := l.Allow("k", later); ok {
		t.Fatal("a long pause gave more than the burst")
	}
}

func TestBlockBacksOffAKeyAndExpires(t *testing.T) {
	l := New(100, time.Minute, 0)
	if blocked, _ := l.Blocked("u:wx/openid", t0); blocked {
		t.Fatal("a key never blocked reports blocked")
	}
	l.Block("u:wx/openid", t0, time.Minute)
	blocked, left := l.Blocked("u:wx/openid", t0.Add(10*time.Second))
	if !blocked || left != 50*time.Second {
		t.Fatalf("Blocked = %v, %v; want true, 50s", blocked, left)
	}
	if ok, retry := l.Allow("u:wx/openid", t0.Add(10*time.Second)); ok || retry != 50*time.Second {
		t.Fatalf("Allow during a backoff = %v, %v; want false, 50s", ok, retry)
	}
	// A shorter block never shortens a longer one.
	l.Block("u:wx/openid", t0.Add(20*time.Second), time.Second)
	if blocked, _ := l.Blocked("u:wx/openid", t0.Add(30*time.Second)); !blocked {
		t.Fatal("a shorter Block cut a longer backoff short")
	}
	if ok, _ := l.Allow("u:wx/openid", t0.Add(time.Minute)); !ok {
		t.Fatal("still refused after the backoff ended")
	}
}

func TestSweepForgetsOnlyIdleKeys(t *testing.T) {
	l := New(2, 2*time.Second, 0)
	l.Allow("idle", t0)
	l.Allow("busy", t0.Add(1500*time.Millisecond))
	l.Block("blocked", t0, time.Hour)
	l.Sweep(t0.Add(2 * time.Second))
	if n := l.Len(); n != 2 {
		t.Fatalf("after the sweep %d keys remain, want 2 (busy, blocked)", n)
	}
	if blocked, _ := l.Blocked("blocked", t0.Add(2*time.Second)); !blocked {
		t.Fatal("the sweep forgot a backoff")
	}
}

func TestFullLimiterThrottlesNewKeysTogether(t *testing.T) {
	l := New(2, time.Minute, shardCount) // one key per shard
	for i := range 10 * shardCount {
		l.Allow(fmt.Sprintf("10.0.%d.%d", i/256, i%256), t0)
	}
	if n := l.Len(); n > shardCount {
		t.Fatalf("%d keys tracked, above the bound of %d", n, shardCount)
	}
	// Every key that found no room shares the overflow allowance, which
	// the flood has used up.
	refused := 0
	for i := range 100 {
		if ok, _ := l.Allow(fmt.Sprintf("192.168.%d.%d", i/256, i%256), t0); !ok {
			refused++
		}
	}
	if refused < 90 {
		t.Fatalf("only %d of 100 new clients refused once the limiter was full: a flood from many addresses escapes the limit", refused)
	}
}

func TestConcurrentUseKeepsCount(t *testing.T) {
	l := New(1000, time.Hour, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if ok, _ := l.Allow("shared", t0); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if allowed != 1000 {
		t.Fatalf("%d of 1600 concurrent requests allowed, want exactly the burst of 1000", allowed)
	}
}

func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.7":          "203.0.113.7",
		"::ffff:203.0.113.7":   "203.0.113.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"fe80::1%eth0":         "fe80::/64",
		"not an address":       "not an address",
		"2001:db8:1:3::1":      "2001:db8:1:3::/64",
	} {
		if got := ClientKey(in); got != want {
			t.Errorf("ClientKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkAllow(b *testing.B) {
	l := New(1<<30, time.Second, 0)
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("10.0.%d.%d", i/256, i%256)
	}
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.Allow(keys[i%len(keys)], now)
			i++
		}
	})
}

// BenchmarkAllowFloodWhenFull: a flood of never-seen addresses against a
// full limiter, the case where each new key looks for room.
func BenchmarkAllowFloodWhenFull(b *testing.B) {
	l := New(2, time.Minute, 1<<14)
	now := time.Now()
	for i := range 1 << 15 {
		l.Allow(fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255), now)
	}
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = fmt.Sprintf("172.16.%d.%d", i>>8, i&255)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l.Allow(keys[i%len(keys)], now)
	}
}
