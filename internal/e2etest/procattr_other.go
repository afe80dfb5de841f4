//go:build !linux

package e2etest

import "syscall"

// procAttr: elsewhere, processes are stopped by the tests' cleanups only.
func procAttr() *syscall.SysProcAttr { return nil }
