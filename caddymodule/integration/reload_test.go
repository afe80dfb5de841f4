package integration

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/wxauth/caddy-wxauth/internal/store"
)

// sessionIDOf reads the session id out of an access token (its sid claim),
// as another node would know it.
func sessionIDOf(t *testing.T, accessToken string) string {
	t.Helper()
	parts := strings.Split(accessToken, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.SID == "" {
		t.Fatalf("no sid in the token: %v", err)
	}
	return claims.SID
}

// TestReloadUsesTheStorageOfTheNewConfig: what outlives a config reload
// (the node's revocation sync and sweep) uses the storage of the config
// in force. The storage here refuses every call once its config is
// cleaned up, as Redis storage does; a logout written to storage by
// another node after the reload is enforced here within revocation_sync.
func TestReloadUsesTheStorageOfTheNewConfig(t *testing.T) {
	cfg := gatewayConfig{Storage: "wxauth_test_closing", Block: defaultBlock + "\t\trevocation_sync 100ms\n\t\tsweep_interval 1s\n"}
	g := startGateway(t, cfg)
	amy := g.login("reload-amy")

	// The reload: the same node settings (so the node's state is handed
	// over), a change elsewhere in the site so that Caddy loads it.
	cfg.Extra = "\theader X-Reloaded yes\n"
	g.load(cfg)
	refusedBefore := refusedByClosed()

	// Another node logs amy out: it writes the revocation to storage.
	other := store.NewStore(&certmagic.FileStorage{Path: g.DataDir})
	now := time.Now()
	if err := other.SaveRevocation(context.Background(), &store.Revocation{SessionID: sessionIDOf(t, amy.AccessToken), Until: now.Add(time.Hour)}, now); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for g.get("/", amy.AccessToken).Status != http.StatusUnauthorized {
		if time.Now().After(deadline) {
			t.Fatalf("5s after the reload, a logout made elsewhere is not enforced here; logs:\n%s", tail(g.Logs(), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // more syncs, and a sweep
	if n := refusedByClosed() - refusedBefore; n != 0 {
		t.Errorf("%d calls went to the storage of the cleaned-up config after the reload", n)
	}
	if logs := g.Logs(); strings.Contains(logs, "storage is closed") {
		t.Errorf("the node used a closed storage:\n%s", tail(logs, 20))
	}
	// The node still logs in and refreshes on the new storage.
	bob := g.login("reload-bob")
	g.refresh(bob.RefreshToken).Session(t, "refresh after the reload")
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
