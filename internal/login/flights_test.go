package login

import (
	"context"
	"testing"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/store"
)

// A panicking exchange must release everyone waiting on the code, with an
// error, and must not be remembered.
func TestCodeFlightPanicReleasesWaiters(t *testing.T) {
	var cf CodeFlights
	now := time.Now()
	started := make(chan struct{})
	release := make(chan struct{})
	go func() {
		_, _ = cf.do(context.Background(), "wxa", "boom", now, func(context.Context) (exchanged, error) {
			close(started)
			<-release
			panic("platform client bug")
		})
	}()
	<-started
	waiter := make(chan error, 1)
	go func() {
		_, err := cf.do(context.Background(), "wxa", "boom", now, func(context.Context) (exchanged, error) {
			return exchanged{code: &store.CodeRecord{OpenID: "o"}}, nil
		})
		waiter <- err
	}()
	time.Sleep(20 * time.Millisecond) // let the waiter join the flight
	close(release)
	select {
	case err := <-waiter:
		// Either it joined the panicked flight (an error) or it started a
		// new one after the failure was forgotten (success); it must not hang.
		_ = err
	case <-time.After(5 * time.Second):
		t.Fatal("a waiter hung after the exchange panicked")
	}
	if n := cf.Len(); n > 1 {
		t.Errorf("%d flights remembered after a panic", n)
	}
	// The failure is not remembered: the next post of the code exchanges
	// again.
	called := false
	if _, err := cf.do(context.Background(), "wxa", "boom", now, func(context.Context) (exchanged, error) {
		called = true
		return exchanged{code: &store.CodeRecord{OpenID: "o"}}, nil
	}); err != nil || !called {
		t.Errorf("after a panic: err %v, called %v", err, called)
	}
}
