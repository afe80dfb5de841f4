package e2etest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// SharedEnv overrides where the shared folder is (by default
// <repo root>/../shared, as CI lays it out).
const SharedEnv = "WXAUTH_SHARED"

// RedisModulePath is the Caddy storage module for Redis that
// BuildCaddyWithRedis builds in.
const RedisModulePath = "github.com/pberkel/caddy-storage-redis"

// ErrNoRedisModule is BuildCaddyWithRedis's answer when the shared
// folder has no thirdparty/caddy-storage-redis: a reason to skip, except
// under CI.
var ErrNoRedisModule = errors.New("no thirdparty/caddy-storage-redis in the shared folder")

// SharedDir is $WXAUTH_SHARED, or else the folder "shared" beside the
// repository's root.
func SharedDir() (string, error) {
	if dir := os.Getenv(SharedEnv); dir != "" {
		return filepath.Abs(dir)
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Abs(filepath.Join(root, "..", "shared"))
}

// redisBuildMain is cmd/caddy's main.go with the Redis storage module.
const redisBuildMain = `// Command caddy is cmd/caddy plus caddy-storage-redis, for the tests.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/pberkel/caddy-storage-redis"
	_ "github.com/wxauth/caddy-wxauth"
)

func main() {
	caddycmd.Main()
}
`

// RedisBuild says how BuildCaddyWithRedis went.
type RedisBuild struct {
	Bin string // the binary
	// Tidy and Build are how long `go mod tidy` and `go build` took.
	Tidy, Build time.Duration
	// Bumped lists the modules whose version in the build differs from
	// the project's go.mod ("path old => new"): the Redis module asked for
	// newer ones. Empty, the build runs the project's own versions.
	Bumped []string
}

// BuildCaddyWithRedis builds, into dir, a Caddy with the standard modules,
// wxauth (this checkout) and caddy-storage-redis (the unchanged source in
// <shared>/thirdparty/caddy-storage-redis), as
// `xcaddy build --with github.com/pberkel/caddy-storage-redis` would. The
// project's go.mod knows nothing of it: a scratch module in dir requires
// both, with replace lines to the checkout and to the shared copy, and
// `go mod tidy` resolves the rest from the module cache or the proxy
// (seeded with both go.sum files). With a warm Go build cache only the
// main package and the link are redone.
func BuildCaddyWithRedis(dir string) (*RedisBuild, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, fmt.Errorf("finding the module root: %w", err)
	}
	mod, err := WriteRedisModule(dir)
	if err != nil {
		return nil, err
	}
	b := &RedisBuild{Bin: filepath.Join(dir, "caddy-redis")}
	env := scratchEnv()
	start := time.Now()
	if out, err := goCommand(mod, env, "mod", "tidy"); err != nil {
		return nil, fmt.Errorf("go mod tidy in the scratch module %s: %v\n%s", mod, err, out)
	}
	b.Tidy = time.Since(start)
	start = time.Now()
	if out, err := goCommand(mod, env, "build", "-o", b.Bin, "."); err != nil {
		return nil, fmt.Errorf("building Caddy with %s in %s: %v\n%s", RedisModulePath, mod, err, out)
	}
	b.Build = time.Since(start)

	if b.Bumped, err = bumpedModules(root, mod, env); err != nil {
		return nil, err
	}
	return b, nil
}

// WriteRedisModule writes, into dir/redis-caddy, the scratch module of
// BuildCaddyWithRedis and returns its folder: it requires this checkout
// and caddy-storage-redis (the shared copy) through replace lines, so
// that go commands run in it can also test this checkout's packages with
// the Redis module linked in (bench/storage.sh does, with -overlay).
func WriteRedisModule(dir string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", fmt.Errorf("finding the module root: %w", err)
	}
	shared, err := SharedDir()
	if err != nil {
		return "", fmt.Errorf("finding the shared folder: %w", err)
	}
	redisDir := filepath.Join(shared, "thirdparty", "caddy-storage-redis")
	if _, err := os.Stat(filepath.Join(redisDir, "go.mod")); err != nil {
		return "", fmt.Errorf("%w (%v; set %s to the shared folder)", ErrNoRedisModule, err, SharedEnv)
	}

	mod := filepath.Join(dir, "redis-caddy")
	if err := os.MkdirAll(mod, 0o755); err != nil {
		return "", err
	}
	gomod := fmt.Sprintf(`module caddy-wxauth-test/redis-caddy

go 1.26.0

require (
	github.com/wxauth/caddy-wxauth v0.0.0
	%s v0.0.0
)

replace github.com/wxauth/caddy-wxauth => %q

replace %s => %q
`, RedisModulePath, root, RedisModulePath, redisDir)
	var sums []byte
	for _, f := range []string{filepath.Join(root, "go.sum"), filepath.Join(redisDir, "go.sum")} {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		sums = append(sums, b...)
	}
	for name, content := range map[string][]byte{
		"go.mod":  []byte(gomod),
		"go.sum":  sums,
		"main.go": []byte(redisBuildMain),
	} {
		if err := os.WriteFile(filepath.Join(mod, name), content, 0o644); err != nil {
			return "", err
		}
	}
	return mod, nil
}

// scratchEnv is the environment for the go commands in the scratch
// module: no workspace, and -mod=mod whatever GOFLAGS says (CI sets
// -mod=readonly, which suits the project but not a go.mod that tidy
// writes).
func scratchEnv() []string {
	var flags []string
	for _, f := range strings.Fields(os.Getenv("GOFLAGS")) {
		if !strings.HasPrefix(f, "-mod=") {
			flags = append(flags, f)
		}
	}
	flags = append(flags, "-mod=mod")
	return append(os.Environ(), "GOWORK=off", "GOFLAGS="+strings.Join(flags, " "))
}

func goCommand(dir string, env []string, args ...string) ([]byte, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = env
	return cmd.CombinedOutput()
}

// bumpedModules compares the versions the scratch go.mod requires (after
// tidy, every module the build uses) with those the project's requires.
func bumpedModules(root, mod string, env []string) ([]string, error) {
	requires := func(dir string) (map[string]string, error) {
		out, err := goCommand(dir, env, "mod", "edit", "-json")
		if err != nil {
			return nil, fmt.Errorf("go mod edit -json in %s: %v\n%s", dir, err, out)
		}
		var m struct {
			Require []struct{ Path, Version string }
		}
		if err := json.Unmarshal(out, &m); err != nil {
			return nil, fmt.Errorf("go mod edit -json in %s: %v", dir, err)
		}
		versions := map[string]string{}
		for _, r := range m.Require {
			versions[r.Path] = r.Version
		}
		return versions, nil
	}
	project, err := requires(root)
	if err != nil {
		return nil, err
	}
	scratch, err := requires(mod)
	if err != nil {
		return nil, err
	}
	var bumped []string
	for path, v := range scratch {
		if old, ok := project[path]; ok && old != v {
			bumped = append(bumped, fmt.Sprintf("%s %s => %s", path, old, v))
		}
	}
	slices.Sort(bumped)
	return bumped, nil
}
