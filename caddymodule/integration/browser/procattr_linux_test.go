package browser

import "syscall"

// procAttr has the kernel kill Caddy if the test binary dies without
// running its cleanups (a panic, the -timeout alarm), so no Caddy outlives
// the tests.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
