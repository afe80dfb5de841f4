//go:build !linux

package cluster

import "syscall"

// procAttr: elsewhere, nodes are stopped by the tests' cleanups only.
func procAttr() *syscall.SysProcAttr { return nil }
