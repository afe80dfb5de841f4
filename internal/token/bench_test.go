package token

import (
	"testing"
	"time"
)

func benchmarkVerify(b *testing.B, c *Codec) {
	token, _, err := c.Issue(testIdentity(), testNow, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.Verify(token, testNow); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyEd25519(b *testing.B) {
	benchmarkVerify(b, NewEd25519Codec(testEd25519Key(b)))
}

func BenchmarkVerifyHS256(b *testing.B) {
	benchmarkVerify(b, testHS256Codec(b, testSecret('k')))
}

func BenchmarkIssueEd25519(b *testing.B) {
	c := NewEd25519Codec(testEd25519Key(b))
	id := testIdentity()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.Issue(id, testNow, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCacheGet(b *testing.B) {
	c := newTestCache(b)
	token, _, err := NewEd25519Codec(testEd25519Key(b)).Issue(testIdentity(), time.Now(), time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	c.Set(token, testIdentity(), time.Now().Add(time.Hour), int64(len(token))+256)
	c.Wait()
	now := time.Now()
	if _, ok := c.Get(token, now); !ok {
		b.Fatal("entry not cached")
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Get(token, now); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkCacheGetParallel is the gate's real pattern: many request
// goroutines reading the same hot tokens.
func BenchmarkCacheGetParallel(b *testing.B) {
	c := newTestCache(b)
	token, _, err := NewEd25519Codec(testEd25519Key(b)).Issue(testIdentity(), time.Now(), time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	c.Set(token, testIdentity(), time.Now().Add(time.Hour), int64(len(token))+256)
	c.Wait()
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := c.Get(token, now); !ok {
				b.Error("miss")
				return
			}
		}
	})
}
