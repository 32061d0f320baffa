package rpc

import (
	"context"
	"encoding/json"

	"github.com/acctpool/acctpool/schema"
)

// Plugins is what plugins/list and plugins/reload need of the plugin host.
// List returns one JSON-encodable entry per plugin; Reload re-reads the
// plugin manifests, swaps the new chain in, and returns the new list.
type Plugins interface {
	List() []any
	Reload(ctx context.Context) ([]any, error)
}

type pluginsResult struct {
	Plugins []any `json:"plugins"`
}

func pluginsList(_ context.Context, s *Server, _ *noParams) (any, error) {
	if s.opts.Plugins == nil {
		return pluginsResult{[]any{}}, nil
	}
	return pluginsResult{nonNil(s.opts.Plugins.List())}, nil
}

func pluginsReload(ctx context.Context, s *Server, _ *noParams) (any, error) {
	if s.opts.Plugins == nil {
		return pluginsResult{[]any{}}, nil
	}
	list, err := s.opts.Plugins.Reload(ctx)
	if err != nil {
		return nil, err
	}
	return pluginsResult{nonNil(list)}, nil
}

func nonNil(l []any) []any {
	if l == nil {
		return []any{}
	}
	return l
}

// discover answers rpc.discover with the embedded OpenRPC document, as is.
func discover(context.Context, *Server, []byte) (any, error) {
	return json.RawMessage(schema.OpenRPC), nil
}
