package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/wxauth/caddy-wxauth/internal/valid"
)

var testNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// newTestStore returns a Store on a fresh directory, and that directory so a
// test can look at what was actually written to disk.
func newTestStore(t *testing.T) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	return NewStore(&certmagic.FileStorage{Path: dir}), dir
}

// storedFiles lists every regular file under dir, relative to dir with
// forward slashes, so tests can check which keys exist.
func storedFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", dir, err)
	}
	return out
}

// storeLegacy writes v at key as the layout before this one did.
func storeLegacy(t *testing.T, s *Store, key string, v any) {
	t.Helper()
	if err := s.save(context.Background(), key, v); err != nil {
		t.Fatal(err)
	}
}

func TestUserRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	want := &User{
		AppID:             "wx123",
		OpenID:            "o-abc_DEF",
		UnionID:           "u-1",
		Profile:           &Profile{Nickname: "小明😀", AvatarURL: "https://example.com/a.png"},
		Phone:             &PhoneNumber{Number: "+8613800000000", PureNumber: "13800000000", CountryCode: "86"},
		SessionKey:        "c2Vzc2lvbmtleTEyMzQ1Ng==",
		SessionKeyUpdated: testNow,
	}
	if err := s.SaveUser(ctx, want); err != nil {
		t.Fatalf("SaveUser: %v", err)
	}
	got, err := s.LoadUser(ctx, want.AppID, want.OpenID)
	if err != nil {
		t.Fatalf("LoadUser: %v", err)
	}
	if got.AppID != want.AppID || got.OpenID != want.OpenID || got.UnionID != want.UnionID ||
		*got.Phone != *want.Phone || got.SessionKey != want.SessionKey ||
		!got.SessionKeyUpdated.Equal(want.SessionKeyUpdated) {
		t.Errorf("LoadUser = %#v, want %#v", got, want)
	}
	if got.Profile == nil || *got.Profile != *want.Profile {
		t.Errorf("Profile = %+v, want %+v", got.Profile, want.Profile)
	}
	// The record is keyed by (appid, openid): another app's user with the
	// same openid is a different person.
	if _, err := s.LoadUser(ctx, "wx999", want.OpenID); !errors.Is(err, ErrNotFound) {
		t.Errorf("LoadUser(other app) err = %v, want ErrNotFound", err)
	}
}

func TestSessionRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	id, err := NewSessionID("wx123", "o-abc")
	if err != nil {
		t.Fatal(err)
	}
	want := &Session{
		ID:             id,
		AppID:          "wx123",
		OpenID:         "o-abc",
		Source:         "wechat-miniprogram",
		Created:        testNow,
		RefreshHash:    strings.Repeat("ab", 32),
		RefreshExpires: testNow.Add(30 * 24 * time.Hour),
	}
	if err := s.SaveSession(ctx, want); err != nil {
		t.Fatalf("SaveSession: %v", err)
	}
	got, err := s.LoadSession(ctx, id)
	if err != nil {
		t.Fatalf("LoadSession: %v", err)
	}
	if got.ID != want.ID || got.AppID != want.AppID || got.OpenID != want.OpenID ||
		got.Source != want.Source || got.RefreshHash != want.RefreshHash ||
		!got.Created.Equal(want.Created) || !got.RefreshExpires.Equal(want.RefreshExpires) {
		t.Errorf("LoadSession = %+v, want %+v", got, want)
	}
}

func TestLoadNotFound(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	if u, err := s.LoadUser(ctx, "wx123", "nobody"); !errors.Is(err, ErrNotFound) || u != nil {
		t.Errorf("LoadUser(missing) = %v, %v; want nil, ErrNotFound", u, err)
	}
	if sess, err := s.LoadSession(ctx, "nosuchsession"); !errors.Is(err, ErrNotFound) || sess != nil {
		t.Errorf("LoadSession(missing) = %v, %v; want nil, ErrNotFound", sess, err)
	}
	if rec, err := s.LoadCode(ctx, "wx123", "nosuchcode", testNow); !errors.Is(err, ErrNotFound) || rec != nil {
		t.Errorf("LoadCode(missing) = %v, %v; want nil, ErrNotFound", rec, err)
	}
}

