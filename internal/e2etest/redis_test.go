package e2etest

import (
	"errors"
	"path"
	"strconv"
	"strings"
	"testing"
)

// needRedis finds or starts a Redis for one test: skipped without one,
// except under CI.
func needRedis(t *testing.T) *Redis {
	t.Helper()
	r, err := FindRedis(t.TempDir())
	if err != nil {
		if errors.Is(err, ErrNoRedisServer) && !InCI() {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

// The RESP client reads every reply kind the tests use. Fails if a reply
// is misparsed, which would make the cluster tests' look at what Caddy
// stored in Redis wrong.
func TestRedisDo(t *testing.T) {
	r := needRedis(t)
	key := r.KeyPrefix(t) + "/k"

	if got, err := r.Do("SET", key, "a value\r\nwith a line break"); err != nil || got != "OK" {
		t.Fatalf("SET = %v, %v", got, err)
	}
	if got, err := r.Do("GET", key); err != nil || got != "a value\r\nwith a line break" {
		t.Fatalf("GET = %q, %v", got, err)
	}
	if got, err := r.Do("GET", key+"/missing"); err != nil || got != nil {
		t.Fatalf("GET of a missing key = %#v, %v; want nil", got, err)
	}
	if got, err := r.Do("EXISTS", key, key+"/missing"); err != nil || got != int64(1) {
		t.Fatalf("EXISTS = %#v, %v; want 1", got, err)
	}
	got, err := r.Do("KEYS", key+"*")
	if list, ok := got.([]any); err != nil || !ok || len(list) != 1 || list[0] != key {
		t.Fatalf("KEYS = %#v, %v; want [%q]", got, err, key)
	}
	if _, err := r.Do("NO-SUCH-COMMAND"); err == nil || !strings.Contains(err.Error(), "ERR") {
		t.Fatalf("an unknown command gave err %v, want Redis's ERR reply", err)
	}
	if got, err := r.Do("DEL", key); err != nil || got != int64(1) {
		t.Fatalf("DEL = %#v, %v", got, err)
	}
}

// RemoveStorage removes the keys under a prefix, the prefix's index and
// its entry in the index above, and nothing else.
func TestRedisRemoveStorage(t *testing.T) {
	r := needRedis(t)
	prefix, other := r.KeyPrefix(t), r.KeyPrefix(t)
	parent, name := path.Split(prefix)
	parent = strings.TrimSuffix(parent, "/")
	_, otherName := path.Split(other)
	// What caddy-storage-redis writes for a record prefix/x/y, and one of
	// another test beside it.
	for _, k := range []string{prefix + "/x/y", other + "/a", prefix + "-sibling/a"} {
		if _, err := r.Do("SET", k, "v"); err != nil {
			t.Fatal(err)
		}
	}
	for _, z := range [][3]string{{prefix + "/x", "0", "y"}, {prefix, "0", "x/"}, {parent, "0", name + "/"}, {parent, "0", otherName + "/"}} {
		if _, err := r.Do("ZADD", z[0], z[1], z[2]); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = r.RemoveStorage(other)
		_, _ = r.Do("DEL", prefix+"-sibling/a")
	})
	if err := r.RemoveStorage(prefix); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Do("EXISTS", prefix+"/x/y", prefix+"/x", prefix); err != nil || got != int64(0) {
		t.Fatalf("EXISTS of the prefix's keys after RemoveStorage = %v, %v; want 0", got, err)
	}
	if got, err := r.Do("EXISTS", other+"/a", prefix+"-sibling/a"); err != nil || got != int64(2) {
		t.Fatalf("EXISTS of the keys outside the prefix = %v, %v; want 2", got, err)
	}
	if got, err := r.Do("ZSCORE", parent, name+"/"); err != nil || got != nil {
		t.Fatalf("the index %s still has %s/ after RemoveStorage (%v, %v)", parent, name, got, err)
	}
	if got, err := r.Do("ZSCORE", parent, otherName+"/"); err != nil || got == nil {
		t.Fatalf("the index %s lost the other test's %s/ (%v, %v)", parent, otherName, got, err)
	}
	if err := r.RemoveStorage("bad*prefix"); err == nil {
		t.Error("RemoveStorage took a prefix with a glob character")
	}
}

// A Redis that the environment names but that does not answer is an error,
// not a reason to skip: CI sets it, and a dead one must fail the run.
func TestFindRedisEnvMustAnswer(t *testing.T) {
	t.Setenv(RedisAddrEnv, "127.0.0.1:"+strconv.Itoa(FreePort(t)))
	_, err := FindRedis(t.TempDir())
	if err == nil || errors.Is(err, ErrNoRedisServer) {
		t.Fatalf("FindRedis with %s naming a closed port: %v; want an error that is not ErrNoRedisServer", RedisAddrEnv, err)
	}
}

// Without redis-server and without the environment variable, FindRedis
// says so with ErrNoRedisServer, which the tests skip on outside CI.
func TestFindRedisWithoutServer(t *testing.T) {
	t.Setenv(RedisAddrEnv, "")
	t.Setenv("PATH", t.TempDir())
	_, err := FindRedis(t.TempDir())
	if !errors.Is(err, ErrNoRedisServer) {
		t.Fatalf("FindRedis without redis-server: %v; want ErrNoRedisServer", err)
	}
	if !strings.Contains(err.Error(), "apt-get install") {
		t.Errorf("the error gives no install hint: %v", err)
	}
}

// Key prefixes are unique per call and valid for caddy-storage-redis (no
// empty, "." or ".." segment).
func TestKeyPrefix(t *testing.T) {
	r := &Redis{}
	t.Run("a/../sub test", func(t *testing.T) {
		a, b := r.KeyPrefix(t), r.KeyPrefix(t)
		if a == b {
			t.Fatalf("two calls gave the same prefix %q", a)
		}
		for _, seg := range strings.Split(a, "/") {
			if seg == "" || seg == "." || seg == ".." || strings.ContainsAny(seg, " \t") {
				t.Fatalf("prefix %q has the segment %q", a, seg)
			}
		}
	})
}
