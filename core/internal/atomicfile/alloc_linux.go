package atomicfile

import (
	"errors"
	"os"
	"syscall"
)

// allocate gives f size bytes of disk space: fallocate, or zeros where the
// file system does not support it.
func allocate(f *os.File, size int64) error {
	err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS) {
		return zeroFill(f, size)
	}
	return err
}
