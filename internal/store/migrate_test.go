package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// oldLayout writes what a gateway of the layout before this one left in
// storage: a user with a profile, a live session and an expired one of
// theirs, a revocation and a web login state.
type oldLayout struct {
	live, expired string // session ids: 22 characters, no user tag
}

func writeOldLayout(t *testing.T, s *Store, now time.Time) oldLayout {
	t.Helper()
	ol := oldLayout{live: "LLLLLLLLLLLLLLLLLLLLLL", expired: "EEEEEEEEEEEEEEEEEEEEEE"}
	storeLegacy(t, s, legacyUserKey("wxa", "amy"), &User{AppID: "wxa", OpenID: "amy", UnionID: "u-amy",
		Profile: &Profile{Nickname: "Amy"}, SessionKey: "k-amy", SessionKeyUpdated: now.Add(-time.Hour)})
	storeLegacy(t, s, legacySessionKey(ol.live), &Session{ID: ol.live, AppID: "wxa", OpenID: "amy",
		RefreshHash: "h-live", RefreshExpires: now.Add(24 * time.Hour)})
	storeLegacy(t, s, legacySessionKey(ol.expired), &Session{ID: ol.expired, AppID: "wxa", OpenID: "amy",
		RefreshHash: "h-old", RefreshExpires: now.Add(-time.Hour)})
	storeLegacy(t, s, revokedDir+"/RRRRRRRRRRRRRRRRRRRRRR.json", &Revocation{SessionID: "RRRRRRRRRRRRRRRRRRRRRR", Until: now.Add(time.Hour)})
	storeLegacy(t, s, legacyShortKey(legacyWebStateName("st1")), &WebState{AppID: "wxweb", Next: "/", Expires: now.Add(time.Minute)})
	return ol
}

