package core

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestResolvePaths(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want Paths
	}{
		{"defaults under home", nil, Paths{
			Config:       "/home/u/.config/opencode/anthropic-auth.json",
			State:        "/home/u/.config/opencode/anthropic-auth-state.json",
			RoutingState: "/home/u/.config/opencode/anthropic-auth-routing-state.json",
		}},
		{"XDG_CONFIG_HOME", map[string]string{"XDG_CONFIG_HOME": "/xdg"}, Paths{
			Config:       "/xdg/opencode/anthropic-auth.json",
			State:        "/xdg/opencode/anthropic-auth-state.json",
			RoutingState: "/xdg/opencode/anthropic-auth-routing-state.json",
		}},
		{"OPENCODE_CONFIG_DIR wins over XDG, trimmed", map[string]string{"XDG_CONFIG_HOME": "/xdg", "OPENCODE_CONFIG_DIR": "  /oc  "}, Paths{
			Config:       "/oc/anthropic-auth.json",
			State:        "/oc/anthropic-auth-state.json",
			RoutingState: "/oc/anthropic-auth-routing-state.json",
		}},
		{"blank variables count as unset", map[string]string{"OPENCODE_CONFIG_DIR": "   ", "XDG_CONFIG_HOME": " ", "OPENCODE_ANTHROPIC_AUTH_FILE": "\t"}, Paths{
			Config:       "/home/u/.config/opencode/anthropic-auth.json",
			State:        "/home/u/.config/opencode/anthropic-auth-state.json",
			RoutingState: "/home/u/.config/opencode/anthropic-auth-routing-state.json",
		}},
		{"auth file with the upstream name", map[string]string{"OPENCODE_ANTHROPIC_AUTH_FILE": "/p/anthropic-auth.json"}, Paths{
			Config:       "/p/anthropic-auth.json",
			State:        "/p/anthropic-auth-state.json",
			RoutingState: "/p/anthropic-auth-routing-state.json",
		}},
		{"auth file with another name", map[string]string{"OPENCODE_ANTHROPIC_AUTH_FILE": "/p/pool.json"}, Paths{
			Config:       "/p/pool.json",
			State:        "/p/pool.json.state.json",
			RoutingState: "/p/pool-routing-state.json",
		}},
		{"explicit state and routing files", map[string]string{
			"OPENCODE_ANTHROPIC_AUTH_FILE":               "/p/pool.json",
			"OPENCODE_ANTHROPIC_AUTH_STATE_FILE":         " /s/state.json ",
			"OPENCODE_ANTHROPIC_AUTH_ROUTING_STATE_FILE": "/r/routing.json",
		}, Paths{Config: "/p/pool.json", State: "/s/state.json", RoutingState: "/r/routing.json"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ResolvePaths(HostOpenCode, func(k string) string { return tc.env[k] }, "/home/u")
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestResolvePaths_pi(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want Paths
	}{
		{"defaults under ~/.pi/agent", map[string]string{"OPENCODE_ANTHROPIC_AUTH_FILE": "/oc/ignored.json", "OPENCODE_CONFIG_DIR": "/oc"}, Paths{
			Config:       "/home/u/.pi/agent/anthropic-auth.json",
			State:        "/home/u/.pi/agent/anthropic-auth-state.json",
			RoutingState: "/home/u/.pi/agent/anthropic-auth-routing-state.json",
		}},
		{"PI_AGENT_DIR, trimmed", map[string]string{"PI_AGENT_DIR": " /agent "}, Paths{
			Config:       "/agent/anthropic-auth.json",
			State:        "/agent/anthropic-auth-state.json",
			RoutingState: "/agent/anthropic-auth-routing-state.json",
		}},
		{"PI_ANTHROPIC_AUTH_FILE wins over PI_AGENT_DIR", map[string]string{"PI_AGENT_DIR": "/agent", "PI_ANTHROPIC_AUTH_FILE": "/p/anthropic-auth.json"}, Paths{
			Config:       "/p/anthropic-auth.json",
			State:        "/p/anthropic-auth-state.json",
			RoutingState: "/p/anthropic-auth-routing-state.json",
		}},
		{"blank variables count as unset", map[string]string{"PI_AGENT_DIR": "  ", "PI_ANTHROPIC_AUTH_FILE": "\t"}, Paths{
			Config:       "/home/u/.pi/agent/anthropic-auth.json",
			State:        "/home/u/.pi/agent/anthropic-auth-state.json",
			RoutingState: "/home/u/.pi/agent/anthropic-auth-routing-state.json",
		}},
		{"routing state variable of pi", map[string]string{"PI_ANTHROPIC_AUTH_ROUTING_STATE_FILE": "/r.json", "OPENCODE_ANTHROPIC_AUTH_ROUTING_STATE_FILE": "/ignored.json"}, Paths{
			Config:       "/home/u/.pi/agent/anthropic-auth.json",
			State:        "/home/u/.pi/agent/anthropic-auth-state.json",
			RoutingState: "/r.json",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ResolvePaths(HostPi, func(k string) string { return tc.env[k] }, "/home/u")
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestParseHost(t *testing.T) {
	for in, want := range map[string]Host{"": HostOpenCode, "opencode": HostOpenCode, " Pi ": HostPi} {
		got, err := ParseHost(in)
		assert.NoError(t, err)
		assert.Equal(t, want, got)
	}
	_, err := ParseHost("vscode")
	assert.ErrorContains(t, err, "opencode or pi")
}