// Unsafe ids must never reach the file system: saving refuses them, and
// loading treats them as absent even when the path they would walk to holds
// a perfectly good record.
func TestUnsafeIDsAreNeverStored(t *testing.T) {
	ctx := context.Background()
	s, dir := newTestStore(t)
	bad := []string{"../x", "a/b", "", strings.Repeat("a", 129), "用户", "..", "a.b"}

	for _, id := range bad {
		if err := s.SaveUser(ctx, &User{AppID: "wx123", OpenID: id, SessionKey: "k"}); err == nil {
			t.Errorf("SaveUser(openid %q) succeeded, want refusal", id)
		}
		if err := s.SaveUser(ctx, &User{AppID: id, OpenID: "o-1", SessionKey: "k"}); err == nil {
			t.Errorf("SaveUser(appid %q) succeeded, want refusal", id)
		}
		if err := s.SaveSession(ctx, &Session{ID: id, AppID: "wx123", OpenID: "o-1"}); err == nil {
			t.Errorf("SaveSession(id %q) succeeded, want refusal", id)
		}
		called := false
		if _, err := s.UpdateUser(ctx, "wx123", id, func(*User) error { called = true; return nil }); err == nil {
			t.Errorf("UpdateUser(openid %q) succeeded, want refusal", id)
		}
		if called {
			t.Errorf("UpdateUser(openid %q) ran fn on an unsafe id", id)
		}
	}
	if files := storedFiles(t, dir); len(files) != 0 {
		t.Errorf("unsafe ids wrote files: %v", files)
	}

	// Plant real records where "../x" would lead, then make sure the
	// traversal does not reach them.
	raw := s.Storage()
	if err := raw.Store(ctx, Prefix+"/users/x.json", []byte(`{"appid":"wx123","openid":"x","session_key":"planted"}`)); err != nil {
		t.Fatal(err)
	}
	if u, err := s.LoadUser(ctx, "wx123", "../x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("LoadUser(../x) = %v, %v; want ErrNotFound", u, err)
	}
	if err := raw.Store(ctx, Prefix+"/x.json", []byte(`{"id":"x"}`)); err != nil {
		t.Fatal(err)
	}
	if sess, err := s.LoadSession(ctx, "../x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("LoadSession(../x) = %v, %v; want ErrNotFound", sess, err)
	}
}

func TestCodeRoundTripAndExpiry(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	rec := &CodeRecord{AppID: "wx123", OpenID: "o-1", UnionID: "u-1", Expires: testNow.Add(5 * time.Minute)}
	if err := s.SaveCode(ctx, "code-A", rec, testNow); err != nil {
		t.Fatalf("SaveCode: %v", err)
	}

	got, err := s.LoadCode(ctx, "wx123", "code-A", testNow)
	if err != nil {
		t.Fatalf("LoadCode before expiry: %v", err)
	}
	if got.AppID != rec.AppID || got.OpenID != rec.OpenID || got.UnionID != rec.UnionID || !got.Expires.Equal(rec.Expires) {
		t.Errorf("LoadCode = %+v, want %+v", got, rec)
	}
	// One nanosecond before expiry still counts.
	if _, err := s.LoadCode(ctx, "wx123", "code-A", rec.Expires.Add(-time.Nanosecond)); err != nil {
		t.Errorf("LoadCode 1ns before expiry: %v", err)
	}
	// At and after Expires the code is dead.
	for _, now := range []time.Time{rec.Expires, rec.Expires.Add(time.Second)} {
		if r, err := s.LoadCode(ctx, "wx123", "code-A", now); !errors.Is(err, ErrNotFound) {
			t.Errorf("LoadCode at %v = %+v, %v; want ErrNotFound", now, r, err)
		}
	}
	// Other code, other app: not found.
	if _, err := s.LoadCode(ctx, "wx123", "code-B", testNow); !errors.Is(err, ErrNotFound) {
		t.Errorf("LoadCode(other code) err = %v, want ErrNotFound", err)
	}
	if _, err := s.LoadCode(ctx, "wx999", "code-A", testNow); !errors.Is(err, ErrNotFound) {
		t.Errorf("LoadCode(other app) err = %v, want ErrNotFound", err)
	}
}

