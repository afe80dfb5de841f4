package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/wxauth/caddy-wxauth/internal/storagetest"
)

func newSweepStore(t *testing.T, dir string) *Store {
	t.Helper()
	return NewStore(&certmagic.FileStorage{Path: dir})
}

// sweepNow is on the hour, so that tests say which hours are over.
var sweepNow = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// loginAt stores a user who logged in at when with a session of life, the
// way a login does, and returns the session.
func loginAt(t *testing.T, s *Store, appid, openid string, when time.Time, life time.Duration) *Session {
	t.Helper()
	ctx := context.Background()
	u, err := s.UpdateUser(ctx, appid, openid, func(u *User) error {
		u.SessionKeyUpdated = when
		u.NoteLogin(when, life)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	id, err := NewSessionID(appid, openid)
	if err != nil {
		t.Fatal(err)
	}
	sess := &Session{ID: id, AppID: u.AppID, OpenID: u.OpenID, Created: when, RefreshExpires: when.Add(life)}
	if err := s.SaveSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	return sess
}

func TestSweepRemovesExpiredAndKeepsLive(t *testing.T) {
	ctx := context.Background()
	now := sweepNow
	s := newSweepStore(t, t.TempDir())
	const life = 24 * time.Hour
	policy := SweepPolicy{Interval: time.Hour, UserIdle: life}

	// Amy logged in twice, 26h and 3h ago: her first session has expired,
	// her second has not.
	amyOld := loginAt(t, s, "wxa", "amy", now.Add(-26*time.Hour), life)
	amyNew := loginAt(t, s, "wxa", "amy", now.Add(-3*time.Hour), life)
	// Bob logged in once, 26h ago: he goes, with his session.
	bob := loginAt(t, s, "wxa", "bob", now.Add(-26*time.Hour), life)
	// Cy logged in 2h ago: nothing of his is looked at yet.
	cy := loginAt(t, s, "wxa", "cy", now.Add(-2*time.Hour), life)

	if err := s.SaveCode(ctx, "old-code", &CodeRecord{AppID: "wxa", OpenID: "amy", Expires: now.Add(-115 * time.Minute)}, now.Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCode(ctx, "fresh-code", &CodeRecord{AppID: "wxa", OpenID: "amy", Expires: now.Add(5 * time.Minute)}, now); err != nil {
		t.Fatal(err)
	}
	for id, made := range map[string]time.Time{"rev-old": now.Add(-2 * time.Hour), "rev-live": now.Add(-10 * time.Minute)} {
		if err := s.SaveRevocation(ctx, &Revocation{SessionID: id, Until: made.Add(time.Hour)}, made); err != nil {
			t.Fatal(err)
		}
	}

	stats, err := s.Sweep(ctx, now, policy)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Sessions != 2 || stats.Users != 1 || stats.Codes != 1 || stats.Revocations != 1 || stats.Skipped {
		t.Errorf("stats = %+v, want 2 sessions, 1 user, 1 code, 1 revocation removed", stats)
	}
	for sess, want := range map[*Session]bool{amyOld: false, amyNew: true, bob: false, cy: true} {
		_, err := s.LoadSession(ctx, sess.ID)
		if got := err == nil; got != want {
			t.Errorf("session of %s made %v present = %v, want %v (err %v)", sess.OpenID, sess.Created, got, want, err)
		}
	}
	for openid, want := range map[string]bool{"amy": true, "bob": false, "cy": true} {
		_, err := s.LoadUser(ctx, "wxa", openid)
		if got := err == nil; got != want {
			t.Errorf("user %s present = %v, want %v (err %v)", openid, got, want, err)
		}
	}
	if _, err := s.LoadCode(ctx, "wxa", "fresh-code", now); err != nil {
		t.Errorf("fresh code record swept: %v", err)
	}
	rev := NewRevocations()
	if err := rev.Sync(ctx, s, now); err != nil {
		t.Fatal(err)
	}
	if !rev.Revoked("rev-live") || rev.Revoked("rev-old") {
		t.Errorf("revocations after sweep: live %v old %v", rev.Revoked("rev-live"), rev.Revoked("rev-old"))
	}

	// Amy is looked at again when her second session expires.
	stats, err = s.Sweep(ctx, now.Add(23*time.Hour), policy)
	if err != nil || stats.Sessions != 1 {
		t.Errorf("the next look at amy: %+v, %v; want her second session removed", stats, err)
	}
}

// The sweep's cost follows what expired: live sessions are not read, and
// neither are users not due.
func TestSweepReadsNothingLive(t *testing.T) {
	ctx := context.Background()
	counting := storagetest.NewCounting(&certmagic.FileStorage{Path: t.TempDir()})
	s := NewStore(counting)
	for i := range 200 {
		loginAt(t, s, "wxa", fmt.Sprintf("user%d", i), sweepNow.Add(-time.Duration(i)*time.Minute), 30*24*time.Hour)
	}
	counting.Reset()
	stats, err := s.Sweep(ctx, sweepNow, SweepPolicy{Interval: time.Hour, UserIdle: 30 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Sessions+stats.Users+stats.Refiled != 0 {
		t.Errorf("stats = %+v, want nothing done", stats)
	}
	if got := counting.Loaded(sessionsDir); len(got) != 0 {
		t.Errorf("the sweep read %d live sessions", len(got))
	}
	if got := counting.Loaded(usersDir); len(got) != 0 {
		t.Errorf("the sweep read %d users not due", len(got))
	}
	if c := counting.Calls(); c.Data() > 10 {
		t.Errorf("a sweep with nothing to do made %d storage calls (%+v)", c.Data(), c)
	}
	// The next sweep starts after the hours this one swept, without
	// listing the folders that hold every hour (file storage reads every
	// name below a folder it lists).
	counting.Reset()
	if _, err := s.Sweep(ctx, sweepNow.Add(time.Hour), SweepPolicy{Interval: time.Hour, UserIdle: 30 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	for _, dir := range counting.Listed() {
		if dir == expiryDir || dir == codesDir {
			t.Errorf("the next sweep listed %s whole", dir)
		}
	}
}

func TestSweepRunsOncePerIntervalAcrossNodes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	now := time.Now()
	a, b := newSweepStore(t, dir), newSweepStore(t, dir)
	policy := SweepPolicy{Interval: time.Hour}

	var wg sync.WaitGroup
	results := make([]SweepStats, 2)
	errs := make([]error, 2)
	for i, s := range []*Store{a, b} {
		wg.Go(func() { results[i], errs[i] = s.Sweep(ctx, now, policy) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if results[0].Skipped == results[1].Skipped {
		t.Errorf("both nodes swept, or neither did: %+v", results)
	}
	// An interval later, it runs again.
	stats, err := a.Sweep(ctx, now.Add(time.Hour), policy)
	if err != nil || stats.Skipped {
		t.Errorf("the next interval's sweep was skipped: %+v %v", stats, err)
	}
}

func TestSweepLeavesCorruptRecordsAndSaysSo(t *testing.T) {
	ctx := context.Background()
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	s := NewStore(storage)
	sess := loginAt(t, s, "wxa", "amy", sweepNow.Add(-26*time.Hour), 24*time.Hour)
	key := sessionKey(sess.ID, sess.AppID, sess.OpenID)
	if err := storage.Store(ctx, key, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	_, err := s.Sweep(ctx, sweepNow, SweepPolicy{Interval: time.Hour, UserIdle: 24 * time.Hour})
	if err == nil {
		t.Fatal("a corrupt record went unreported")
	}
	if !storage.Exists(ctx, key) {
		t.Error("the sweep deleted a record it could not read")
	}
	if _, err := s.LoadUser(ctx, "wxa", "amy"); err != nil {
		t.Errorf("the sweep removed the user of a session it could not read: %v", err)
	}
	// And she is looked at again next time.
	if _, err := s.Sweep(ctx, sweepNow.Add(time.Hour), SweepPolicy{Interval: time.Hour, UserIdle: 24 * time.Hour}); err == nil {
		t.Error("the second sweep did not look at the user again")
	}
}

func TestRevocationsAddSyncAndExpire(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	now := time.Now()
	storeA, storeB := newSweepStore(t, dir), newSweepStore(t, dir)
	nodeA, nodeB := NewRevocations(), NewRevocations()

	// Node A revokes: it knows at once; B knows after its next sync.
	nodeA.Add("s1", now.Add(time.Minute))
	if err := storeA.SaveRevocation(ctx, &Revocation{SessionID: "s1", Until: now.Add(time.Minute)}, now); err != nil {
		t.Fatal(err)
	}
	if !nodeA.Revoked("s1") || nodeB.Revoked("s1") {
		t.Fatal("revocation visible too early or not at all")
	}
	if err := nodeB.Sync(ctx, storeB, now); err != nil {
		t.Fatal(err)
	}
	if !nodeB.Revoked("s1") || nodeB.Revoked("s2") {
		t.Error("sync did not learn s1, or invented s2")
	}
	// After Until every access token of the session has expired: forgotten.
	if err := nodeB.Sync(ctx, storeB, now.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if nodeB.Revoked("s1") || nodeB.Len() != 0 {
		t.Error("an expired revocation is still remembered")
	}
	// A local revocation not (yet) in storage survives a sync.
	nodeB.Add("local", now.Add(time.Minute))
	if err := nodeB.Sync(ctx, storeB, now); err != nil {
		t.Fatal(err)
	}
	if !nodeB.Revoked("local") {
		t.Error("a sync dropped a local revocation")
	}
}

// A sync reads only what may have changed since the last: the folders
// that are new or still written to, never a revocation record.
func TestRevocationSyncReadsOnlyWhatChanged(t *testing.T) {
	ctx := context.Background()
	counting := storagetest.NewCounting(&certmagic.FileStorage{Path: t.TempDir()})
	s := NewStore(counting)
	now := sweepNow
	// 2 000 revocations over the last hour and a half, 2 hours long each.
	for i := range 2000 {
		made := now.Add(-time.Duration(i) * 2700 * time.Millisecond)
		if err := s.SaveRevocation(ctx, &Revocation{SessionID: fmt.Sprintf("s%d", i), Until: made.Add(2 * time.Hour)}, made); err != nil {
			t.Fatal(err)
		}
	}
	rev := NewRevocations()
	counting.Reset()
	if err := rev.Sync(ctx, s, now); err != nil {
		t.Fatal(err)
	}
	if rev.Len() != 2000 {
		t.Fatalf("the first sync learned %d of 2000 revocations", rev.Len())
	}
	if c := counting.Calls(); c.Load != 0 || c.List > 1+(90*60)/10+1 {
		t.Errorf("the first sync made %+v calls; want one list per folder and no load", c)
	}

	counting.Reset()
	later := now.Add(10 * time.Second)
	if err := rev.Sync(ctx, s, later); err != nil {
		t.Fatal(err)
	}
	if c := counting.Calls(); c.Load != 0 || c.List > int64((recentWindow+10*time.Second)/revocationBucket)+2 {
		t.Errorf("a sync with nothing new made %+v calls; want the recent folders only", c)
	}
	for _, dir := range counting.Listed() {
		if dir == revokedDir {
			t.Errorf("a sync with nothing new listed %s whole", dir)
		}
	}
	// A revocation written now by another node is learned at the next sync.
	if err := s.SaveRevocation(ctx, &Revocation{SessionID: "new-one", Until: later.Add(time.Hour)}, later); err != nil {
		t.Fatal(err)
	}
	if err := rev.Sync(ctx, s, later.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if !rev.Revoked("new-one") {
		t.Error("a new revocation was not learned")
	}
	// One written by a node whose clock is behind (in a folder already
	// listed) is learned too, while that folder is recent.
	behind := later.Add(-20 * time.Second)
	if err := s.SaveRevocation(ctx, &Revocation{SessionID: "late-clock", Until: later.Add(time.Hour)}, behind); err != nil {
		t.Fatal(err)
	}
	if err := rev.Sync(ctx, s, later.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if !rev.Revoked("late-clock") {
		t.Error("a revocation filed under a recent minute was not learned")
	}
}

// A crash can leave file storage's temporary files beside the records; the
// sweep skips them instead of calling them corrupt records every time.
func TestSweepSkipsWhatIsNotARecord(t *testing.T) {
	ctx := context.Background()
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	s := NewStore(storage)
	sess := loginAt(t, s, "wxa", "o1", sweepNow.Add(-2*time.Hour), 30*24*time.Hour)
	for _, leftover := range []string{
		sessionsDir + "/1234567890",
		userSessionsDir(sess.ID[:userTagLength]) + "/987654321",
		codesDir + "/55555",
		codesDir + "/" + hourOf(sweepNow.Add(-3*time.Hour)) + "/77777",
		expiryDir + "/" + hourOf(sweepNow.Add(-3*time.Hour)) + "/66666",
		revokedDir + "/4444",
		revokedDir + "/" + revocationBucketOf(sweepNow.Add(-time.Hour)) + "/3333",
	} {
		if err := storage.Store(ctx, leftover, []byte("half a rec")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Sweep(ctx, sweepNow, SweepPolicy{Interval: time.Hour, UserIdle: 30 * 24 * time.Hour}); err != nil {
		t.Fatalf("the sweep reported leftovers as records: %v", err)
	}
	if _, err := s.LoadSession(ctx, sess.ID); err != nil {
		t.Errorf("the live session is gone: %v", err)
	}
	if err := NewRevocations().Sync(ctx, s, sweepNow); err != nil {
		t.Fatal(err)
	}
}
