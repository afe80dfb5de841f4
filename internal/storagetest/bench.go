package storagetest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
)

// BenchStorageEnv picks the storage of the scale benchmarks: "file" (the
// default, a temporary folder) or "redis" (the Redis storage module at
// $WXAUTH_REDIS_ADDR, which must be linked into the test binary:
// bench/storage.sh does that).
const BenchStorageEnv = "WXAUTH_BENCH_STORAGE"

// redisModule is caddy-storage-redis's module ID.
const redisModule = "caddy.storage.redis"

// BenchStorage is the storage a scale benchmark runs on, empty, and its
// name for the report.
func BenchStorage(tb testing.TB) (certmagic.Storage, string) {
	tb.Helper()
	switch kind := os.Getenv(BenchStorageEnv); kind {
	case "", "file":
		return &certmagic.FileStorage{Path: tb.TempDir()}, "file"
	case "redis":
		addr := os.Getenv("WXAUTH_REDIS_ADDR")
		if addr == "" {
			tb.Fatalf("%s=redis needs WXAUTH_REDIS_ADDR (host:port of a redis-server for benchmarks only)", BenchStorageEnv)
		}
		if _, err := caddy.GetModule(redisModule); err != nil {
			tb.Fatalf("%s=redis: the Redis storage module is not linked into this test binary; run bench/storage.sh, which builds it in", BenchStorageEnv)
		}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		tb.Cleanup(cancel) // the module's Cleanup closes its client
		cfg, _ := json.Marshal(map[string]any{
			"address":    []string{addr},
			"key_prefix": fmt.Sprintf("wxauth-bench-%d", time.Now().UnixNano()),
		})
		mod, err := ctx.LoadModuleByID(redisModule, cfg)
		if err != nil {
			tb.Fatalf("loading %s: %v", redisModule, err)
		}
		s, err := mod.(caddy.StorageConverter).CertMagicStorage()
		if err != nil {
			tb.Fatal(err)
		}
		return s, "redis"
	default:
		tb.Fatalf("%s=%q: want file or redis", BenchStorageEnv, kind)
		return nil, ""
	}
}

// Fill calls make(i) for i in [0, n) on workers goroutines, for the
// records of a benchmark, and fails tb on the first error.
func Fill(tb testing.TB, n, workers int, make func(i int) error) {
	tb.Helper()
	var (
		next   atomic.Int64
		wg     sync.WaitGroup
		failed atomic.Value
	)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || failed.Load() != nil {
					return
				}
				if err := make(i); err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		tb.Fatal(err)
	}
}
