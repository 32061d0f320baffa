//go:build !windows

package serve

import (
	"fmt"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// claimStdout makes the protocol the only thing that can reach the real
// stdout. When stdout is the process's fd 1, it moves the stream to a
// private descriptor, points fd 1 at stderr and sets os.Stdout to
// os.Stderr, so a stray fmt.Println (ours or a dependency's) lands in the
// log instead of corrupting a frame. Any other writer is returned as is.
func claimStdout(stdout io.Writer) (io.Writer, error) {
	f, ok := stdout.(*os.File)
	if !ok || f.Fd() != 1 {
		return stdout, nil
	}
	fd, err := unix.Dup(1)
	if err != nil {
		return nil, fmt.Errorf("duplicate stdout: %w", err)
	}
	syscall.CloseOnExec(fd)
	if err := unix.Dup2(2, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("point stdout at stderr: %w", err)
	}
	os.Stdout = os.Stderr
	return os.NewFile(uintptr(fd), "protocol"), nil
}
