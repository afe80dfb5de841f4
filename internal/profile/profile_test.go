package profile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/wxauth/caddy-wxauth/internal/avatar"
	"github.com/wxauth/caddy-wxauth/internal/platform"
	"github.com/wxauth/caddy-wxauth/internal/store"
	"github.com/wxauth/caddy-wxauth/internal/userdata"
	"github.com/wxauth/caddy-wxauth/internal/valid"
)

var app = platform.App{AppID: "wxprofiletest001", Kind: platform.WeChat}

const openid = "o-profile-user"

var pngImage = append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"), bytes.Repeat([]byte{1}, 40)...)

// fakePlatform answers content checks ("risky" is risky) and phone codes,
// and counts the calls.
type fakePlatform struct {
	mu         sync.Mutex
	texts      []string
	images     int
	phoneCalls map[string]int
	fail       error
}

func (f *fakePlatform) CheckText(_ context.Context, _ platform.App, _, content string) (platform.Verdict, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.texts = append(f.texts, content)
	if f.fail != nil {
		return platform.Verdict{}, f.fail
	}
	if strings.Contains(content, "risky") {
		return platform.Verdict{Suggest: "risky", Label: 20001}, nil
	}
	return platform.Verdict{Suggest: "pass"}, nil
}

func (f *fakePlatform) CheckImage(_ context.Context, _ platform.App, image []byte) (platform.Verdict, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.images++
	if f.fail != nil {
		return platform.Verdict{}, f.fail
	}
	if bytes.Contains(image, []byte("risky")) {
		return platform.Verdict{Suggest: "risky", Label: 87014}, nil
	}
	return platform.Verdict{Suggest: "pass"}, nil
}

func (f *fakePlatform) PhoneNumber(_ context.Context, _ platform.App, code string) (*platform.Phone, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.phoneCalls == nil {
		f.phoneCalls = map[string]int{}
	}
	f.phoneCalls[code]++
	if f.fail != nil {
		return nil, f.fail
	}
	return &platform.Phone{PhoneNumber: "13900000000", PurePhoneNumber: "13900000000", CountryCode: "86"}, nil
}

func newService(t *testing.T) (*Service, *fakePlatform) {
	t.Helper()
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	f := &fakePlatform{}
	return &Service{
		Users:   store.NewStore(storage),
		Avatars: avatar.NewStore(storage),
		Checker: f,
		Phones:  f,
	}, f
}

func ptr(s string) *string { return &s }

func TestUpdateStoresAndKeepsWhatIsNotChanged(t *testing.T) {
	ctx := context.Background()
	s, f := newService(t)
	u, err := s.Update(ctx, app, openid, Change{Nickname: ptr("  小明😀  "), AvatarURL: ptr("https://wx.qlogo.cn/a/132")}, true)
	if err != nil {
		t.Fatal(err)
	}
	if u.Profile == nil || u.Profile.Nickname != "小明😀" || u.Profile.AvatarURL != "https://wx.qlogo.cn/a/132" {
		t.Fatalf("profile = %+v, want the trimmed nickname and the URL", u.Profile)
	}
	u, err = s.Update(ctx, app, openid, Change{AvatarImage: pngImage, AvatarBase: "https://gw.example/wx/avatar/"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if u.Profile.Nickname != "小明😀" || u.Profile.AvatarURL != "https://gw.example/wx/avatar/"+avatar.ID(app.AppID, openid, pngImage) {
		t.Fatalf("after an avatar upload profile = %+v", u.Profile)
	}
	if _, _, err := s.Avatars.Load(ctx, avatar.ID(app.AppID, openid, pngImage)); err != nil {
		t.Fatalf("uploaded avatar not stored: %v", err)
	}
	if len(f.texts) != 1 || f.images != 1 {
		t.Errorf("checks: %d texts, %d images; want 1 and 1", len(f.texts), f.images)
	}
	// The same nickname again is not checked again.
	if _, err := s.Update(ctx, app, openid, Change{Nickname: ptr("小明😀")}, true); err != nil {
		t.Fatal(err)
	}
	if len(f.texts) != 1 {
		t.Errorf("an unchanged nickname was checked again")
	}
}

func TestUpdateRefusalsStoreNothing(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		change Change
		check  func(error) bool
	}{
		{"nothing", Change{}, isInput},
		{"empty nickname", Change{Nickname: ptr(" ")}, isInput},
		{"long nickname", Change{Nickname: ptr(strings.Repeat("名", valid.MaxNicknameRunes+1))}, isInput},
		{"control character", Change{Nickname: ptr("a\x00b")}, isInput},
		{"newline", Change{Nickname: ptr("a\nX-WX-OPENID: x")}, isInput},
		{"invalid UTF-8", Change{Nickname: ptr("a\xffb")}, isInput},
		{"ftp avatar", Change{AvatarURL: ptr("ftp://x/a.png")}, isInput},
		{"avatar with credentials", Change{AvatarURL: ptr("https://u:p@x/a.png")}, isInput},
		{"avatar with a space", Change{AvatarURL: ptr("https://x/a b.png")}, isInput},
		{"long avatar", Change{AvatarURL: ptr("https://x/" + strings.Repeat("a", valid.MaxAvatarURLBytes))}, isInput},
		{"both avatars", Change{AvatarURL: ptr("https://x/a.png"), AvatarImage: pngImage}, isInput},
		{"not an image", Change{AvatarImage: []byte("<svg/>")}, func(err error) bool { return errors.Is(err, ErrNotImage) }},
		{"too large", Change{AvatarImage: append(append([]byte(nil), pngImage...), make([]byte, avatar.MaxSize)...)}, func(err error) bool { return errors.Is(err, ErrTooLarge) }},
		{"risky nickname", Change{Nickname: ptr("risky"), AvatarImage: pngImage}, isRejected("nickname")},
		{"risky image", Change{Nickname: ptr("fine"), AvatarImage: append(append([]byte(nil), pngImage...), "risky"...)}, isRejected("avatar")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, _ := newService(t)
			_, err := s.Update(ctx, app, openid, c.change, true)
			if !c.check(err) {
				t.Fatalf("err = %v", err)
			}
			if _, err := s.Users.LoadUser(ctx, app.AppID, openid); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("a refused change stored a user record (err %v)", err)
			}
			if _, _, err := s.Avatars.Load(ctx, avatar.ID(app.AppID, openid, c.change.AvatarImage)); !errors.Is(err, avatar.ErrNotFound) {
				t.Errorf("a refused change stored the avatar")
			}
		})
	}
}

