//go:build linux || darwin || freebsd || netbsd || openbsd

package cli

import (
	"bufio"
	"io"
	"os"
	"syscall"
	"unsafe"
)

// terminalWidth returns the column count of the terminal w writes to, and
// whether w is a terminal at all.
func terminalWidth(w io.Writer) (int, bool) {
	f, ok := w.(*os.File)
	if !ok {
		return 0, false
	}
	var ws struct{ Row, Col, X, Y uint16 }
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), uintptr(syscall.TIOCGWINSZ), uintptr(unsafe.Pointer(&ws))); e != 0 {
		return 0, false
	}
	return int(ws.Col), true
}

// isTerminal reports whether r reads from a terminal.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	var t syscall.Termios
	_, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), uintptr(ioctlGetTermios), uintptr(unsafe.Pointer(&t)))
	return e == 0
}

// readSecretLine reads one line from r. When r is a terminal, echo is
// turned off while the user types, so the secret never shows on screen.
func readSecretLine(r io.Reader) (string, error) {
	f, ok := r.(*os.File)
	if ok && isTerminal(r) {
		var old syscall.Termios
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), uintptr(ioctlGetTermios), uintptr(unsafe.Pointer(&old))); e == 0 {
			quiet := old
			quiet.Lflag &^= syscall.ECHO
			quiet.Lflag |= syscall.ICANON
			syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), uintptr(ioctlSetTermios), uintptr(unsafe.Pointer(&quiet)))
			defer syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), uintptr(ioctlSetTermios), uintptr(unsafe.Pointer(&old)))
		}
	}
	return readLine(r)
}

// readLine reads one line without buffering past it, so a later read of r
// sees the rest.
func readLine(r io.Reader) (string, error) {
	if br, ok := r.(*bufio.Reader); ok {
		s, err := br.ReadString('\n')
		if err == io.EOF && s != "" {
			err = nil
		}
		return trimLine(s), err
	}
	var out []byte
	b := make([]byte, 1)
	for {
		n, err := r.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				return trimLine(string(out)), nil
			}
			out = append(out, b[0])
		}
		if err != nil {
			if err == io.EOF && len(out) > 0 {
				return trimLine(string(out)), nil
			}
			return trimLine(string(out)), err
		}
	}
}
