package login

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
	"github.com/wxauth/caddy-wxauth/internal/platform"
	"github.com/wxauth/caddy-wxauth/internal/store"
	"github.com/wxauth/caddy-wxauth/internal/token"
)

// BenchmarkLoginSandbox is the whole cost of a first login, as /wx/login
// pays it in sandbox mode: the code exchange (an in-process HTTP round trip
// to the fake platform, JSON both ways), the user record written under its
// lock, the code record, the session record, a refresh token and an Ed25519
// access token (the default algorithm). Every iteration posts a code never
// seen before, so every one is a new user and a real exchange; storage is
// Caddy's file storage in a temporary directory.
func BenchmarkLoginSandbox(b *testing.B) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	app := platform.App{AppID: "wx8f3b2c1d0e9a7b6c", Kind: platform.WeChat}
	s := &Service{
		Exchanger:  &platform.Client{HTTP: &http.Client{Transport: fakeplatform.Sandbox().Transport()}},
		Store:      store.NewStore(&certmagic.FileStorage{Path: b.TempDir()}),
		Codec:      token.NewEd25519Codec(key),
		AccessTTL:  2 * time.Hour,
		RefreshTTL: 720 * time.Hour,
		Apps: func(appid string) (platform.App, bool) {
			return app, appid == app.AppID
		},
	}
	ctx := context.Background()
	var res *Result
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		// A login code is 32 characters; each one is a different user.
		code := fmt.Sprintf("0a1b2c3d4e5f%020d", i)
		i++
		if res, err = s.Login(ctx, app, code); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	last := fmt.Sprintf("0a1b2c3d4e5f%020d", i-1)
	if res.User.OpenID != fakeplatform.OpenID(app.AppID, last) || res.AccessToken == "" || res.RefreshToken == "" {
		b.Fatalf("unexpected login result: user %v, tokens %d/%d bytes", res.User, len(res.AccessToken), len(res.RefreshToken))
	}
	if _, _, err := s.Codec.Verify(res.AccessToken, time.Now()); err != nil {
		b.Fatalf("issued access token does not verify: %v", err)
	}
}
