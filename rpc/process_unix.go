//go:build !windows

package rpc

import (
	"errors"
	"syscall"
)

// processAlive reports whether pid exists (signal 0 is delivered or denied).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
