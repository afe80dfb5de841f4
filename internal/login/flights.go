package login

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"
)

// CodeFlights remembers, per (app, code), the one exchange with the
// platform: everyone who posts the same code while it is in flight waits
// for it, and after it succeeds later posts reuse its answer until the
// code's lifetime ends. The zero value is ready to use.
type CodeFlights struct {
	mu      sync.Mutex
	flights map[[32]byte]*codeFlight
	swept   time.Time
}

type codeFlight struct {
	done    chan struct{}
	expires time.Time
	result  exchanged // set on success
	err     error     // set on failure
}

// Len is the number of codes remembered (in flight or recently exchanged).
func (cf *CodeFlights) Len() int {
	cf.mu.Lock()
	defer cf.mu.Unlock()
	return len(cf.flights)
}

// do runs exchange once per (appid, code) within the code's lifetime.
func (cf *CodeFlights) do(ctx context.Context, appid, code string, now time.Time, exchange func(context.Context) (exchanged, error)) (exchanged, error) {
	// Keyed by a hash: the map never holds a usable code.
	key := sha256.Sum256([]byte(appid + "\x00" + code))

	cf.mu.Lock()
	cf.sweepLocked(now)
	f, ok := cf.flights[key]
	if ok && now.Before(f.expires) {
		cf.mu.Unlock()
		select {
		case <-f.done:
			return f.result, f.err
		case <-ctx.Done():
			return exchanged{}, ctx.Err()
		}
	}
	f = &codeFlight{done: make(chan struct{}), expires: now.Add(CodeLifetime)}
	if cf.flights == nil {
		cf.flights = make(map[[32]byte]*codeFlight)
	}
	cf.flights[key] = f
	cf.mu.Unlock()

	// The exchange belongs to everyone waiting on it, not only to the
	// request that started it: a client that hangs up must not fail the
	// others. The platform client's own timeout still bounds it.
	func() {
		// A panic must not leave the waiters waiting for the code's
		// lifetime: it becomes this flight's error.
		defer func() {
			if p := recover(); p != nil {
				f.result, f.err = exchanged{}, fmt.Errorf("the code exchange failed unexpectedly: %v", p)
			}
		}()
		f.result, f.err = exchange(context.WithoutCancel(ctx))
	}()
	if f.err != nil {
		// Only successes are remembered: after a failure (the platform was
		// busy, say) the next post of the code asks again.
		cf.mu.Lock()
		if cf.flights[key] == f {
			delete(cf.flights, key)
		}
		cf.mu.Unlock()
	}
	close(f.done)
	return f.result, f.err
}

// sweepLocked drops finished flights whose code has expired, at most once a
// minute, so the map stays as small as the codes of the last five minutes.
func (cf *CodeFlights) sweepLocked(now time.Time) {
	if now.Sub(cf.swept) < time.Minute {
		return
	}
	cf.swept = now
	for k, f := range cf.flights {
		if !now.Before(f.expires) {
			delete(cf.flights, k)
		}
	}
}
