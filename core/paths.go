package core

import (
	"fmt"
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

// Upstream file names (BEHAVIOUR.md §1.1).
const (
	ConfigFileName = "anthropic-auth.json"
	StateFileName  = "anthropic-auth-state.json"
)

// Host names the agent acctpool serves; each keeps its files in its own
// place (BEHAVIOUR.md §1.1).
type Host string

// The hosts whose file locations acctpool knows.
const (
	HostOpenCode Host = "opencode"
	HostPi       Host = "pi"
)

// ParseHost reads a host name: "" and "opencode" are OpenCode, "pi" is Pi.
func ParseHost(s string) (Host, error) {
	switch h := Host(strings.ToLower(strings.TrimSpace(s))); h {
	case "", HostOpenCode:
		return HostOpenCode, nil
	case HostPi:
		return HostPi, nil
	}
	return "", fmt.Errorf("unknown host %q (want opencode or pi)", s)
}

// ResolvePaths finds the three files the way the upstream plugin for host
// does, so that both resolve to the same files on the same machine.
// OpenCode:
//
//   - config dir: $OPENCODE_CONFIG_DIR, else ${XDG_CONFIG_HOME:-home/.config}/opencode;
//   - config: $OPENCODE_ANTHROPIC_AUTH_FILE, else <config dir>/anthropic-auth.json;
//   - routing state: $OPENCODE_ANTHROPIC_AUTH_ROUTING_STATE_FILE.
//
// Pi:
//
//   - config dir: $PI_AGENT_DIR, else home/.pi/agent;
//   - config: $PI_ANTHROPIC_AUTH_FILE, else <config dir>/anthropic-auth.json;
//   - routing state: $PI_ANTHROPIC_AUTH_ROUTING_STATE_FILE.
//
// For both, the state file is $OPENCODE_ANTHROPIC_AUTH_STATE_FILE (the
// shared upstream core reads that one variable), else anthropic-auth-state.json
// beside a config path that ends with anthropic-auth.json, else
// <config>.state.json; the routing state without its variable is
// <config without .json>-routing-state.json beside the config.
//
// Every variable is trimmed and counts only when not empty. getenv and home
// are parameters so that callers (and tests) decide where they come from;
// cmd passes os.Getenv and os.UserHomeDir.
func ResolvePaths(host Host, getenv func(string) string, home string) Paths {
	env := func(k string) string { return strings.TrimSpace(getenv(k)) }
	var p Paths
	routingVar := "OPENCODE_ANTHROPIC_AUTH_ROUTING_STATE_FILE"
	if host == HostPi {
		dir := env("PI_AGENT_DIR")
		if dir == "" {
			dir = filepath.Join(home, ".pi", "agent")
		}
		if p.Config = env("PI_ANTHROPIC_AUTH_FILE"); p.Config == "" {
			p.Config = filepath.Join(dir, ConfigFileName)
		}
		routingVar = "PI_ANTHROPIC_AUTH_ROUTING_STATE_FILE"
	} else {
		dir := env("OPENCODE_CONFIG_DIR")
		if dir == "" {
			base := env("XDG_CONFIG_HOME")
			if base == "" {
				base = filepath.Join(home, ".config")
			}
			dir = filepath.Join(base, "opencode")
		}
		if p.Config = env("OPENCODE_ANTHROPIC_AUTH_FILE"); p.Config == "" {
			p.Config = filepath.Join(dir, ConfigFileName)
		}
	}
	p.State = env("OPENCODE_ANTHROPIC_AUTH_STATE_FILE")
	if p.State == "" {
		p.State = defaultStatePath(p.Config)
	}
	p.RoutingState = env(routingVar)
	if p.RoutingState == "" {
		p.RoutingState = defaultRoutingStatePath(p.Config)
	}
	return p
}

// PathVariables are the environment variables that locate host's files
// without the home directory.
func PathVariables(host Host) []string {
	if host == HostPi {
		return []string{"PI_ANTHROPIC_AUTH_FILE", "PI_AGENT_DIR"}
	}
	return []string{"OPENCODE_ANTHROPIC_AUTH_FILE", "OPENCODE_CONFIG_DIR", "XDG_CONFIG_HOME"}
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
