//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package cli

import (
	"bufio"
	"io"
)

// terminalWidth cannot ask the terminal on this system; COLUMNS or --width
// decide.
func terminalWidth(io.Writer) (int, bool) { return 0, false }

// isTerminal cannot tell on this system and says no.
func isTerminal(io.Reader) bool { return false }

// readSecretLine reads one line; this system gets no echo control.
func readSecretLine(r io.Reader) (string, error) { return readLine(r) }

// readLine reads one line.
func readLine(r io.Reader) (string, error) {
	s, err := bufio.NewReader(r).ReadString('\n')
	if err == io.EOF && s != "" {
		err = nil
	}
	return trimLine(s), err
}