func TestCheckFailureStoresNothing(t *testing.T) {
	ctx := context.Background()
	s, f := newService(t)
	f.fail = &platform.Error{Code: platform.Unavailable, API: "msg_sec_check", Message: "down"}
	_, err := s.Update(ctx, app, openid, Change{Nickname: ptr("n"), AvatarImage: pngImage}, true)
	if platform.AsError(err) == nil {
		t.Fatalf("err = %v, want the platform error", err)
	}
	if _, err := s.Users.LoadUser(ctx, app.AppID, openid); !errors.Is(err, store.ErrNotFound) {
		t.Error("unchecked content was stored")
	}
	// With checks off, nothing asks the platform.
	u, err := s.Update(ctx, app, openid, Change{Nickname: ptr("risky")}, false)
	if err != nil || u.Profile.Nickname != "risky" {
		t.Fatalf("unchecked update = %+v, %v", u, err)
	}
}

func isInput(err error) bool {
	var ie *InputError
	return errors.As(err, &ie) && ie.Message != ""
}

func isRejected(field string) func(error) bool {
	return func(err error) bool {
		var re *RejectedError
		return errors.As(err, &re) && re.Field == field
	}
}

// The key the user's login left on the server decrypts their data.
func TestUpdateFromEncrypted(t *testing.T) {
	ctx := context.Background()
	s, f := newService(t)
	const key = "c2Vzc2lvbmtleTEyMzQ1Ng=="
	if err := s.Users.SaveUser(ctx, &store.User{AppID: app.AppID, OpenID: openid, SessionKey: key}); err != nil {
		t.Fatal(err)
	}
	seal := func(info map[string]any) Encrypted {
		plain, _ := json.Marshal(info)
		data, iv, err := userdata.Encrypt(key, plain)
		if err != nil {
			t.Fatal(err)
		}
		return Encrypted{Data: data, IV: iv}
	}
	wm := map[string]any{"appid": app.AppID, "timestamp": 1}

	enc := seal(map[string]any{"openId": openid, "unionId": "u-legacy", "nickName": "Band", "avatarUrl": "https://wx.qlogo.cn/b/0", "watermark": wm})
	enc.RawData = `{"nickName":"Band"}`
	enc.Signature = userdata.Sign(enc.RawData, key)
	u, err := s.UpdateFromEncrypted(ctx, app, openid, enc)
	if err != nil {
		t.Fatal(err)
	}
	if u.Profile.Nickname != "Band" || u.Profile.AvatarURL != "https://wx.qlogo.cn/b/0" || u.UnionID != "u-legacy" || u.SessionKey != key {
		t.Errorf("user = %+v %+v", u, u.Profile)
	}
	if len(f.texts) != 0 {
		t.Error("platform-signed data was sent to the content check")
	}

	// An unusable avatar URL is dropped, the nickname kept.
	u, err = s.UpdateFromEncrypted(ctx, app, openid, seal(map[string]any{"nickName": "B2", "avatarUrl": "javascript:x", "watermark": wm}))
	if err != nil || u.Profile.Nickname != "B2" || u.Profile.AvatarURL != "" {
		t.Errorf("profile = %+v, %v", u.Profile, err)
	}

	for name, c := range map[string]struct {
		enc  Encrypted
		want error
	}{
		"another user":    {seal(map[string]any{"openId": "o-other", "nickName": "x", "watermark": wm}), userdata.ErrDecrypt},
		"other app":       {seal(map[string]any{"nickName": "x", "watermark": map[string]any{"appid": "wxother"}}), userdata.ErrWatermark},
		"bad signature":   {Encrypted{Data: enc.Data, IV: enc.IV, RawData: "{}", Signature: strings.Repeat("a", 40)}, userdata.ErrSignature},
		"malformed":       {Encrypted{Data: "!!", IV: enc.IV}, userdata.ErrMalformed},
		"nobody's key":    {Encrypted{Data: enc.Data, IV: "AAAAAAAAAAAAAAAAAAAAAA=="}, userdata.ErrDecrypt},
		"missing iv":      {Encrypted{Data: enc.Data}, nil},
		"sig without raw": {Encrypted{Data: enc.Data, IV: enc.IV, Signature: "ab"}, nil},
	} {
		_, err := s.UpdateFromEncrypted(ctx, app, openid, c.enc)
		if c.want == nil {
			if !isInput(err) {
				t.Errorf("%s: err = %v, want an InputError", name, err)
			}
			continue
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", name, err, c.want)
		}
	}
	if u, _ := s.Users.LoadUser(ctx, app.AppID, openid); u.Profile.Nickname != "B2" {
		t.Errorf("a refused update changed the profile to %+v", u.Profile)
	}

	if _, err := s.UpdateFromEncrypted(ctx, app, "o-never-logged-in", enc); !errors.Is(err, ErrNoSessionKey) {
		t.Errorf("user without a session key: err = %v", err)
	}
}