// An upgrade loses nothing: before the move every record of the older
// layout is read where it is; the move puts users and sessions in their
// folders, and every session still refreshes by its old id.
func TestMigrateMovesOldRecordsAndLosesNone(t *testing.T) {
	ctx := context.Background()
	now := sweepNow
	s, _ := newTestStore(t)
	ol := writeOldLayout(t, s, now)

	// Before the move.
	if u, err := s.LoadUser(ctx, "wxa", "amy"); err != nil || u.Profile == nil || u.SessionKey != "k-amy" {
		t.Fatalf("old user before the move: %v, %v", u, err)
	}
	if sess, err := s.LoadSession(ctx, ol.live); err != nil || sess.RefreshHash != "h-live" {
		t.Fatalf("old session before the move: %+v, %v", sess, err)
	}
	if all, err := s.UserSessions(ctx, "wxa", "amy"); err != nil || len(all) != 2 {
		t.Fatalf("old sessions of the user before the move: %d, %v", len(all), err)
	}
	rev := NewRevocations()
	if err := rev.Sync(ctx, s, now); err != nil || !rev.Revoked("RRRRRRRRRRRRRRRRRRRRRR") {
		t.Fatalf("old revocation not learned: %v", err)
	}
	if ws, err := s.TakeWebState(ctx, "st1", 10*time.Minute, now); err != nil || ws.AppID != "wxweb" {
		t.Fatalf("old web state: %+v, %v", ws, err)
	}

	// Two nodes start at once: one moves, the other finds it done.
	other := NewStore(s.storage.(markedStorage).Storage)
	var wg sync.WaitGroup
	stats := make([]MigrateStats, 2)
	errs := make([]error, 2)
	for i, st := range []*Store{s, other} {
		wg.Go(func() { stats[i], errs[i] = st.Migrate(ctx, now) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := stats[0].Users + stats[1].Users; got != 1 {
		t.Errorf("users moved: %d, want 1", got)
	}
	if got := stats[0].Sessions + stats[1].Sessions; got != 2 {
		t.Errorf("sessions moved: %d, want 2", got)
	}

	// After: in their folders, the old keys gone or pointing there.
	if _, err := s.storage.Load(ctx, legacyUserKey("wxa", "amy")); err == nil {
		t.Error("the old user record is still there")
	}
	u, err := s.LoadUser(ctx, "wxa", "amy")
	if err != nil || u.Profile == nil || u.Profile.Nickname != "Amy" || u.SessionKey != "k-amy" || u.UnionID != "u-amy" {
		t.Fatalf("moved user: %v %+v, %v", u, u, err)
	}
	if _, err := s.storage.Load(ctx, sessionKey(ol.live, "wxa", "amy")); err != nil {
		t.Errorf("the live session is not in its user's folder: %v", err)
	}
	sess, err := s.LoadSession(ctx, ol.live)
	if err != nil || sess.RefreshHash != "h-live" {
		t.Fatalf("moved session by its old id: %+v, %v", sess, err)
	}
	sess.Spend("h-next", now.Add(48*time.Hour), SpentRefresh{}, now)
	if err := s.SaveSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	if again, err := other.LoadSession(ctx, ol.live); err != nil || again.RefreshHash != "h-next" {
		t.Errorf("a refresh after the move is not seen by another node: %+v, %v", again, err)
	}
	all, err := s.UserSessions(ctx, "wxa", "amy")
	if err != nil || len(all) != 2 {
		t.Errorf("the user's sessions after the move: %d, %v", len(all), err)
	}
	if !s.migrated(ctx) || !other.migrated(ctx) {
		t.Error("layout.json does not say the move is done")
	}
	if again, err := s.Migrate(ctx, now); err != nil || again != (MigrateStats{}) {
		t.Errorf("a second move: %+v, %v; want nothing to do", again, err)
	}

	// The user was filed for the sweep: the expired session goes with the
	// pointer at its old key, the live one stays.
	swept, err := s.Sweep(ctx, now.Add(2*time.Hour), SweepPolicy{Interval: time.Hour, UserIdle: 24 * time.Hour})
	if err != nil || swept.Sessions != 1 {
		t.Fatalf("sweep after the move: %+v, %v; want the expired session removed", swept, err)
	}
	if _, err := s.LoadSession(ctx, ol.expired); !errors.Is(err, ErrNotFound) {
		t.Errorf("the expired session: %v, want it gone", err)
	}
	if _, err := s.storage.Load(ctx, legacySessionKey(ol.expired)); err == nil {
		t.Error("the expired session's pointer was left behind")
	}
	if _, err := s.LoadSession(ctx, ol.live); err != nil {
		t.Errorf("the live session: %v", err)
	}
}

// A session of the older layout that refreshes before the move is moved
// by that refresh, under the session's lock, with nothing lost.
func TestOldSessionMovesOnItsFirstSave(t *testing.T) {
	ctx := context.Background()
	now := sweepNow
	s, _ := newTestStore(t)
	ol := writeOldLayout(t, s, now)
	sess, err := s.LoadSession(ctx, ol.live)
	if err != nil {
		t.Fatal(err)
	}
	sess.Spend("h-next", now.Add(48*time.Hour), SpentRefresh{}, now)
	if err := s.SaveSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	again, err := NewStore(s.storage.(markedStorage).Storage).LoadSession(ctx, ol.live)
	if err != nil || again.RefreshHash != "h-next" || again.FindSpent("h-live") == nil {
		t.Fatalf("after its first save: %+v, %v", again, err)
	}
	stats, err := s.Migrate(ctx, now)
	if err != nil || stats.Sessions != 1 {
		t.Errorf("the move: %+v, %v; want only the one not moved yet", stats, err)
	}
}

// A storage that fails part-way through the move leaves every record
// readable, and the move is done by the next attempt.
func TestMigrateResumesAfterAFailure(t *testing.T) {
	ctx := context.Background()
	now := sweepNow
	dir := t.TempDir()
	flaky := &failAfter{Storage: &certmagic.FileStorage{Path: dir}, stores: 2}
	s := NewStore(flaky)
	ol := writeOldLayout(t, NewStore(flaky.Storage), now)
	if _, err := s.Migrate(ctx, now); err == nil {
		t.Fatal("the move succeeded on a failing storage")
	}
	fresh := NewStore(&certmagic.FileStorage{Path: dir})
	for _, id := range []string{ol.live, ol.expired} {
		if _, err := fresh.LoadSession(ctx, id); err != nil {
			t.Errorf("session %s after a failed move: %v", id, err)
		}
	}
	if u, err := fresh.LoadUser(ctx, "wxa", "amy"); err != nil || u.SessionKey != "k-amy" {
		t.Errorf("user after a failed move: %v, %v", u, err)
	}
	if _, err := fresh.Migrate(ctx, now); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{ol.live, ol.expired} {
		if _, err := fresh.LoadSession(ctx, id); err != nil {
			t.Errorf("session %s after the move: %v", id, err)
		}
	}
}

// failAfter fails every Store after the first few.
type failAfter struct {
	certmagic.Storage
	mu     sync.Mutex
	stores int
}

func (f *failAfter) Store(ctx context.Context, key string, value []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stores == 0 {
		return errDiskFull
	}
	f.stores--
	return f.Storage.Store(ctx, key, value)
}
