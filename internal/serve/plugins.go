package serve

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/acctpool/acctpool/core"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/core/verdict"
	"github.com/acctpool/acctpool/plugins"
	"github.com/acctpool/acctpool/rpc"
)

// pluginHost adapts a *plugins.Host to rpc.Plugins: reload re-reads the
// config file's "plugins" array and the --plugin manifest files.
type pluginHost struct {
	host  *plugins.Host
	cfg   *config
	store *core.Store
	log   *slog.Logger
}

// List implements rpc.Plugins.
func (p *pluginHost) List() []rpc.PluginStatus { return rpcStatus(p.host.Status()) }

// Reload implements rpc.Plugins. A rejected plugin fails the reload with
// config_invalid, and the previous chain keeps serving.
func (p *pluginHost) Reload(ctx context.Context) ([]rpc.PluginStatus, error) {
	ms := manifests(ctx, p.cfg, p.store, p.log)
	list, err := p.host.Reload(ctx, ms)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", core.ErrConfigInvalid, err)
	}
	return rpcStatus(list), nil
}

// rpcStatus converts the plugin host's status to the protocol's.
func rpcStatus(list []plugins.PluginStatus) []rpc.PluginStatus {
	out := make([]rpc.PluginStatus, 0, len(list))
	for _, st := range list {
		faults := make(map[string]int64, len(st.Faults))
		for k, n := range st.Faults {
			faults[string(k)] = n
		}
		out = append(out, rpc.PluginStatus{
			ID: st.ID, Version: st.Version, State: st.State, Error: st.Error,
			Calls: st.Calls, Faults: faults, LastError: st.LastError,
		})
	}
	return out
}

// engineSecrets hands the engine's known secrets to the plugin host, which
// is built before the engine (the engine's classifier is the host).
// Until set, only shape-based redaction applies; nothing classifies
// before the engine exists.
type engineSecrets struct {
	eng atomic.Pointer[core.Engine]
}

func (s *engineSecrets) set(e *core.Engine) { s.eng.Store(e) }

// known returns the engine's main and stored tokens, or nil before set.
func (s *engineSecrets) known(ctx context.Context) []secret.Secret {
	if e := s.eng.Load(); e != nil {
		return e.KnownSecrets(ctx)
	}
	return nil
}

// loadPlugins starts the plugin host for the config file's plugins and the
// --plugin manifests. A bad plugin is logged and listed as rejected; it
// never stops the server.
func loadPlugins(ctx context.Context, cfg *config, store *core.Store, log *slog.Logger, known func(context.Context) []secret.Secret) (rpc.Plugins, verdict.Classifier, func(), error) {
	host, err := plugins.NewHost(ctx, plugins.Options{Manifests: manifests(ctx, cfg, store, log), Logger: log, KnownSecrets: known})
	if err != nil {
		return nil, nil, nil, err
	}
	closeHost := func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := host.Close(cctx); err != nil {
			log.Warn("close plugins", "err", err)
		}
	}
	return &pluginHost{host: host, cfg: cfg, store: store, log: log}, host, closeHost, nil
}

// manifests reads the config file's top-level "plugins" array (relative
// wasm paths resolve against the config file's folder), then the --plugin
// files. Entries that fail to parse are kept: the host lists them as
// rejected.
func manifests(ctx context.Context, cfg *config, store *core.Store, log *slog.Logger) []plugins.Manifest {
	var out []plugins.Manifest
	snap, err := store.Load(ctx)
	switch {
	case err != nil:
		log.Warn("plugins: read config", "err", err)
	case snap.Config != nil && len(snap.Config.Extra["plugins"]) > 0:
		ms, err := plugins.ParseManifests(snap.Config.Extra["plugins"])
		if err != nil {
			log.Error("plugins in config", "err", err)
		}
		for i := range ms {
			if ms[i].Wasm != "" && !filepath.IsAbs(ms[i].Wasm) {
				ms[i].Wasm = filepath.Join(filepath.Dir(cfg.paths.Config), ms[i].Wasm)
			}
		}
		out = append(out, ms...)
	}
	for _, path := range cfg.plugins {
		m, err := plugins.LoadManifestFile(path)
		if err != nil {
			log.Error("plugin manifest", "path", path, "err", err)
		}
		out = append(out, m)
	}
	return out
}
