package cli

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOutputStyle(t *testing.T) {
	cases := []struct {
		name, color string
		width       int
		env         map[string]string
		want        style
	}{
		{"not a terminal: plain ASCII, 80 columns", "auto", 0, nil, style{width: 80}},
		{"COLUMNS", "auto", 0, map[string]string{"COLUMNS": "120"}, style{width: 120}},
		{"--width wins over COLUMNS", "auto", 70, map[string]string{"COLUMNS": "120"}, style{width: 70}},
		{"always forces colour and Unicode", "always", 0, map[string]string{"NO_COLOR": "1"}, style{color: true, unicode: true, width: 80}},
		{"never", "never", 0, nil, style{width: 80}},
		{"narrow widths are raised to 40", "auto", 10, nil, style{width: 40}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := outputStyle(&bytes.Buffer{}, func(k string) string { return tc.env[k] }, tc.color, tc.width)
			require.NoError(t, err)
			assert.Equal(t, tc.want, st)
		})
	}
	_, err := outputStyle(&bytes.Buffer{}, func(string) string { return "" }, "sometimes", 0)
	assert.ErrorContains(t, err, `--color "sometimes": want auto, always or never`)
}

func TestCommandsHelpAndBadFlags(t *testing.T) {
	for name, cmd := range map[string]Command{
		"status": Status, "statusline": Statusline, "check": Check, "login": Login, "add-key": AddKey,
	} {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := call(cmd, envFor(t.TempDir()), "", "--help")
			assert.Equal(t, exitOK, code)
			assert.Empty(t, out, "help goes to stderr")
			assert.Contains(t, errOut, "usage: acctpool "+name)
			code, _, errOut = call(cmd, envFor(t.TempDir()), "", "--no-such-flag")
			assert.Equal(t, exitUsage, code)
			assert.Contains(t, errOut, "flag provided but not defined: -no-such-flag")
		})
	}
	code, _, errOut := call(Accounts, envFor(t.TempDir()), "", "--help")
	assert.Equal(t, exitOK, code)
	assert.Contains(t, errOut, "usage: acctpool accounts")
	code, _, errOut = call(Status, envFor(t.TempDir()), "", "--now", "yesterday")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, `--now "yesterday": want RFC 3339`)
}
