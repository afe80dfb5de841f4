package e2etest

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RedisAddrEnv names a Redis that the tests use instead of starting their
// own (host:port, no auth). CI sets it: .ci/run starts one redis-server
// for the whole run.
const RedisAddrEnv = "WXAUTH_REDIS_ADDR"

// RedisInstallHint is what to do when there is no Redis to test against.
const RedisInstallHint = "install redis-server (apt-get install -y --no-install-recommends redis-server), or set " + RedisAddrEnv + " to a running Redis (host:port)"

// ErrNoRedisServer is FindRedis's answer when RedisAddrEnv is not set
// and there is no redis-server on PATH: a reason to skip, except under CI.
var ErrNoRedisServer = errors.New("no redis-server on PATH and " + RedisAddrEnv + " not set")

// Redis is a Redis server the tests can use: the one RedisAddrEnv names,
// or a redis-server process FindRedis started (no persistence, in a
// folder of its own, stopped by Stop).
type Redis struct {
	// Addr is host:port.
	Addr string
	// LogPath is the started server's output; "" for RedisAddrEnv's.
	LogPath string

	cmd     *exec.Cmd
	exited  chan struct{}
	release func() // the port claim

	bin, dir string // how it was started, for Restart
	port     int
}

// FindRedis returns the Redis at $WXAUTH_REDIS_ADDR, checking that it
// answers PING, or else starts redis-server on a free port of 127.0.0.1,
// without persistence (--save "" --appendonly no), with dir as its
// working folder. Without either it returns an error that wraps
// ErrNoRedisServer. Call Stop when done.
func FindRedis(dir string) (*Redis, error) {
	if addr := os.Getenv(RedisAddrEnv); addr != "" {
		r := &Redis{Addr: addr}
		if err := r.Ping(); err != nil {
			return nil, fmt.Errorf("%s=%s: %w", RedisAddrEnv, addr, err)
		}
		return r, nil
	}
	return StartRedis(dir)
}

// StartRedis starts a redis-server of the test's own, as FindRedis does
// without RedisAddrEnv: for tests that stop and restart it.
func StartRedis(dir string) (*Redis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrNoRedisServer, RedisInstallHint)
	}
	// A port can be taken between the claim and redis-server's bind (by a
	// process that does not claim ports); then it exits, and another port
	// is tried.
	var lastErr error
	for range 3 {
		port, release, err := ClaimPort()
		if err != nil {
			return nil, err
		}
		r := &Redis{Addr: "127.0.0.1:" + strconv.Itoa(port), release: release, bin: bin, dir: dir, port: port}
		if err = r.start(); err == nil {
			return r, nil
		}
		release()
		lastErr = err
	}
	return nil, lastErr
}

// Restart saves the data (SAVE: an RDB file in the server's folder),
// stops the server and starts it again on the same port, where it loads
// the data: an outage that loses nothing. The port stays claimed
// meanwhile. Only for a server StartRedis started.
func (r *Redis) Restart(down func()) error {
	if r.cmd == nil {
		return errors.New("Restart: not a redis-server of this test")
	}
	if _, err := r.Do("SAVE"); err != nil {
		return fmt.Errorf("SAVE before the restart: %w", err)
	}
	release := r.release
	r.release = nil
	r.Stop()
	r.release = release
	if down != nil {
		down()
	}
	return r.start()
}

