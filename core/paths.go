package core

import (
	"path/filepath"
	"strings"
)

// Paths are the locations of the three upstream files.
type Paths struct {
	// Config is anthropic-auth.json, the user's accounts and settings.
	Config string
	// State is anthropic-auth-state.json: tokens, quota, errors, backoffs.
	State string
	// RoutingState is anthropic-auth-routing-state.json: sticky
	// assignments of sessions to accounts.
	RoutingState string
}

// Upstream file names (upstream-core.md 1.1).
const (
	ConfigFileName = "anthropic-auth.json"
	StateFileName  = "anthropic-auth-state.json"
)

// ResolvePaths finds the three files the way the upstream plugin does, so
// that both resolve to the same files on the same machine:
//
//   - config dir: $OPENCODE_CONFIG_DIR, else ${XDG_CONFIG_HOME:-home/.config}/opencode;
//   - config: $OPENCODE_ANTHROPIC_AUTH_FILE, else <config dir>/anthropic-auth.json;
//   - state: $OPENCODE_ANTHROPIC_AUTH_STATE_FILE, else anthropic-auth-state.json
//     beside a config path that ends with anthropic-auth.json, else
//     <config>.state.json;
//   - routing state: $OPENCODE_ANTHROPIC_AUTH_ROUTING_STATE_FILE, else
//     <config without .json>-routing-state.json beside the config.
//
// Every variable is trimmed and counts only when not empty. getenv and home
// are parameters so that callers (and tests) decide where they come from;
// cmd passes os.Getenv and os.UserHomeDir.
func ResolvePaths(getenv func(string) string, home string) Paths {
	env := func(k string) string { return strings.TrimSpace(getenv(k)) }
	dir := env("OPENCODE_CONFIG_DIR")
	if dir == "" {
		base := env("XDG_CONFIG_HOME")
		if base == "" {
			base = filepath.Join(home, ".config")
		}
		dir = filepath.Join(base, "opencode")
	}
	p := Paths{Config: env("OPENCODE_ANTHROPIC_AUTH_FILE")}
	if p.Config == "" {
		p.Config = filepath.Join(dir, ConfigFileName)
	}
	p.State = env("OPENCODE_ANTHROPIC_AUTH_STATE_FILE")
	if p.State == "" {
		p.State = defaultStatePath(p.Config)
	}
	p.RoutingState = env("OPENCODE_ANTHROPIC_AUTH_ROUTING_STATE_FILE")
	if p.RoutingState == "" {
		p.RoutingState = defaultRoutingStatePath(p.Config)
	}
	return p
}

// defaultStatePath is upstream's rule: a config path ending with
// anthropic-auth.json (a plain suffix test, as upstream) gets the state file
// of that name beside it; any other config gets "<config>.state.json".
func defaultStatePath(configPath string) string {
	if strings.HasSuffix(configPath, ConfigFileName) {
		return filepath.Join(filepath.Dir(configPath), StateFileName)
	}
	return configPath + ".state.json"
}

func defaultRoutingStatePath(configPath string) string {
	dir, base := filepath.Split(configPath)
	return filepath.Join(dir, strings.TrimSuffix(base, ".json")+"-routing-state.json")
}
