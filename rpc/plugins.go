package rpc

import (
	"context"
	"encoding/json"

	"github.com/acctpool/acctpool/schema"
)

// PluginStatus is one plugin as plugins/list and plugins/reload show it
// (the PluginStatus schema). rpc declares it itself, so that the protocol
// layer does not depend on the plugin runtime; the host that wires a
// plugin host in converts its status to this.
type PluginStatus struct {
	// ID is the manifest's id.
	ID string `json:"id"`
	// Version is the manifest's version.
	Version string `json:"version"`
	// State is "active", "rejected" or "open".
	State string `json:"state"`
	// Error is the one-line reason a rejected plugin failed to load.
	Error string `json:"error,omitempty"`
	// Calls counts the classifications the plugin was asked about.
	Calls int64 `json:"calls"`
	// Faults counts faults by kind; each one fell back to the built-in
	// verdict.
	Faults map[string]int64 `json:"faults"`
	// LastError is the most recent fault, "kind: message".
	LastError string `json:"lastError,omitempty"`
}

// Plugins is what plugins/list and plugins/reload need of the plugin host.
// List reports every plugin of the serving chain; Reload re-reads the
// plugin manifests, swaps the new chain in, and returns the new list (on
// error the old chain keeps serving).
type Plugins interface {
	List() []PluginStatus
	Reload(ctx context.Context) ([]PluginStatus, error)
}

type pluginsResult struct {
	Plugins []PluginStatus `json:"plugins"`
}

func pluginsList(_ context.Context, s *Server, _ *noParams) (any, error) {
	if s.opts.Plugins == nil {
		return pluginsResult{[]PluginStatus{}}, nil
	}
	return pluginsResult{nonNil(s.opts.Plugins.List())}, nil
}

func pluginsReload(ctx context.Context, s *Server, _ *noParams) (any, error) {
	if s.opts.Plugins == nil {
		return pluginsResult{[]PluginStatus{}}, nil
	}
	list, err := s.opts.Plugins.Reload(ctx)
	if err != nil {
		return nil, err
	}
	return pluginsResult{nonNil(list)}, nil
}

func nonNil(l []PluginStatus) []PluginStatus {
	if l == nil {
		return []PluginStatus{}
	}
	return l
}

// discover answers rpc.discover with the embedded OpenRPC document, as is.
func discover(context.Context, *Server, []byte) (any, error) {
	return json.RawMessage(schema.OpenRPC), nil
}
