package login

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/store"
)

// newGraceService is a Service with the default refresh grace.
func newGraceService(t *testing.T, dir string, clock *fakeClock) *Service {
	t.Helper()
	s := newService(t, dir, &fakeExchanger{}, clock)
	s.RefreshGrace = 30 * time.Second
	s.Revocations = store.NewRevocations()
	return s
}

// A refresh whose answer was lost is retried with the same token: within
// the grace it gets the same successor, and the session lives on.
func TestRefreshRetryWithinGraceGetsTheSameSuccessor(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	s := newGraceService(t, t.TempDir(), clock)
	first, err := s.Login(ctx, testApp, "retry")
	if err != nil {
		t.Fatal(err)
	}
	lost, err := s.Refresh(ctx, first.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(20 * time.Second)
	again, err := s.Refresh(ctx, first.RefreshToken)
	if err != nil {
		t.Fatalf("a retry within the grace was refused: %v", err)
	}
	if again.RefreshToken != lost.RefreshToken || !again.Retried {
		t.Fatalf("retry got refresh token %q (retried %v), want the lost answer's", again.RefreshToken, again.Retried)
	}
	id, _, err := s.Codec.Verify(again.AccessToken, clock.Now())
	if err != nil || id.SessionID != first.Session.ID || id.OpenID != first.User.OpenID {
		t.Fatalf("the retry's access token: %+v, %v", id, err)
	}
	// The one live refresh token goes on refreshing.
	if _, err := s.Refresh(ctx, again.RefreshToken); err != nil {
		t.Fatalf("the successor does not refresh: %v", err)
	}
}

// Ten parallel refreshes of one token (tabs, a retrying client): one
// successor for all, and the session is not ended.
func TestParallelRefreshesShareOneSuccessor(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	dir := t.TempDir()
	first, err := newGraceService(t, dir, clock).Login(ctx, testApp, "tabs")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]*Result, 10)
	errs := make([]error, 10)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each its own Service and Store on the one storage: nodes.
			results[i], errs[i] = newGraceService(t, dir, clock).Refresh(ctx, first.RefreshToken)
		}()
	}
	wg.Wait()
	retried := 0
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("refresh %d: %v", i, errs[i])
		}
		if r.RefreshToken != results[0].RefreshToken {
			t.Fatalf("refresh %d got another successor", i)
		}
		if r.Retried {
			retried++
		}
	}
	if retried != 9 {
		t.Errorf("%d refreshes were retries, want 9", retried)
	}
	sess, err := store.NewStore(newService(t, dir, nil, clock).Store.Storage()).LoadSession(ctx, first.Session.ID)
	if err != nil || sess.Revoked {
		t.Fatalf("session after parallel refreshes: %+v, %v", sess, err)
	}
}

// Past its grace a spent token is theft: the whole session ends, the
// successor included. With the grace off, at once.
func TestReplayPastTheGraceRevokes(t *testing.T) {
	ctx := context.Background()
	for name, grace := range map[string]time.Duration{"past the grace": 30 * time.Second, "grace off": 0} {
		t.Run(name, func(t *testing.T) {
			clock := newFakeClock()
			s := newGraceService(t, t.TempDir(), clock)
			s.RefreshGrace = grace
			first, err := s.Login(ctx, testApp, "thief")
			if err != nil {
				t.Fatal(err)
			}
			second, err := s.Refresh(ctx, first.RefreshToken)
			if err != nil {
				t.Fatal(err)
			}
			if grace > 0 {
				clock.Advance(grace)
			}
			if _, err := s.Refresh(ctx, first.RefreshToken); !errors.Is(err, ErrRevoked) {
				t.Fatalf("replay: %v, want ErrRevoked", err)
			}
			if _, err := s.Refresh(ctx, second.RefreshToken); !errors.Is(err, ErrRevoked) {
				t.Fatalf("the successor after theft: %v, want ErrRevoked", err)
			}
			if !s.Revocations.Revoked(first.Session.ID) {
				t.Error("the theft's revocation is not known on this node")
			}
		})
	}
}