// Phone codes and login codes live side by side but never name one record:
// the same string used as both is two different codes.
func TestPhoneCodeSeparateFromLoginCode(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	rec := &CodeRecord{AppID: "wx123", OpenID: "o-1", Expires: testNow.Add(5 * time.Minute)}
	if err := s.SavePhoneCode(ctx, "code-A", rec, testNow); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LoadPhoneCode(ctx, "wx123", "code-A", testNow); err != nil || got.OpenID != "o-1" {
		t.Fatalf("LoadPhoneCode = %+v, %v", got, err)
	}
	if _, err := s.LoadCode(ctx, "wx123", "code-A", testNow); !errors.Is(err, ErrNotFound) {
		t.Errorf("a phone code answered as a login code: err = %v", err)
	}
	if _, err := s.LoadPhoneCode(ctx, "wx123", "code-A", rec.Expires); !errors.Is(err, ErrNotFound) {
		t.Errorf("an expired phone code was found: err = %v", err)
	}
	if _, err := s.LoadPhoneCode(ctx, "wx999", "code-A", testNow); !errors.Is(err, ErrNotFound) {
		t.Errorf("another app's phone code was found: err = %v", err)
	}
	if PhoneCodeLockName("wx123", "code-A") == PhoneCodeLockName("wx123", "code-B") {
		t.Error("two phone codes share a lock")
	}
}

// A web login state is good once, and not after it expires; the sweep
// removes expired ones with the codes.
func TestWebStateSingleUse(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	ws := &WebState{AppID: "wxweb", Next: "/orders?x=1", Expires: testNow.Add(10 * time.Minute)}
	if err := s.SaveWebState(ctx, "abc123", ws, testNow); err != nil {
		t.Fatal(err)
	}
	got, err := s.TakeWebState(ctx, "abc123", 10*time.Minute, testNow)
	if err != nil || got.AppID != "wxweb" || got.Next != "/orders?x=1" {
		t.Fatalf("TakeWebState = %+v, %v", got, err)
	}
	if _, err := s.TakeWebState(ctx, "abc123", 10*time.Minute, testNow); !errors.Is(err, ErrNotFound) {
		t.Errorf("a state was taken twice: err = %v", err)
	}
	if _, err := s.TakeWebState(ctx, "never-issued", 10*time.Minute, testNow); !errors.Is(err, ErrNotFound) {
		t.Errorf("an unknown state was found: err = %v", err)
	}
	if err := s.SaveWebState(ctx, "old", &WebState{AppID: "wxweb", Next: "/", Expires: testNow}, testNow); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TakeWebState(ctx, "old", 10*time.Minute, testNow); !errors.Is(err, ErrNotFound) {
		t.Errorf("an expired state was taken: err = %v", err)
	}
	if err := s.SaveWebState(ctx, "swept", &WebState{AppID: "wxweb", Next: "/", Expires: testNow}, testNow); err != nil {
		t.Fatal(err)
	}
	// Its hour's folder goes once the hour and the longest life in it
	// are over.
	stats, err := s.Sweep(ctx, testNow.Add(time.Second), SweepPolicy{Interval: time.Hour})
	if err != nil || stats.Codes != 0 {
		t.Errorf("sweep within the hour: %+v, %v; want nothing removed yet", stats, err)
	}
	stats, err = s.Sweep(ctx, testNow.Add(2*time.Hour), SweepPolicy{Interval: time.Hour})
	if err != nil || stats.Codes != 1 {
		t.Errorf("sweep: %+v, %v; want the expired state removed", stats, err)
	}
}

