package node

import (
	"context"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/wxauth/caddy-wxauth/internal/metrics"
	"github.com/wxauth/caddy-wxauth/internal/store"
)

// A node knows the revocations in storage when it starts, learns new ones
// at its next sync, and stops its background work when told.
func TestNodeSyncsAndStops(t *testing.T) {
	ctx := context.Background()
	records := store.NewStore(&certmagic.FileStorage{Path: t.TempDir()})
	if err := records.SaveRevocation(ctx, &store.Revocation{SessionID: "before", Until: time.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	n, err := Start(Settings{RevocationSync: 10 * time.Millisecond, SweepInterval: time.Hour}, records, zap.NewNop(), metrics.Get())
	if err != nil {
		t.Fatal(err)
	}
	if !n.Revocations.Revoked("before") {
		t.Error("a revocation in storage before the start is not known")
	}
	if err := records.SaveRevocation(ctx, &store.Revocation{SessionID: "later", Until: time.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); !n.Revocations.Revoked("later"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the background sync never learned the revocation")
		}
	}
	stopped := make(chan struct{})
	go func() { n.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not end the background work")
	}
}
