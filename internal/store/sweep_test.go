package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

func newSweepStore(t *testing.T, dir string) *Store {
	t.Helper()
	return NewStore(&certmagic.FileStorage{Path: dir})
}

func TestSweepRemovesExpiredAndKeepsLive(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	s := newSweepStore(t, t.TempDir())

	for id, expires := range map[string]time.Time{
		"expired-long-ago":  now.Add(-30 * 24 * time.Hour),
		"expired-just-now":  now,
		"live":              now.Add(time.Second),
		"live-and-revoked":  now.Add(time.Hour),
		"expired-revoked-x": now.Add(-time.Minute),
	} {
		sess := &Session{ID: id, AppID: "wxa", OpenID: "o1", RefreshExpires: expires, Revoked: id == "live-and-revoked"}
		if err := s.SaveSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SaveCode(ctx, "old-code", &CodeRecord{AppID: "wxa", OpenID: "o1", Expires: now.Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCode(ctx, "fresh-code", &CodeRecord{AppID: "wxa", OpenID: "o1", Expires: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	for id, until := range map[string]time.Time{"rev-old": now.Add(-time.Second), "rev-live": now.Add(time.Hour)} {
		if err := s.SaveRevocation(ctx, &Revocation{SessionID: id, Until: until}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SaveUser(ctx, &User{AppID: "wxa", OpenID: "o1", SessionKey: "k"}); err != nil {
		t.Fatal(err)
	}

	stats, err := s.Sweep(ctx, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Sessions != 3 || stats.Kept != 2 || stats.Codes != 1 || stats.Revocations != 1 || stats.Skipped {
		t.Errorf("stats = %+v", stats)
	}
	for id, want := range map[string]bool{"expired-long-ago": false, "expired-just-now": false, "expired-revoked-x": false, "live": true, "live-and-revoked": true} {
		_, err := s.LoadSession(ctx, id)
		if got := err == nil; got != want {
			t.Errorf("session %s present = %v, want %v (err %v)", id, got, want, err)
		}
	}
	if _, err := s.LoadCode(ctx, "wxa", "fresh-code", now); err != nil {
		t.Errorf("fresh code record swept: %v", err)
	}
	if _, err := s.LoadUser(ctx, "wxa", "o1"); err != nil {
		t.Errorf("the sweep removed a user: %v", err)
	}
	rev := NewRevocations(s)
	if err := rev.Sync(ctx, now); err != nil {
		t.Fatal(err)
	}
	if !rev.Revoked("rev-live") || rev.Revoked("rev-old") {
		t.Errorf("revocations after sweep: live %v old %v", rev.Revoked("rev-live"), rev.Revoked("rev-old"))
	}
}

func TestSweepRunsOncePerIntervalAcrossNodes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	now := time.Now()
	a, b := newSweepStore(t, dir), newSweepStore(t, dir)

	var wg sync.WaitGroup
	results := make([]SweepStats, 2)
	errs := make([]error, 2)
	for i, s := range []*Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = s.Sweep(ctx, now, time.Hour)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if results[0].Skipped == results[1].Skipped {
		t.Errorf("both nodes swept, or neither did: %+v", results)
	}
	// An interval later, it runs again.
	stats, err := a.Sweep(ctx, now.Add(time.Hour), time.Hour)
	if err != nil || stats.Skipped {
		t.Errorf("the next interval's sweep was skipped: %+v %v", stats, err)
	}
}

func TestSweepLeavesCorruptRecordsAndSaysSo(t *testing.T) {
	ctx := context.Background()
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	s := NewStore(storage)
	if err := storage.Store(ctx, sessionKey("broken"), []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	_, err := s.Sweep(ctx, time.Now(), time.Hour)
	if err == nil {
		t.Fatal("a corrupt record went unreported")
	}
	if !storage.Exists(ctx, sessionKey("broken")) {
		t.Error("the sweep deleted a record it could not read")
	}
}

func TestRevocationsAddSyncAndExpire(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	now := time.Now()
	nodeA := NewRevocations(newSweepStore(t, dir))
	nodeB := NewRevocations(newSweepStore(t, dir))

	// Node A revokes: it knows at once; B knows after its next sync.
	nodeA.Add("s1", now.Add(time.Minute))
	if err := nodeA.store.SaveRevocation(ctx, &Revocation{SessionID: "s1", Until: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if !nodeA.Revoked("s1") || nodeB.Revoked("s1") {
		t.Fatal("revocation visible too early or not at all")
	}
	if err := nodeB.Sync(ctx, now); err != nil {
		t.Fatal(err)
	}
	if !nodeB.Revoked("s1") || nodeB.Revoked("s2") {
		t.Error("sync did not learn s1, or invented s2")
	}
	// After Until every access token of the session has expired: forgotten.
	if err := nodeB.Sync(ctx, now.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if nodeB.Revoked("s1") || nodeB.Len() != 0 {
		t.Error("an expired revocation is still remembered")
	}
	// A local revocation not (yet) in storage survives a sync.
	nodeB.Add("local", now.Add(time.Minute))
	if err := nodeB.Sync(ctx, now); err != nil {
		t.Fatal(err)
	}
	if !nodeB.Revoked("local") {
		t.Error("a sync dropped a local revocation")
	}
}

func TestSpendKeepsABoundedHistory(t *testing.T) {
	now := time.Now()
	s := &Session{RefreshHash: "h0", SpentHashes: []string{"legacy"}}
	for i := 1; i <= MaxSpentHashes+5; i++ {
		s.Spend("h"+string(rune('a'+i)), now, SpentRefresh{}, now)
	}
	if len(s.Spent) != MaxSpentHashes || len(s.SpentHashes) != 0 {
		t.Errorf("kept %d spent hashes (%d legacy), want %d", len(s.Spent), len(s.SpentHashes), MaxSpentHashes)
	}
	if s.Spent[len(s.Spent)-1].Hash == s.RefreshHash || s.FindSpent(s.RefreshHash) != nil {
		t.Error("the current hash is listed as spent")
	}
}

// A record written before the refresh grace still knows its spent tokens.
func TestSpendReadsLegacySpentHashes(t *testing.T) {
	now := time.Now()
	s := &Session{RefreshHash: "h1", SpentHashes: []string{"h0"}}
	if sp := s.FindSpent("h0"); sp == nil || sp.Successor != nil {
		t.Fatalf("FindSpent(legacy) = %+v", sp)
	}
	s.Spend("h2", now, SpentRefresh{GraceUntil: now.Add(time.Minute), Successor: []byte("sealed")}, now)
	if s.FindSpent("h0") == nil || s.FindSpent("h1") == nil || s.FindSpent("h1").Successor == nil {
		t.Errorf("spent after a rotation: %+v", s.Spent)
	}
	// Once the grace is over, the sealed successor is not kept.
	s.Spend("h3", now.Add(2*time.Minute), SpentRefresh{}, now.Add(2*time.Minute))
	if s.FindSpent("h1").Successor != nil {
		t.Error("a sealed successor outlived its grace")
	}
}

func TestRevocationUntil(t *testing.T) {
	now := time.Now()
	s := &Session{RefreshExpires: now.Add(30 * 24 * time.Hour)}
	s.IssuedAccess(now.Add(2 * time.Hour))
	s.IssuedAccess(now.Add(time.Hour)) // an older token: no change
	if got := s.RevocationUntil(now, 3*time.Second); !got.Equal(now.Add(2 * time.Hour)) {
		t.Errorf("RevocationUntil = %v, want the newest access token's expiry", got)
	}
	legacy := &Session{RefreshExpires: now.Add(time.Hour)}
	if got := legacy.RevocationUntil(now, 3*time.Second); !got.Equal(now.Add(time.Hour)) {
		t.Errorf("legacy RevocationUntil = %v, want the refresh expiry", got)
	}
	if got := legacy.RevocationUntil(now, 2*time.Hour); !got.Equal(now.Add(2 * time.Hour)) {
		t.Errorf("legacy RevocationUntil = %v, want now + the fallback", got)
	}
}

// A crash can leave file storage's temporary files beside the records; the
// sweep skips them instead of calling them corrupt records every time.
func TestSweepSkipsWhatIsNotARecord(t *testing.T) {
	ctx := context.Background()
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	s := NewStore(storage)
	id, _ := NewSessionID("wxa", "o1")
	if err := s.SaveSession(ctx, &Session{ID: id, AppID: "wxa", OpenID: "o1", RefreshExpires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for _, leftover := range []string{sessionsDir + "/1234567890", userSessionsDir(id[:userTagLength]) + "/987654321", codesDir + "/55555", revokedDir + "/4444"} {
		if err := storage.Store(ctx, leftover, []byte("half a rec")); err != nil {
			t.Fatal(err)
		}
	}
	stats, err := s.Sweep(ctx, time.Now(), time.Hour)
	if err != nil {
		t.Fatalf("the sweep reported leftovers as records: %v", err)
	}
	if stats.Kept != 1 {
		t.Errorf("stats = %+v, want the one live session kept", stats)
	}
	if err := NewRevocations(s).Sync(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
}
