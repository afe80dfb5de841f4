package store

import (
	"fmt"
	"path"
	"testing"
	"time"
)

// No folder grows with the number of users or with an hour's traffic:
// 100k users (and as many codes in one hour) fill every folder they land
// in evenly, a few dozen entries each, where one folder would otherwise
// hold all 100k. At ten million users that is a few thousand.
func TestNoFolderHoldsEveryone(t *testing.T) {
	const n = 100_000
	hour := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	folders := map[string]map[string]int{"users": {}, "sessions": {}, "expiry": {}, "codes": {}}
	for i := range n {
		openid := fmt.Sprintf("o%07d", i)
		id, err := NewSessionID("wxapp", openid)
		if err != nil {
			t.Fatal(err)
		}
		folders["users"][path.Dir(userKey("wxapp", openid))]++
		// A user's sessions share a folder; the folders of users share
		// their parent.
		folders["sessions"][path.Dir(path.Dir(sessionKey(id, "wxapp", openid)))]++
		folders["expiry"][path.Dir(userExpiryKey(hour, "wxapp", openid))]++
		folders["codes"][path.Dir(shortKey(hour, codeName("login", "wxapp", openid)))]++
	}
	for kind, counts := range folders {
		biggest := 0
		for _, c := range counts {
			biggest = max(biggest, c)
		}
		if limit := 3 * n / len(counts); biggest > limit || len(counts) < 64 {
			t.Errorf("%s: %d folders, the biggest with %d entries (want at least 64 folders, none over %d)", kind, len(counts), biggest, limit)
		}
		t.Logf("%s: %d folders, at most %d of %d entries in one", kind, len(counts), biggest, n)
	}
}
