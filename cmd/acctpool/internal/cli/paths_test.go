package cli

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestPaths_serverVariables: a command reads the files the server beside it
// uses: ACCTPOOL_CONFIG and ACCTPOOL_STATE count as they do for `serve`, and
// flags win over them.
func TestPaths_serverVariables(t *testing.T) {
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	p := (&common{}).paths(env(map[string]string{"HOME": "/h", "ACCTPOOL_CONFIG": "/srv/anthropic-auth.json"}))
	assert.Equal(t, "/srv/anthropic-auth.json", p.Config)
	assert.Equal(t, "/srv/anthropic-auth-state.json", p.State, "the state follows the config, as for the server")

	p = (&common{}).paths(env(map[string]string{"HOME": "/h", "ACCTPOOL_CONFIG": "/srv/anthropic-auth.json", "ACCTPOOL_STATE": "/st/s.json"}))
	assert.Equal(t, "/st/s.json", p.State)

	p = (&common{config: "/flag/anthropic-auth.json"}).paths(env(map[string]string{"HOME": "/h", "ACCTPOOL_CONFIG": "/srv/anthropic-auth.json"}))
	assert.Equal(t, "/flag/anthropic-auth.json", p.Config, "a flag wins")

	p = (&common{}).paths(env(map[string]string{"HOME": "/h"}))
	assert.Equal(t, "/h/.config/opencode/anthropic-auth.json", p.Config)
}