// A token two rotations back, still within its grace, is led to the
// current one: there is one live refresh token.
func TestRetryFollowsTheChainToTheCurrentToken(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	s := newGraceService(t, t.TempDir(), clock)
	t0, _ := s.Login(ctx, testApp, "chain")
	t1, _ := s.Refresh(ctx, t0.RefreshToken)
	clock.Advance(5 * time.Second)
	t2, err := s.Refresh(ctx, t1.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(5 * time.Second)
	got, err := s.Refresh(ctx, t0.RefreshToken)
	if err != nil || got.RefreshToken != t2.RefreshToken {
		t.Fatalf("late retry of t0: %v, %v; want t2", got, err)
	}
	// t0's grace ends first: then it is theft, even though t1's has not.
	clock.Advance(21 * time.Second)
	if _, err := s.Refresh(ctx, t0.RefreshToken); !errors.Is(err, ErrRevoked) {
		t.Fatalf("t0 past its grace: %v, want ErrRevoked", err)
	}
}

// The successor sealed for the grace is not stored in a form that logs
// anyone in: storage holds neither it nor the spent token.
func TestSuccessorIsNotReadableFromStorage(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	dir := t.TempDir()
	s := newGraceService(t, dir, clock)
	first, _ := s.Login(ctx, testApp, "reader")
	second, err := s.Refresh(ctx, first.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	_, secret1, _ := strings.Cut(first.RefreshToken, ".")
	_, secret2, _ := strings.Cut(second.RefreshToken, ".")
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), secret1) || strings.Contains(string(b), secret2) {
			t.Errorf("%s holds a refresh token in the clear", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A revocation lasts until the session's newest access token expires,
// whatever access_ttl the node that revokes is configured with.
func TestRevocationOutlivesAShorterAccessTTL(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	dir := t.TempDir()
	issuer := newGraceService(t, dir, clock)
	issuer.AccessTTL = 2 * time.Hour
	s, err := issuer.Login(ctx, testApp, "long-token")
	if err != nil {
		t.Fatal(err)
	}
	// A reload (or another site) with access_ttl 3s ends the session.
	now := newGraceService(t, dir, clock)
	now.AccessTTL = 3 * time.Second
	if err := now.Logout(ctx, s.Session.ID); err != nil {
		t.Fatal(err)
	}
	later := store.NewRevocations()
	if err := later.Sync(ctx, now.Store, clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if !later.Revoked(s.Session.ID) {
		t.Error("an hour later the revocation was forgotten, though the 2h token is still valid")
	}
	if err := later.Sync(ctx, now.Store, s.AccessExpires); err != nil {
		t.Fatal(err)
	}
	if later.Revoked(s.Session.ID) {
		t.Error("the revocation outlived the session's newest access token")
	}
}

// Logging a user out everywhere ends every session of theirs and no one
// else's.
func TestLogoutUserEndsEverySessionOfTheUser(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	dir := t.TempDir()
	s := newGraceService(t, dir, clock)
	s.Exchanger = &fakeExchanger{openID: "o-stolen-phone"}
	var mine []*Result
	for _, code := range []string{"phone", "tablet", "web"} {
		r, err := s.Login(ctx, testApp, code)
		if err != nil {
			t.Fatal(err)
		}
		mine = append(mine, r)
	}
	s2 := newGraceService(t, dir, clock)
	s2.Exchanger = &fakeExchanger{openID: "o-someone-else"}
	theirs, err := s2.Login(ctx, testApp, "theirs")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Logout(ctx, mine[2].Session.ID); err != nil {
		t.Fatal(err)
	}
	n, err := s.LogoutUser(ctx, testApp.AppID, "o-stolen-phone")
	if err != nil || n != 2 {
		t.Fatalf("LogoutUser = %d, %v; want the 2 live sessions", n, err)
	}
	for _, r := range mine {
		if _, err := s.Refresh(ctx, r.RefreshToken); !errors.Is(err, ErrRevoked) {
			t.Errorf("session %s refreshes after logout everywhere: %v", r.Session.ID, err)
		}
	}
	if _, err := s.Refresh(ctx, theirs.RefreshToken); err != nil {
		t.Errorf("another user's session ended: %v", err)
	}
}

// A browser logs out with its refresh cookie: the current token or a spent
// one ends the session; a guess ends nothing.
func TestLogoutWithRefresh(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	s := newGraceService(t, t.TempDir(), clock)
	first, _ := s.Login(ctx, testApp, "cookie")
	second, _ := s.Refresh(ctx, first.RefreshToken)
	sid, _, _ := strings.Cut(second.RefreshToken, ".")
	if _, err := s.LogoutWithRefresh(ctx, sid+".guessed"); !errors.Is(err, ErrRefreshInvalid) {
		t.Fatalf("a guessed refresh token: %v, want ErrRefreshInvalid", err)
	}
	if _, err := s.Refresh(ctx, second.RefreshToken); err != nil {
		t.Fatalf("a guess ended the session: %v", err)
	}
	third, _ := s.Login(ctx, testApp, "cookie-2")
	for _, r := range []*Result{first, third} { // a spent token, a current one
		sess, err := s.LogoutWithRefresh(ctx, r.RefreshToken)
		if err != nil || sess.ID != r.Session.ID {
			t.Fatalf("LogoutWithRefresh = %v, %v", sess, err)
		}
		if !s.Revocations.Revoked(r.Session.ID) {
			t.Error("the session's access tokens are not revoked")
		}
		if _, err := s.LogoutWithRefresh(ctx, r.RefreshToken); !errors.Is(err, ErrRevoked) {
			t.Errorf("a second logout: %v, want ErrRevoked", err)
		}
	}
}
