package e2etest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// InCI reports whether the tests run under CI (CI=true, as CI runners set
// it), where a missing tool (a browser, redis-server, node) is a failure
// rather than a reason to skip.
func InCI() bool {
	ci, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && ci
}

// RepoRoot is the folder of go.mod: from `go env GOMOD`, or else the
// folder three up from this file's.
func RepoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if gomod := strings.TrimSpace(string(out)); err == nil && gomod != "" && gomod != os.DevNull {
		return filepath.Dir(gomod), nil
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("go env GOMOD failed (%v) and runtime.Caller gave nothing", err)
	}
	return filepath.Join(filepath.Dir(file), "..", "..", ".."), nil
}

// BuildCaddy builds cmd/caddy (a full Caddy with wxauth) into dir and
// returns the binary's path. Test packages that run Caddy as processes call
// it once, in TestMain.
func BuildCaddy(dir string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", fmt.Errorf("finding the module root: %w", err)
	}
	bin := filepath.Join(dir, "caddy")
	build := exec.Command("go", "build", "-o", bin, "github.com/wxauth/caddy-wxauth/cmd/caddy")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building cmd/caddy: %v\n%s", err, out)
	}
	return bin, nil
}

// Process is one `caddy run` of a Caddyfile, in a folder of its own.
type Process struct {
	// OutPath holds the process's stdout and stderr.
	OutPath string

	cmd      *exec.Cmd
	exited   chan struct{}
	waitErr  error
	stopOnce sync.Once
}

// StartProcess runs `bin run --config configPath --adapter caddyfile` in
// dir, with the environment plus env, its output in dir/output.log. Caddy's
// own files (instance id, autosave) stay in dir, out of the home folder.
func StartProcess(bin, dir, configPath string, env ...string) (*Process, error) {
	p := &Process{OutPath: filepath.Join(dir, "output.log"), exited: make(chan struct{})}
	out, err := os.Create(p.OutPath)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, "run", "--config", configPath, "--adapter", "caddyfile")
	p.cmd.Dir = dir
	p.cmd.Env = append(append(os.Environ(),
		"XDG_DATA_HOME="+filepath.Join(dir, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
	), env...)
	p.cmd.Stdout = out
	p.cmd.Stderr = out
	p.cmd.SysProcAttr = procAttr()
	if err := p.cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("starting caddy: %w", err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		out.Close()
		close(p.exited)
	}()
	return p, nil
}

// Exited is closed when the process has ended; Err then says how.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is how the process ended, once Exited is closed.
func (p *Process) Err() error { return p.waitErr }

// Stop sends SIGTERM and waits for the process to end, killing it after
// 10s; it reports whether it had to. Calls after the first do nothing.
func (p *Process) Stop() (killed bool) {
	p.stopOnce.Do(func() {
		select {
		case <-p.exited:
			return
		default:
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			_ = p.cmd.Process.Kill()
		}
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			killed = true
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return killed
}