func TestPhoneOncePerCode(t *testing.T) {
	ctx := context.Background()
	s, f := newService(t)
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	s.Now = func() time.Time { return now }

	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, err := s.Phone(ctx, app, openid, "code-1")
			if err != nil || u.Phone == nil || u.Phone.Number != "13900000000" {
				t.Errorf("Phone = %+v, %v", u, err)
			}
		}()
	}
	wg.Wait()
	if n := f.phoneCalls["code-1"]; n != 1 {
		t.Errorf("the billed API was called %d times for one code", n)
	}
	// Another user presenting the same code gets nothing.
	_, err := s.Phone(ctx, app, "o-thief", "code-1")
	if pe := platform.AsError(err); pe == nil || pe.Code != platform.InvalidCode {
		t.Errorf("another user's code: err = %v, want invalid_code", err)
	}
	// After the code's life the record is gone, and the platform decides.
	now = now.Add(PhoneCodeLifetime)
	if _, err := s.Phone(ctx, app, openid, "code-1"); err != nil {
		t.Fatal(err)
	}
	if n := f.phoneCalls["code-1"]; n != 2 {
		t.Errorf("calls after expiry = %d, want 2", n)
	}

	// A platform failure stores nothing and leaves the code usable.
	f.fail = &platform.Error{Code: platform.InvalidCode, API: "getuserphonenumber", Message: "bad"}
	if _, err := s.Phone(ctx, app, "o-2", "code-2"); platform.AsError(err) == nil {
		t.Fatalf("err = %v", err)
	}
	if u, err := s.Users.LoadUser(ctx, app.AppID, "o-2"); err == nil && u.Phone != nil {
		t.Error("a failed exchange stored a phone")
	}
	f.fail = nil
	if u, err := s.Phone(ctx, app, "o-2", "code-2"); err != nil || u.Phone == nil {
		t.Errorf("retry after a failure = %+v, %v", u, err)
	}
}

// An uploaded avatar that the user replaces is removed by the sweep once
// its grace has passed; the one in use is not, nor one set again.
func TestReplacedAvatarIsSweptAfterItsGrace(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t)
	now := time.Now()
	s.Now = func() time.Time { return now }
	first := append(append([]byte(nil), pngImage...), "first"...)
	second := append(append([]byte(nil), pngImage...), "second"...)
	const base = "https://gw.example/wx/avatar/"
	upload := func(img []byte) {
		t.Helper()
		if _, err := s.Update(ctx, app, openid, Change{AvatarImage: img, AvatarBase: base}, false); err != nil {
			t.Fatal(err)
		}
	}
	upload(first)
	upload(second)
	// A URL from the platform replaces the second image too; then the
	// second comes back: it must stay.
	if _, err := s.Update(ctx, app, openid, Change{AvatarURL: ptr("https://thirdwx.qlogo.cn/x/132")}, false); err != nil {
		t.Fatal(err)
	}
	upload(second)

	stats, err := s.Users.Sweep(ctx, now.Add(avatar.ReplacedGrace+time.Hour), store.SweepPolicy{Interval: time.Hour})
	if err != nil || stats.Avatars != 1 {
		t.Fatalf("sweep: %+v, %v; want the first image removed", stats, err)
	}
	if _, _, err := s.Avatars.Load(ctx, avatar.ID(app.AppID, openid, first)); !errors.Is(err, avatar.ErrNotFound) {
		t.Errorf("the replaced image is still stored: %v", err)
	}
	if _, _, err := s.Avatars.Load(ctx, avatar.ID(app.AppID, openid, second)); err != nil {
		t.Errorf("the image in use was removed: %v", err)
	}
}
