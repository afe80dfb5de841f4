package node

import (
	"context"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/wxauth/caddy-wxauth/internal/metrics"
	"github.com/wxauth/caddy-wxauth/internal/storagetest"
	"github.com/wxauth/caddy-wxauth/internal/store"
)

// A node knows the revocations in storage when it starts, learns new ones
// at its next sync, and stops its background work when told.
func TestNodeSyncsAndStops(t *testing.T) {
	ctx := context.Background()
	records := store.NewStore(&certmagic.FileStorage{Path: t.TempDir()})
	if err := records.SaveRevocation(ctx, &store.Revocation{SessionID: "before", Until: time.Now().Add(time.Minute)}, time.Now()); err != nil {
		t.Fatal(err)
	}
	n, err := Start(Settings{RevocationSync: 10 * time.Millisecond, SweepInterval: time.Hour}, records, zap.NewNop(), metrics.Get())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Use(records)()
	if !n.Revocations.Revoked("before") {
		t.Error("a revocation in storage before the start is not known")
	}
	if err := records.SaveRevocation(ctx, &store.Revocation{SessionID: "later", Until: time.Now().Add(time.Minute)}, time.Now()); err != nil {
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

// A reload hands the Node to the new configuration, whose storage it then
// uses; the old configuration's storage is closed once it is cleaned up,
// and the Node never calls it again.
func TestNodeUsesTheStorageOfTheConfigInForce(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	first := storagetest.NewClosable(&certmagic.FileStorage{Path: dir})
	second := storagetest.NewClosable(&certmagic.FileStorage{Path: dir})
	recordsA, recordsB := store.NewStore(first), store.NewStore(second)

	n, err := Start(Settings{RevocationSync: 5 * time.Millisecond, SweepInterval: 5 * time.Millisecond}, recordsA, zap.NewNop(), metrics.Get())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	releaseA := n.Use(recordsA)
	// The reload: the new configuration attaches, then the old one is
	// cleaned up and its storage closed.
	releaseB := n.Use(recordsB)
	defer releaseB()
	releaseA()
	first.Close()
	time.Sleep(20 * time.Millisecond) // a loop may have been mid-call on the old storage
	refusedBefore := first.Refused()

	if err := recordsB.SaveRevocation(ctx, &store.Revocation{SessionID: "after-reload", Until: time.Now().Add(time.Minute)}, time.Now()); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); !n.Revocations.Revoked("after-reload"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("after the reload the node never learned a new revocation")
		}
	}
	time.Sleep(30 * time.Millisecond) // several more syncs and sweeps
	if got := first.Refused() - refusedBefore; got != 0 {
		t.Errorf("the node called the cleaned-up storage %d times after the reload", got)
	}
}
