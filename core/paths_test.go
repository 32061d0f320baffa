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
			got := ResolvePaths(func(k string) string { return tc.env[k] }, "/home/u")
			assert.Equal(t, tc.want, got)
		})
	}
}
