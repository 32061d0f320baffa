package cli

import (
	"fmt"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStatusGolden(t *testing.T) {
	dir := copyFixture(t, "pool")
	for _, width := range []int{60, 100, 140} {
		for _, color := range []string{"never", "always"} {
			name := fmt.Sprintf("status-%s-%d.txt", map[string]string{"never": "plain", "always": "tty"}[color], width)
			t.Run(name, func(t *testing.T) {
				code, out, errOut := call(Status, envFor(dir), "", "--now", fixtureNow, "--width", fmt.Sprint(width), "--color", color)
				require.Empty(t, errOut)
				assert.Equal(t, exitOK, code)
				golden(t, name, out)
				if color == "never" {
					for _, line := range splitLines(out) {
						if !fixLine.MatchString(line) {
							assert.LessOrEqual(t, visibleLen(line), width, "line wider than %d: %q", width, line)
						}
						for _, r := range line {
							assert.Less(t, r, rune(128), "plain output must be ASCII: %q", line)
						}
					}
				}
			})
		}
	}
}

// fixLine is the one line allowed to overflow: a command the user copies
// whole, which holds a 36-character account id.
var fixLine = regexp.MustCompile(`^    acctpool login --replace \S+$`)
