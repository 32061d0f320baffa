package rpc

import (
	"context"
	"encoding/json"

	"github.com/acctpool/acctpool/plugins"
	"github.com/acctpool/acctpool/schema"
)

// Plugins is what plugins/list and plugins/reload need of the plugin host.
// List reports every plugin of the serving chain; Reload re-reads the
// plugin manifests, swaps the new chain in, and returns the new list (on
// error the old chain keeps serving).
type Plugins interface {
	List() []plugins.PluginStatus
	Reload(ctx context.Context) ([]plugins.PluginStatus, error)
}

type pluginsResult struct {
	Plugins []plugins.PluginStatus `json:"plugins"`
}

func pluginsList(_ context.Context, s *Server, _ *noParams) (any, error) {
	if s.opts.Plugins == nil {
		return pluginsResult{[]plugins.PluginStatus{}}, nil
	}
	return pluginsResult{nonNil(s.opts.Plugins.List())}, nil
}

func pluginsReload(ctx context.Context, s *Server, _ *noParams) (any, error) {
	if s.opts.Plugins == nil {
		return pluginsResult{[]plugins.PluginStatus{}}, nil
	}
	list, err := s.opts.Plugins.Reload(ctx)
	if err != nil {
		return nil, err
	}
	return pluginsResult{nonNil(list)}, nil
}

func nonNil(l []plugins.PluginStatus) []plugins.PluginStatus {
	if l == nil {
		return []plugins.PluginStatus{}
	}
	return l
}

// discover answers rpc.discover with the embedded OpenRPC document, as is.
func discover(context.Context, *Server, []byte) (any, error) {
	return json.RawMessage(schema.OpenRPC), nil
}
