package core

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	json "github.com/goccy/go-json"
)

// Paths are the locations of the three upstream files.
type Paths struct {
	Config       string
	State        string
	RoutingState string
}

// StoreOptions configure a [Store]. Zero values mean the defaults.
type StoreOptions struct {
	Paths Paths
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
}

// Store reads and writes anthropic-auth.json and anthropic-auth-state.json
// in the upstream shapes. Writes are atomic, mode 0600, and happen under the
// upstream lock-file protocol, re-reading the file first so that concurrent
// writers (another acctpool, or the TypeScript plugin) never lose updates.
//
// # Notes
//
// Background work changes only the state file, through UpdateState. Config
// changes (accounts added, removed, reordered; settings) go through
// UpdateConfig, which takes the config lock and then the state lock, always
// in that order.
type Store struct {
	paths  Paths
	logger *slog.Logger
	mu     sync.Mutex // serializes writers inside the process
}

// NewStore returns a store for the given paths.
func NewStore(opts StoreOptions) (*Store, error) {
	if opts.Paths.Config == "" || opts.Paths.State == "" {
		return nil, fmt.Errorf("%w: config and state paths are required", ErrConfigInvalid)
	}
	if opts.Paths.RoutingState == "" {
		opts.Paths.RoutingState = defaultRoutingStatePath(opts.Paths.Config)
	}
	l := opts.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &Store{paths: opts.Paths, logger: l}, nil
}

// Paths returns the store's file paths.
func (s *Store) Paths() Paths { return s.paths }

// Load reads both files and returns the merged snapshot. A missing file is
// not an error; a corrupt one is, and names the path without quoting it.
func (s *Store) Load(ctx context.Context) (*Snapshot, error) {
	cfg, err := readConfig(s.paths.Config)
	if err != nil {
		return nil, err
	}
	st, err := readState(s.paths.State)
	if err != nil {
		return nil, err
	}
	return buildSnapshot(cfg, st)
}

// UpdateState re-reads the state file under its lock, lets fn change it,
// and writes it back. fn must change only what it means to change: it sees
// the file as it is on disk now, not a stale copy.
func (s *Store) UpdateState(ctx context.Context, fn func(st *StateFile) error) (*Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg, err := readConfig(s.paths.Config)
	if err != nil {
		return nil, err
	}
	var snap *Snapshot
	err = s.withLock(ctx, lockStateWrite, func() error {
		st, err := readState(s.paths.State)
		if err != nil {
			return err
		}
		if st == nil {
			st = &StateFile{Version: 1}
		}
		if st.Accounts == nil {
			st.Accounts = map[string]*AccountState{}
		}
		if err := fn(st); err != nil {
			return err
		}
		if err := writeJSON(s.paths.State, st); err != nil {
			return err
		}
		snap, err = buildSnapshot(cfg, st)
		return err
	})
	return snap, err
}

// UpdateConfig re-reads both files under the config lock and then the state
// lock, lets fn change them, and writes both back. State entries of
// accounts no longer in the config are pruned.
func (s *Store) UpdateConfig(ctx context.Context, fn func(cfg *ConfigFile, st *StateFile) error) (*Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var snap *Snapshot
	err := s.withLock(ctx, lockConfigWrite, func() error {
		cfg, err := readConfig(s.paths.Config)
		if err != nil {
			return err
		}
		if cfg == nil {
			cfg = &ConfigFile{Version: 1}
		}
		return s.withLock(ctx, lockStateWrite, func() error {
			st, err := readState(s.paths.State)
			if err != nil {
				return err
			}
			if st == nil {
				st = &StateFile{Version: 1}
			}
			if st.Accounts == nil {
				st.Accounts = map[string]*AccountState{}
			}
			if err := fn(cfg, st); err != nil {
				return err
			}
			cfg.Version = 1
			if len(cfg.Main) == 0 {
				cfg.Main = json.RawMessage(`{"type":"opencode","provider":"anthropic"}`)
			}
			members := map[string]bool{}
			for _, a := range cfg.Accounts {
				members[a.ID] = true
			}
			for id := range st.Accounts {
				if !members[id] {
					delete(st.Accounts, id)
				}
			}
			if err := writeJSON(s.paths.Config, cfg); err != nil {
				return err
			}
			if err := writeJSON(s.paths.State, st); err != nil {
				return err
			}
			snap, err = buildSnapshot(cfg, st)
			return err
		})
	})
	return snap, err
}

// Lock names of the upstream protocol (upstream-core.md 1.6).
const (
	lockConfigWrite = "config-write"
	lockStateWrite  = "state-write"
)

// withLock runs fn while holding the named cross-process lock.
// TODO(core): replace with the lock-file protocol of section 1.6.
func (s *Store) withLock(ctx context.Context, name string, fn func() error) error {
	return fn()
}

func readConfig(path string) (*ConfigFile, error) {
	var c ConfigFile
	ok, err := readJSON(path, &c)
	if err != nil || !ok {
		return nil, err
	}
	return &c, nil
}

func readState(path string) (*StateFile, error) {
	var st StateFile
	ok, err := readJSON(path, &st)
	if err != nil || !ok {
		return nil, err
	}
	return &st, nil
}

// readJSON decodes path into v. It returns false for a missing file and an
// ErrCorruptFile error, naming the path and never quoting the content, for
// anything unreadable.
func readJSON(path string, v any) (bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%w: account store at %s is unreadable (%s) — fix or remove it", ErrCorruptFile, path, errors.Unwrap(err))
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("%w: account store at %s is corrupt (%s) — fix or remove it", ErrCorruptFile, path, jsonErrorText(err))
	}
	return true, nil
}

// writeJSON writes v as indented JSON with a trailing newline, atomically
// and with mode 0600.
func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	data = append(data, '\n')
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create directory of %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func defaultRoutingStatePath(configPath string) string {
	dir, base := filepath.Split(configPath)
	return filepath.Join(dir, trimJSON(base)+"-routing-state.json")
}

func trimJSON(name string) string {
	if len(name) > 5 && name[len(name)-5:] == ".json" {
		return name[:len(name)-5]
	}
	return name
}

// acquire takes the named cross-process lock (<config>.<name>.lock) with the
// given time to live, waiting up to wait for it. The returned release
// function is safe to call once. ErrLockTimeout when the wait runs out.
// TODO(core): implement with the lock-file protocol of section 1.6.
func (s *Store) acquire(ctx context.Context, name string, ttl, wait time.Duration) (release func(), err error) {
	return func() {}, nil
}
