package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAccountsCommands(t *testing.T) {
	dir := copyFixture(t, "pool")
	env := envFor(dir)
	const fb3 = "9c8b7a6d-3333-4c0c-8e3f-0000000000f3"

	code, out, errOut := call(Accounts, env, "", "list", "--now", fixtureNow)
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, []string{
		"POS  LABEL            TYPE   ID                                     STATE",
		"-    main             main   main                                   usable",
		"1    fb1              oauth  5f0e2b1c-1111-4a0a-8c1d-0000000000f1   usable",
		"2    fb2              oauth  7a9d4e2f-2222-4b0b-9d2e-0000000000f2   needs re-login: acctpool login --replace 7a9d4e2f-2222-4b0b-9d2e-0000000000f2",
		"4    fb3              oauth  9c8b7a6d-3333-4c0c-8e3f-0000000000f3   not usable: 5h quota below minimum (3% < 10%)",
		"3    work key         api    work-key                               usable",
	}, splitLines(out))

	code, out, _ = call(Accounts, env, "", "disable", "fb3")
	require.Equal(t, exitOK, code)
	assert.Equal(t, "Disabled fb3 ("+fb3+").\n", out)
	code, out, _ = call(Accounts, env, "", "list", "--now", fixtureNow)
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, fb3+"   disabled")
	code, _, _ = call(Accounts, env, "", "enable", fb3)
	require.Equal(t, exitOK, code)

	code, out, _ = call(Accounts, env, "", "move", "fb3", "1")
	require.Equal(t, exitOK, code)
	assert.Equal(t, "Moved fb3 ("+fb3+") to position 1.\n", out)
	code, out, _ = call(Accounts, env, "", "list", "--now", fixtureNow)
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, "\n1    fb3 ")

	code, out, _ = call(Accounts, env, "", "reset-backoff", "fb2", "--now", fixtureNow)
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, "Cleared the refresh and quota backoff of fb2")
	code, out, _ = call(Accounts, env, "", "list", "--now", fixtureNow)
	require.Equal(t, exitOK, code)
	assert.NotContains(t, out, "needs re-login")

	code, out, _ = call(Accounts, env, "n\n", "remove", "fb1")
	assert.Equal(t, exitNone, code)
	assert.Contains(t, out, "Nothing removed.")
	code, out, _ = call(Accounts, env, "", "remove", "fb1", "--yes")
	require.Equal(t, exitOK, code)
	assert.Equal(t, "Removed fb1 (5f0e2b1c-1111-4a0a-8c1d-0000000000f1).\n", out)
	state, err := os.ReadFile(filepath.Join(dir, "anthropic-auth-state.json"))
	require.NoError(t, err)
	assert.NotContains(t, string(state), "FIXTUREREFRESH1", "the removed account's tokens are gone")

	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"frobnicate"}, exitUsage, `unknown subcommand "frobnicate"`},
		{[]string{"move", "fb3"}, exitUsage, "want 2 argument(s), got 1"},
		{[]string{"move", "fb3", "0"}, exitUsage, `position "0": want a number from 1`},
		{[]string{"move", "fb3", "99"}, exitUsage, "field position: must be between 0 and"},
		{[]string{"enable", "nope"}, exitNone, `no such account: "nope"`},
		{[]string{"remove", "main", "--yes"}, exitUsage, "cannot be removed"},
		{nil, exitUsage, "usage: acctpool accounts"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, errOut := call(Accounts, env, "", tc.args...)
			assert.Equal(t, tc.code, code)
			assert.Contains(t, errOut, tc.err)
		})
	}
}

func TestAddKey(t *testing.T) {
	dir := copyFixture(t, "pool")
	env := envFor(dir)
	code, out, errOut := call(AddKey, env, "sk-ant-api03-PIPEDKEY\n", "--base-url", "https://llm.example.org", "--label", "team")
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `^Added API-key route team \([0-9a-f-]{36}\)\.\n$`, out)
	assert.NotContains(t, out+errOut, "PIPEDKEY")
	state, err := os.ReadFile(filepath.Join(dir, "anthropic-auth-state.json"))
	require.NoError(t, err)
	assert.Contains(t, string(state), "sk-ant-api03-PIPEDKEY")
	cfg, err := os.ReadFile(filepath.Join(dir, "anthropic-auth.json"))
	require.NoError(t, err)
	assert.NotContains(t, string(cfg), "PIPEDKEY", "keys never go to the config file")
	assert.Contains(t, string(cfg), `"x-api-key"`)

	for _, tc := range []struct {
		name, stdin string
		args        []string
		err         string
	}{
		{"key on the command line", "", []string{"--base-url", "https://x.example", "--key=sk-ant-api03-ARGV"}, "never taken from the command line"},
		{"key as an argument", "", []string{"--base-url", "https://x.example", "sk-ant-api03-ARGV"}, "never from the command line"},
		{"no key", "", []string{"--base-url", "https://x.example"}, "no key on stdin"},
		{"no base URL", "k\n", nil, "--base-url is required"},
		{"label taken", "k\n", []string{"--base-url", "https://x.example", "--label", "team"}, `an account labelled "team" exists`},
		{"bad header", "k\n", []string{"--base-url", "https://x.example", "--auth-header", "cookie"}, `--auth-header "cookie"`},
		{"bad URL", "k\n", []string{"--base-url", "ftp://x.example"}, "baseURL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := call(AddKey, env, tc.stdin, tc.args...)
			assert.Equal(t, exitUsage, code, out)
			assert.Contains(t, errOut, tc.err)
			assert.NotContains(t, out+errOut, "ARGV")
		})
	}
}
