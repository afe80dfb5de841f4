package e2etest

import "syscall"

// procAttr has the kernel kill a Caddy process if the test binary dies without
// running its cleanups (a panic, the -timeout alarm), so none outlives
// the tests.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