func (r *Redis) start() error {
	bin, dir, port := r.bin, r.dir, r.port
	r.LogPath = filepath.Join(dir, fmt.Sprintf("redis-%d.log", port))
	r.exited = make(chan struct{})
	out, err := os.OpenFile(r.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	r.cmd = exec.Command(bin,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--daemonize", "no",
	)
	r.cmd.Dir = dir
	r.cmd.Stdout = out
	r.cmd.Stderr = out
	r.cmd.SysProcAttr = procAttr()
	if err := r.cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("starting redis-server: %w", err)
	}
	exited := r.exited
	cmd := r.cmd
	go func() {
		_ = cmd.Wait()
		out.Close()
		close(exited)
	}()

	deadline := time.Now().Add(10 * time.Second)
	for {
		err := r.Ping()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(r.LogPath)
			return fmt.Errorf("redis-server on port %d exited before answering PING: %s", port, strings.TrimSpace(string(log)))
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server on port %d does not answer PING after 10s: %v", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends a redis-server that FindRedis started (SIGTERM, then SIGKILL
// after 5s); a Redis named by RedisAddrEnv is left alone.
func (r *Redis) Stop() {
	if r.cmd == nil {
		return
	}
	select {
	case <-r.exited:
	default:
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(5 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.exited
		}
	}
	if r.release != nil {
		r.release()
		r.release = nil
	}
}

// Ping checks that the server answers PING with PONG.
func (r *Redis) Ping() error {
	reply, err := r.Do("PING")
	if err != nil {
		return err
	}
	if reply != "PONG" {
		return fmt.Errorf("PING answered %v, want PONG", reply)
	}
	return nil
}

// KeyPrefix is a key_prefix (of caddy-storage-redis) that no other test
// uses, on this run or an earlier one against the same Redis, so tests on
// one Redis run in parallel without seeing each other's records.
func (r *Redis) KeyPrefix(t testing.TB) string {
	name := strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			return c
		}
		return '-'
	}, t.Name())
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "wxauth-test/" + name + "-" + hex.EncodeToString(b)
}

// RemoveStorage removes what caddy-storage-redis stored under the key
// prefix prefix, as a test's cleanup: every key under it, the prefix's own
// directory index, and its entries in the indexes above it (the module
// indexes each folder in a sorted set named after it, up to the top). The
// prefix must have no glob characters (KeyPrefix's have none).
func (r *Redis) RemoveStorage(prefix string) error {
	if strings.ContainsAny(prefix, "*?[]\\") {
		return fmt.Errorf("key prefix %q has glob characters", prefix)
	}
	reply, err := r.Do("KEYS", prefix+"/*")
	if err != nil {
		return err
	}
	keys := []string{prefix}
	list, _ := reply.([]any)
	for _, k := range list {
		if s, ok := k.(string); ok {
			keys = append(keys, s)
		}
	}
	for len(keys) > 0 {
		batch := keys[:min(len(keys), 500)]
		keys = keys[len(batch):]
		if _, err := r.Do(append([]string{"DEL"}, batch...)...); err != nil {
			return err
		}
	}
	// Redis drops a sorted set with its last member: go up while the
	// folder just removed was its parent's last entry.
	for child := prefix; ; {
		parent := path.Dir(child)
		if parent == "." || parent == "/" {
			return nil
		}
		if _, err := r.Do("ZREM", parent, path.Base(child)+"/"); err != nil {
			return fmt.Errorf("removing %s from the index %s: %w", path.Base(child), parent, err)
		}
		if n, err := r.Do("EXISTS", parent); err != nil || n != int64(0) {
			return err
		}
		child = parent
	}
}

// Do sends one command on a new connection and returns the reply: a
// string (simple or bulk), nil (a nil bulk string or array), an int64,
// or a []any; an error reply is returned as an error. It speaks just
// enough RESP2 for tests to look at what a Caddy stored.
func (r *Redis) Do(args ...string) (any, error) {
	conn, err := net.DialTimeout("tcp", r.Addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	var cmd strings.Builder
	fmt.Fprintf(&cmd, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&cmd, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(conn, cmd.String()); err != nil {
		return nil, err
	}
	return readReply(bufio.NewReader(conn))
}

// redisError is an error reply ("-ERR ...").
type redisError string

func (e redisError) Error() string { return "redis: " + string(e) }

func readReply(br *bufio.Reader) (any, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("redis: empty reply line")
	}
	kind, rest := line[0], line[1:]
	switch kind {
	case '+':
		return rest, nil
	case '-':
		return nil, redisError(rest)
	case ':':
		return strconv.ParseInt(rest, 10, 64)
	case '$':
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 {
			return nil, err // $-1: nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(br, b); err != nil {
			return nil, err
		}
		return string(b[:n]), nil
	case '*':
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 {
			return nil, err // *-1: nil
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = readReply(br); err != nil {
				var re redisError
				if !errors.As(err, &re) {
					return nil, err
				}
				out[i] = err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("redis: unexpected reply %q", line)
}
