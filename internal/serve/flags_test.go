package serve

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core"
)

func TestResolvePaths(t *testing.T) {
	home, err := os.UserHomeDir()
	require.NoError(t, err)
	cases := []struct {
		name string
		env  map[string]string
		in   core.Paths
		want core.Paths
	}{
		{"auth file env", map[string]string{"OPENCODE_ANTHROPIC_AUTH_FILE": "/x/auth.json", "OPENCODE_CONFIG_DIR": "/ignored"}, core.Paths{},
			core.Paths{Config: "/x/auth.json", State: "/x/auth.json.state.json", RoutingState: "/x/auth-routing-state.json"}},
		{"config dir env", map[string]string{"OPENCODE_CONFIG_DIR": "/c", "XDG_CONFIG_HOME": "/ignored"}, core.Paths{},
			core.Paths{Config: "/c/anthropic-auth.json", State: "/c/anthropic-auth-state.json", RoutingState: "/c/anthropic-auth-routing-state.json"}},
		{"xdg", map[string]string{"XDG_CONFIG_HOME": "/xdg"}, core.Paths{},
			core.Paths{Config: "/xdg/opencode/anthropic-auth.json", State: "/xdg/opencode/anthropic-auth-state.json", RoutingState: "/xdg/opencode/anthropic-auth-routing-state.json"}},
		{"home", nil, core.Paths{},
			core.Paths{Config: filepath.Join(home, ".config/opencode/anthropic-auth.json"), State: filepath.Join(home, ".config/opencode/anthropic-auth-state.json"),
				RoutingState: filepath.Join(home, ".config/opencode/anthropic-auth-routing-state.json")}},
		{"flags win", map[string]string{"OPENCODE_ANTHROPIC_AUTH_FILE": "/x/auth.json"}, core.Paths{Config: "/f/a.json", State: "/g/s.json"},
			core.Paths{Config: "/f/a.json", State: "/g/s.json", RoutingState: "/f/a-routing-state.json"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"OPENCODE_ANTHROPIC_AUTH_FILE", "OPENCODE_CONFIG_DIR", "XDG_CONFIG_HOME", "OPENCODE_ANTHROPIC_AUTH_STATE_FILE", "OPENCODE_ANTHROPIC_AUTH_ROUTING_STATE_FILE"} {
				t.Setenv(k, tc.env[k])
			}
			got, err := resolvePaths(core.HostOpenCode, tc.in)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
func TestResolvePaths_piHost(t *testing.T) {
	t.Setenv("PI_ANTHROPIC_AUTH_FILE", "")
	t.Setenv("PI_AGENT_DIR", "/agent")
	t.Setenv("OPENCODE_ANTHROPIC_AUTH_STATE_FILE", "")
	t.Setenv("PI_ANTHROPIC_AUTH_ROUTING_STATE_FILE", "")
	c, err := parseFlags("acctpool serve", []string{"--host", "pi"})
	require.NoError(t, err)
	assert.Equal(t, core.HostPi, c.host)
	assert.Equal(t, core.Paths{Config: "/agent/anthropic-auth.json", State: "/agent/anthropic-auth-state.json", RoutingState: "/agent/anthropic-auth-routing-state.json"}, c.paths)
	t.Setenv("ACCTPOOL_HOST", "pi")
	c, err = parseFlags("acctpool serve", []string{"--config", "/f/anthropic-auth.json"})
	require.NoError(t, err)
	assert.Equal(t, "/f/anthropic-auth-state.json", c.paths.State, "a --config wins over the pi variables")
	_, err = parseFlags("acctpool serve", []string{"--host", "vscode"})
	assert.ErrorContains(t, err, "--host")
}

func TestParseFlags_store(t *testing.T) {
	cases := []struct {
		name      string
		args      []string
		env       map[string]string
		wantStore string
		wantErr   string
	}{
		{"default is the files", nil, nil, "", ""},
		{"files by name", []string{"--store", "files"}, nil, "", ""},
		{"postgres with a key file", []string{"--store", "postgres://u:pw@db/pool", "--store-key-file", "/k"}, nil, "postgres://u:pw@db/pool", ""},
		{"from the environment", nil, map[string]string{"ACCTPOOL_STORE": "postgresql://db/pool", "ACCTPOOL_STORE_KEY_FILE": "/k"}, "postgresql://db/pool", ""},
		{"flag wins over the environment", []string{"--store", "files"}, map[string]string{"ACCTPOOL_STORE": "postgres://db/pool"}, "", ""},
		{"postgres without a key file", []string{"--store", "postgres://u:hunter2@db/pool"}, nil, "", "--store-key-file"},
		{"unknown store", []string{"--store", "mysql://u:hunter2@db"}, nil, "", "want files or a postgres:// URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("OPENCODE_ANTHROPIC_AUTH_FILE", "/x/auth.json")
			for _, k := range []string{"ACCTPOOL_STORE", "ACCTPOOL_STORE_KEY_FILE"} {
				t.Setenv(k, tc.env[k])
			}
			c, err := parseFlags("acctpool serve", tc.args)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.NotContains(t, err.Error(), "hunter2", "the connection string's password is never repeated")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.wantStore, c.store.URL)
		})
	}
}
