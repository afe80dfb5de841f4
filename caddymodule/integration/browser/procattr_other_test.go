//go:build !linux

package browser

import "syscall"

// procAttr: elsewhere, Caddy is stopped by the tests' cleanups only.
func procAttr() *syscall.SysProcAttr { return nil }
