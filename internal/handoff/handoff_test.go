package handoff

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/wxauth/caddy-wxauth/internal/identity"
	"github.com/wxauth/caddy-wxauth/internal/login"
	"github.com/wxauth/caddy-wxauth/internal/platform"
	"github.com/wxauth/caddy-wxauth/internal/store"
	"github.com/wxauth/caddy-wxauth/internal/token"
)

var app = platform.App{AppID: "wxhandoff0000001", Kind: platform.WeChat}

func newService(t *testing.T, now *time.Time) *Service {
	t.Helper()
	codec, err := token.NewHS256Codec([]byte("0123456789abcdef0123456789abcdef-handoff"))
	if err != nil {
		t.Fatal(err)
	}
	records := store.NewStore(&certmagic.FileStorage{Path: t.TempDir()})
	clock := func() time.Time { return *now }
	logins := &login.Service{Store: records, Codec: codec, AccessTTL: time.Hour, RefreshTTL: 24 * time.Hour, Now: clock}
	return &Service{Store: records, Logins: logins, Now: clock,
		Apps: func(appid string) (platform.App, bool) { return app, appid == app.AppID }}
}

// A ticket is good once, for 60 seconds, and starts a session of its user
// with what is stored of them.
func TestTicketOnceWithinItsLife(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 12, 30, 0, 0, time.UTC)
	s := newService(t, &now)
	if _, err := s.Store.UpdateUser(ctx, app.AppID, "o-amy", func(u *store.User) error {
		u.UnionID, u.Profile = "u-amy", &store.Profile{Nickname: "Amy"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	id := identity.Identity{AppID: app.AppID, OpenID: "o-amy", SessionID: "s1", Source: "wechat-miniprogram"}

	ticket, expires, err := s.Issue(ctx, id)
	if err != nil || !expires.Equal(now.Add(TicketLifetime)) {
		t.Fatalf("Issue: %v, expires %v", err, expires)
	}
	res, err := s.Redeem(ctx, ticket)
	if err != nil {
		t.Fatal(err)
	}
	if res.User.OpenID != "o-amy" || res.User.UnionID != "u-amy" || res.User.Profile == nil || res.Session.Source != "wechat-miniprogram" {
		t.Errorf("the handed-off session: user %+v, source %s", res.User, res.Session.Source)
	}
	if res.Session.ID == id.SessionID {
		t.Error("the web page got the mini program's own session")
	}
	if _, err := s.Redeem(ctx, ticket); !errors.Is(err, ErrUnknownTicket) {
		t.Errorf("a second redeem: %v, want ErrUnknownTicket", err)
	}

	late, _, err := s.Issue(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(TicketLifetime)
	if _, err := s.Redeem(ctx, late); !errors.Is(err, ErrUnknownTicket) {
		t.Errorf("a redeem at the ticket's expiry: %v, want ErrUnknownTicket", err)
	}
	for _, bad := range []string{"", "short", ticket + "x"} {
		if _, err := s.Redeem(ctx, bad); !errors.Is(err, ErrUnknownTicket) {
			t.Errorf("Redeem(%q): %v", bad, err)
		}
	}
}