// The record's own appid is checked too, not only the key it lives under:
// a record for app A that somehow sits under app B's key must not log a
// user into B.
func TestLoadCodeAppIDMismatch(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	planted := []byte(`{"appid":"wxA","openid":"o-1","expires":"` + testNow.Add(time.Hour).Format(time.RFC3339) + `"}`)
	if err := s.Storage().Store(ctx, shortKey(testNow, codeName("login", "wxB", "code-1")), planted); err != nil {
		t.Fatal(err)
	}
	if rec, err := s.LoadCode(ctx, "wxB", "code-1", testNow); !errors.Is(err, ErrNotFound) {
		t.Errorf("LoadCode(wxB) with record for wxA = %+v, %v; want ErrNotFound", rec, err)
	}
}

func TestCorruptRecord(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	key := userKey("wx123", "o-1")
	if err := s.Storage().Store(ctx, key, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	_, err := s.LoadUser(ctx, "wx123", "o-1")
	if err == nil {
		t.Fatal("LoadUser(corrupt) succeeded")
	}
	if errors.Is(err, ErrNotFound) {
		t.Fatalf("LoadUser(corrupt) = ErrNotFound; a corrupt record must not look absent (UpdateUser would overwrite it)")
	}
	if !strings.Contains(err.Error(), key) {
		t.Errorf("error %q does not name the key %q", err, key)
	}
	if !strings.Contains(err.Error(), "delete it") {
		t.Errorf("error %q does not tell the operator to delete the record", err)
	}

	// UpdateUser must not paper over the corruption with a fresh record.
	if _, err := s.UpdateUser(ctx, "wx123", "o-1", func(u *User) error { u.UnionID = "1"; return nil }); err == nil {
		t.Error("UpdateUser over a corrupt record succeeded")
	}
	if data, _ := s.Storage().Load(ctx, key); string(data) != "{not json" {
		t.Errorf("corrupt record was rewritten to %q", data)
	}

	skey := legacySessionKey("sess1")
	if err := s.Storage().Store(ctx, skey, []byte(`[]`)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadSession(ctx, "sess1"); err == nil || !strings.Contains(err.Error(), skey) {
		t.Errorf("LoadSession(corrupt) err = %v, want one naming %s", err, skey)
	}
}

func TestUpdateUserCreatesWhenMissing(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	var seen *User
	u, err := s.UpdateUser(ctx, "wx123", "o-new", func(u *User) error {
		seen = &User{AppID: u.AppID, OpenID: u.OpenID, SessionKey: u.SessionKey}
		u.SessionKey = "key-1"
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	// fn sees a fresh record with the ids filled in.
	if seen.AppID != "wx123" || seen.OpenID != "o-new" || seen.SessionKey != "" {
		t.Errorf("fn saw %+v, want a fresh record for wx123/o-new", seen)
	}
	if u.SessionKey != "key-1" {
		t.Errorf("returned user SessionKey = %q, want key-1", u.SessionKey)
	}
	got, err := s.LoadUser(ctx, "wx123", "o-new")
	if err != nil {
		t.Fatalf("LoadUser after UpdateUser: %v", err)
	}
	if got.SessionKey != "key-1" || got.AppID != "wx123" || got.OpenID != "o-new" {
		t.Errorf("stored user = %+v", got)
	}
}

func TestUpdateUserPreservesUntouchedFields(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	if err := s.SaveUser(ctx, &User{
		AppID: "wx123", OpenID: "o-1", UnionID: "u-1", Phone: &PhoneNumber{Number: "+86138"},
		Profile:    &Profile{Nickname: "小明", AvatarURL: "https://example.com/a.png"},
		SessionKey: "old",
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateUser(ctx, "wx123", "o-1", func(u *User) error {
		u.SessionKey = "new"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadUser(ctx, "wx123", "o-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.SessionKey != "new" {
		t.Errorf("SessionKey = %q, want new", got.SessionKey)
	}
	if got.Profile == nil || got.Profile.Nickname != "小明" || got.Profile.AvatarURL != "https://example.com/a.png" {
		t.Errorf("Profile = %+v, want it kept", got.Profile)
	}
	if got.Phone == nil || got.Phone.Number != "+86138" || got.UnionID != "u-1" {
		t.Errorf("Phone/UnionID = %v/%q, want kept", got.Phone, got.UnionID)
	}
}

func TestUpdateUserFnErrorLeavesRecord(t *testing.T) {
	ctx := context.Background()
	s, dir := newTestStore(t)
	if err := s.SaveUser(ctx, &User{AppID: "wx123", OpenID: "o-1", UnionID: "1", SessionKey: "k1"}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	u, err := s.UpdateUser(ctx, "wx123", "o-1", func(u *User) error {
		u.UnionID = "2"
		u.SessionKey = "k2"
		return boom
	})
	if !errors.Is(err, boom) || u != nil {
		t.Errorf("UpdateUser = %v, %v; want nil, boom", u, err)
	}
	got, err := s.LoadUser(ctx, "wx123", "o-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.UnionID != "1" || got.SessionKey != "k1" {
		t.Errorf("after failed fn stored user = %+v, want untouched", got)
	}

	// A failing fn on a missing user must not create one either.
	before := len(storedFiles(t, dir))
	if _, err := s.UpdateUser(ctx, "wx123", "o-2", func(u *User) error { u.UnionID = "x"; return boom }); !errors.Is(err, boom) {
		t.Errorf("UpdateUser(missing) err = %v, want boom", err)
	}
	if _, err := s.LoadUser(ctx, "wx123", "o-2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("failed fn created a record: err = %v", err)
	}
	if after := len(storedFiles(t, dir)); after != before {
		t.Errorf("failed fn changed file count %d -> %d", before, after)
	}
}

// Fifty concurrent read-modify-writes of one user each append one character.
// Without the per-user lock, two of them would load the same old value and
// one append would be lost; the sleep inside fn widens that window so the
// test fails reliably if the lock is removed.
func TestUpdateUserConcurrentNoLostUpdate(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	if err := s.SaveUser(ctx, &User{AppID: "wx123", OpenID: "o-1", Profile: &Profile{Nickname: "keep"}}); err != nil {
		t.Fatal(err)
	}
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.UpdateUser(ctx, "wx123", "o-1", func(u *User) error {
				cur := u.UnionID
				time.Sleep(time.Millisecond)
				u.UnionID = cur + "x"
				return nil
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("UpdateUser: %v", err)
		}
	}
	got, err := s.LoadUser(ctx, "wx123", "o-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.UnionID) != n {
		t.Errorf("after %d concurrent appends UnionID has %d characters: updates were lost", n, len(got.UnionID))
	}
	if got.Profile == nil || got.Profile.Nickname != "keep" {
		t.Errorf("Profile = %+v, want kept", got.Profile)
	}
}

func TestUserStringHidesSessionKey(t *testing.T) {
	const secret = "U2VjcmV0U2Vzc2lvbktleQ=="
	const number = "13912345678"
	u := &User{AppID: "wx123", OpenID: "o-1", SessionKey: secret, Phone: &PhoneNumber{Number: number, PureNumber: number, CountryCode: "86"}}
	outputs := map[string]string{
		"String()":    u.String(),
		"Sprint":      fmt.Sprint(u),
		"%v":          fmt.Sprintf("%v", u),
		"%+v":         fmt.Sprintf("%+v", u),
		"%s":          fmt.Sprintf("%s", u),
		"wrapped err": fmt.Errorf("saving %v: %w", u, errors.New("x")).Error(),
		"in slice":    fmt.Sprint([]*User{u}),
	}
	for name, out := range outputs {
		if strings.Contains(out, secret) {
			t.Errorf("%s = %q contains the session key", name, out)
		}
		if strings.Contains(out, number) {
			t.Errorf("%s = %q contains the phone number", name, out)
		}
	}
	for _, verb := range []string{"%v", "%+v", "%s", "%#v"} {
		if out := fmt.Sprintf(verb, *u.Phone); strings.Contains(out, number) || strings.Contains(out, "1234") {
			t.Errorf("fmt %s of a PhoneNumber shows the number: %s", verb, out)
		}
	}
	// It should still say which user it is, or it is useless in logs.
	if s := u.String(); !strings.Contains(s, "wx123") || !strings.Contains(s, "o-1") {
		t.Errorf("String() = %q, want appid and openid", s)
	}
}

// Every way fmt can print a User, by value or pointer, must leave the
// session key out.
func TestUserFormattingNeverShowsSessionKey(t *testing.T) {
	const secret = "U2VjcmV0U2Vzc2lvbktleQ=="
	u := &User{AppID: "wx123", OpenID: "o-1", SessionKey: secret}
	for _, verb := range []string{"%v", "%+v", "%s", "%#v"} {
		for name, v := range map[string]any{"pointer": u, "value": *u} {
			if out := fmt.Sprintf(verb, v); strings.Contains(out, secret) {
				t.Errorf("fmt %s of a User %s prints the session key: %s", verb, name, out)
			}
		}
	}
}

// Login codes are secrets for their few minutes of life: the storage key
// must be a hash, so listing the storage (or its logs) does not reveal them.
func TestCodeStoredUnderHash(t *testing.T) {
	ctx := context.Background()
	s, dir := newTestStore(t)
	const code = "0a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P"
	if err := s.SaveCode(ctx, code, &CodeRecord{AppID: "wx123", OpenID: "o-1", Expires: testNow.Add(time.Minute)}, testNow); err != nil {
		t.Fatal(err)
	}
	files := storedFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("stored files = %v, want exactly one", files)
	}
	if strings.Contains(files[0], code) {
		t.Errorf("storage key %q contains the raw code", files[0])
	}
	if !regexp.MustCompile(`^` + Prefix + `/codes/[0-9]+/[0-9a-f]{2}/[0-9a-f]{64}\.json$`).MatchString(files[0]) {
		t.Errorf("storage key %q is not %s/codes/<hour>/<2 hex>/<sha256 hex>.json", files[0], Prefix)
	}
	keys, err := s.Storage().List(ctx, Prefix, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.Contains(k, code) {
			t.Errorf("List key %q contains the raw code", k)
		}
	}
	// The same code in another app lands under a different key.
	if codeName("login", "wx123", code) == codeName("login", "wx999", code) {
		t.Error("codeName ignores the appid")
	}
	// Codes that would be unsafe as ids still work, because they are hashed.
	if err := s.SaveCode(ctx, "../../evil/code", &CodeRecord{AppID: "wx123", OpenID: "o-2", Expires: testNow.Add(time.Minute)}, testNow); err != nil {
		t.Fatal(err)
	}
	for _, f := range storedFiles(t, dir) {
		if !strings.HasPrefix(f, Prefix+"/codes/") {
			t.Errorf("code record escaped its folder: %s", f)
		}
	}
	if rec, err := s.LoadCode(ctx, "wx123", "../../evil/code", testNow); err != nil || rec.OpenID != "o-2" {
		t.Errorf("LoadCode(path-like code) = %+v, %v", rec, err)
	}
}

func TestNewSessionID(t *testing.T) {
	urlSafe := regexp.MustCompile(`^[A-Za-z0-9_-]{34}$`)
	seen := make(map[string]bool)
	tag := userTag("wx123", "o-abc")
	for i := 0; i < 1000; i++ {
		id, err := NewSessionID("wx123", "o-abc")
		if err != nil {
			t.Fatal(err)
		}
		if !urlSafe.MatchString(id) {
			t.Fatalf("NewSessionID() = %q, want 34 URL-safe characters", id)
		}
		// A session id is used as a storage key, so it must pass valid.ID.
		if !valid.ID(id) {
			t.Fatalf("NewSessionID() = %q fails valid.ID", id)
		}
		if seen[id] {
			t.Fatalf("NewSessionID() repeated %q", id)
		}
		seen[id] = true
		// Every session of one user starts with the user's tag: their folder.
		if !strings.HasPrefix(id, tag) {
			t.Fatalf("NewSessionID() = %q does not start with the user's tag %q", id, tag)
		}
	}
	if other, _ := NewSessionID("wx123", "o-abd"); strings.HasPrefix(other, tag) {
		t.Error("two users share a session folder")
	}
}

// The sessions of one user are found without reading anyone else's, and
// sessions stored before the per-user layout are still found.
func TestUserSessions(t *testing.T) {
	ctx := context.Background()
	s, dir := newTestStore(t)
	var want []string
	for range 3 {
		id, _ := NewSessionID("wx123", "o-amy")
		want = append(want, id)
		if err := s.SaveSession(ctx, &Session{ID: id, AppID: "wx123", OpenID: "o-amy"}); err != nil {
			t.Fatal(err)
		}
	}
	other, _ := NewSessionID("wx123", "o-bob")
	legacyAmy, legacyBob := "AAAAAAAAAAAAAAAAAAAAAA", "BBBBBBBBBBBBBBBBBBBBBB"
	if err := s.SaveSession(ctx, &Session{ID: other, AppID: "wx123", OpenID: "o-bob"}); err != nil {
		t.Fatal(err)
	}
	// Sessions of the layout before: at sessions/<id>.json.
	for _, sess := range []*Session{
		{ID: legacyAmy, AppID: "wx123", OpenID: "o-amy", Revoked: true},
		{ID: legacyBob, AppID: "wx123", OpenID: "o-bob"},
		{ID: "CCCCCCCCCCCCCCCCCCCCCC", AppID: "wx999", OpenID: "o-amy"}, // the same openid in another app
	} {
		storeLegacy(t, s, legacySessionKey(sess.ID), sess)
	}
	want = append(want, legacyAmy)
	got, err := s.UserSessions(ctx, "wx123", "o-amy")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, sess := range got {
		ids = append(ids, sess.ID)
	}
	slices.Sort(ids)
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("UserSessions = %v, want %v", ids, want)
	}
	tag, first := userTag("wx123", "o-amy"), ids[0]
	if first == legacyAmy {
		first = ids[1]
	}
	for _, f := range storedFiles(t, dir) {
		if strings.Contains(f, first) && f != Prefix+"/sessions/"+tag[:2]+"/"+tag+"/"+first+".json" {
			t.Errorf("session stored at %s, want under the user's folder", f)
		}
	}
	if none, err := s.UserSessions(ctx, "wx123", "o-nobody"); err != nil || len(none) != 0 {
		t.Errorf("UserSessions(nobody) = %v, %v", none, err)
	}
}

// The store lists Caddy's file storage by reading the folder, not through
// its List: the keys must be exactly List's, in List's order, for folders
// with records and sub-folders, a folder that is not there and a key that
// is a record.
func TestListFolderIsFileStorageList(t *testing.T) {
	files := &certmagic.FileStorage{Path: t.TempDir()}
	ctx := context.Background()
	for _, key := range []string{"a/b/2.json", "a/b/10.json", "a/b/c/d.json", "a/b/Z.json", "a/e.json", "a/b/.hidden"} {
		if err := files.Store(ctx, key, []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	s := NewStore(files)
	for _, dir := range []string{"a", "a/b", "a/b/", "a/b/c", "a/missing", "a/e.json"} {
		want, err := files.List(ctx, dir, false)
		if errors.Is(err, fs.ErrNotExist) {
			want, err = nil, nil
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.list(ctx, dir)
		if err != nil {
			t.Fatalf("list(%q): %v", dir, err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("list(%q) = %q, FileStorage.List = %q", dir, got, want)
		}
	}
}
