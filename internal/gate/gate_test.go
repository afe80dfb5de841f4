package gate

import (
	"errors"
	"testing"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/identity"
	"github.com/wxauth/caddy-wxauth/internal/metrics"
	"github.com/wxauth/caddy-wxauth/internal/store"
	"github.com/wxauth/caddy-wxauth/internal/token"
)

func newGate(t *testing.T) (*Gate, *token.Codec) {
	t.Helper()
	codec, err := token.NewHS256Codec([]byte("0123456789abcdef0123456789abcdef-gate-test"))
	if err != nil {
		t.Fatal(err)
	}
	cache, err := token.NewCache[*Verified](1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Close)
	return &Gate{
		Codec:       codec,
		Cache:       cache,
		Revocations: store.NewRevocations(),
		Known:       func(appid string) bool { return appid == "wxknown" },
		Metrics:     metrics.Get(),
	}, codec
}

var who = identity.Identity{SessionID: "s1", AppID: "wxknown", OpenID: "o1", Source: "wechat-miniprogram", Phone: "13800138000"}

func TestCheck(t *testing.T) {
	g, codec := newGate(t)
	prepared := 0
	g.Prepare = func(v *Verified) { prepared++; v.Extra = v.Identity.OpenID }
	now := time.Now()
	raw, _, err := codec.Issue(who, now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	v, err := g.Check(raw, now)
	if err != nil || v.Identity != who || v.Extra != "o1" {
		t.Fatalf("Check = %+v, %v", v, err)
	}
	g.Cache.Wait() // ristretto admits entries asynchronously
	again, err := g.Check(raw, now)
	if err != nil || again != v || prepared != 1 {
		t.Fatalf("a second Check did not come from the cache (prepared %d times)", prepared)
	}
	h := make(map[string][]string)
	v.Headers.Apply(h)
	if _, ok := h["X-Wx-Phone"]; ok {
		t.Error("the phone number is forwarded without ForwardPhone")
	}

	if _, err := g.Check(raw, now.Add(2*time.Minute)); !errors.Is(err, ErrExpired) {
		t.Errorf("after expiry: %v, want ErrExpired", err)
	}
	other := who
	other.AppID = "wxremoved"
	removed, _, _ := codec.Issue(other, now, time.Minute)
	for name, tok := range map[string]string{"garbage": "x.y.z", "removed app": removed, "empty": ""} {
		if _, err := g.Check(tok, now); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	g.Revocations.Add("s1", now.Add(time.Hour))
	if _, err := g.Check(raw, now); !errors.Is(err, ErrRevoked) {
		t.Errorf("a revoked session's cached token: %v, want ErrRevoked", err)
	}
}
