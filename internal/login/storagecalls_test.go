package login

import (
	"context"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/wxauth/caddy-wxauth/internal/storagetest"
	"github.com/wxauth/caddy-wxauth/internal/store"
)

// A login's cost on a network storage is its round trips: it claims the
// code (a lock and its release), reads the code record and the user, and
// writes the user, the code record and the session, once each, the writes
// at once. Nothing it wrote is read back. A user's first login also files
// them for the sweep; later ones within refresh_ttl do not. (In the first
// minutes of an hour the code record is looked for in the hour before too:
// one load more.)
func TestLoginStorageCalls(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	clock.Advance(30 * time.Minute)
	counting := storagetest.NewCounting(&certmagic.FileStorage{Path: t.TempDir()})
	s := newService(t, t.TempDir(), &fakeExchanger{openID: "o-amy"}, clock)
	s.Store = store.NewStore(counting)
	// The layout is current (as after a node's start): no look at the
	// layout before.
	if _, err := s.Store.Migrate(ctx, clock.Now()); err != nil {
		t.Fatal(err)
	}

	for i, want := range []struct {
		name        string
		data, locks int64
	}{
		{"first login", 6, 2},
		{"second login", 5, 2},
		{"third login", 5, 2},
	} {
		counting.Reset()
		if _, err := s.Login(ctx, testApp, "code-"+string(rune('A'+i))); err != nil {
			t.Fatal(err)
		}
		c := counting.Calls()
		if c.Data() > want.data || c.Lock+c.Unlock != want.locks {
			t.Errorf("%s: %d data calls and %d lock calls (%+v), want at most %d and %d", want.name, c.Data(), c.Lock+c.Unlock, c, want.data, want.locks)
		}
		if c.Load > 2 {
			t.Errorf("%s: %d loads, want the code record and the user only: %v", want.name, c.Load, counting.Loaded(""))
		}
		clock.Advance(time.Minute)
	}
}
