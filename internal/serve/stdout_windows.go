//go:build windows

package serve

import (
	"io"
	"os"

	"golang.org/x/sys/windows"
)

// claimStdout makes the protocol the only thing that can reach the real
// stdout. On Windows there is no descriptor 1 to move: the protocol keeps
// the original stdout handle, and both os.Stdout and the process's
// standard output handle (what a child or a stray WriteFile would use) are
// pointed at stderr, so a stray print lands in the log. Any writer other
// than os.Stdout is returned as is.
func claimStdout(stdout io.Writer) (io.Writer, error) {
	f, ok := stdout.(*os.File)
	if !ok || f != os.Stdout {
		return stdout, nil
	}
	// A failure leaves the handle as it was; os.Stdout is redirected all the same.
	_ = windows.SetStdHandle(windows.STD_OUTPUT_HANDLE, windows.Handle(os.Stderr.Fd()))
	os.Stdout = os.Stderr
	return f, nil
}
