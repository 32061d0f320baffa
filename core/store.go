package core

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acctpool/acctpool/core/internal/filestore"
	"github.com/acctpool/acctpool/core/record"
	json "github.com/goccy/go-json"
)

// StoreOptions configure a [Store]. Zero values mean the defaults.
type StoreOptions struct {
	Paths Paths
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// WallClock is the clock that lock-file expiry is judged on; nil means
	// the system wall clock.
	//
	// # Notes
	//
	// It is deliberately not the engine's [Clock]: lock files are shared
	// with other processes, which compare expiresAt with their own wall
	// clock, so a manual engine clock must not move it. Tests set it to
	// age a stale lock without sleeping.
	WallClock func() time.Time
	// Backend, when set, keeps the accounts, settings, state and sticky
	// routing instead of the files (the PostgreSQL store); Paths still
	// locate the host's own lock files.
	Backend Backend
	// WriteBehind is how long observations (header quota, lastUsed,
	// transient backoff records, the spent-window record) may stay in
	// memory before they are written (BEHAVIOUR.md §1.9); zero means
	// one second, a negative value writes each one at once.
	WriteBehind time.Duration
	// AfterFunc schedules the write-behind flush; nil means
	// time.AfterFunc. Tests inject one they fire by hand.
	AfterFunc AfterFunc
	// ReadOnly opens the files only to read them: no adoption of killed
	// writers' leftovers at open, no mode changes, and every write fails
	// with ErrReadOnly. `acctpool check` opens its store so, because a
	// check must leave the files exactly as it found them.
	ReadOnly bool
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
// in that order. A corrupt file is reported (wrapping [ErrCorruptFile]) and
// never overwritten.
type Store struct {
	paths  Paths
	logger *slog.Logger
	wall   func() time.Time // nil: lockfile's default wall clock
	mu     sync.Mutex       // serializes writers inside the process
	// gen counts this process's writes, so caches of the files (routing)
	// see them at once without asking the file system.
	gen atomic.Uint64

	pendMu  sync.Mutex
	pending map[string]*pendingPair // rotated pairs not saved yet, by account

	// files are the three files and their lock protocol.
	files *filestore.Files

	backend Backend // nil: the files
	// readOnly refuses every write (StoreOptions.ReadOnly).
	readOnly bool

	// Write-behind of observations (BEHAVIOUR.md §1.9) and the current
	// snapshot, guarded by obsMu: cur is what our last write produced
	// plus the observations queued since; it is current while curGen is
	// the generation and the files' stamps are unchanged.
	interval  time.Duration
	afterFunc AfterFunc
	obsMu     sync.Mutex
	queue     []observation
	inflight  []observation // taken by the write in progress
	// dropWarned is set once capQueueLocked has logged dropping.
	dropWarned bool
	armed      bool
	// earlyArmed is set while a flush asked for by a full batch
	// (flushEarlyAt) is pending.
	earlyArmed bool
	cur        *Snapshot
	curGen     uint64
	// curBackend is the backend's generation cur was read at.
	curBackend uint64
	cfgStamp   filestore.Stamp
	stStamp    filestore.Stamp
	checked    time.Time
}

// generation returns the count of writes this store has made.
func (s *Store) generation() uint64 {
	if s.backend != nil {
		return s.gen.Load() + s.backend.Generation()
	}
	return s.gen.Load()
}

// wallNow is the wall clock that cross-process facts (lock expiry, when a
// file was last looked at) are judged on; StoreOptions.WallClock in tests.
// It is not the engine's Clock, which a manual clock may hold still.
func (s *Store) wallNow() time.Time {
	if s.wall != nil {
		return s.wall()
	}
	return time.Now()
}

// NewStore returns a store for the given paths.
func NewStore(opts StoreOptions) (*Store, error) {
	if opts.Paths.Config == "" || opts.Paths.State == "" {
		return nil, fmt.Errorf("%w: config and state paths are required", ErrConfigInvalid)
	}
	if opts.Paths.RoutingState == "" {
		opts.Paths.RoutingState = defaultRoutingStatePath(opts.Paths.Config)
	}
	p := opts.Paths
	if p.Config == p.State || p.Config == p.RoutingState || p.State == p.RoutingState {
		return nil, fmt.Errorf("%w: config, state and routing state paths must differ", ErrConfigInvalid)
	}
	l := opts.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	s := &Store{paths: opts.Paths, logger: l, wall: opts.WallClock, interval: opts.WriteBehind, afterFunc: opts.AfterFunc, backend: opts.Backend,
		readOnly: opts.ReadOnly,
		files:    &filestore.Files{Config: p.Config, State: p.State, RoutingState: p.RoutingState, Logger: l, Wall: opts.WallClock, ReadOnly: opts.ReadOnly}}
	if s.interval == 0 {
		s.interval = defaultWriteBehind
	}
	if s.afterFunc == nil {
		s.afterFunc = systemAfterFunc
	}
	// Temporary files our writers left when they were killed mid-save are
	// full copies of the tokens, or the journal of a rotation that was not
	// saved yet: adopt what is newer than the disk (or the backend), then
	// remove them. A read-only store leaves them for the next writer.
	if s.readOnly {
		return s, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), saveTimeout)
	defer cancel()
	if _, err := s.salvageTemps(ctx); err != nil {
		s.logger.Warn("temporary files of killed writers kept", "err", err)
	}
	return s, nil
}

// Paths returns the store's file paths.
func (s *Store) Paths() Paths { return s.paths }

// Load reads both files and returns the merged snapshot. A missing file is
// not an error; a corrupt one is, and names the path without quoting it.
// When only the state file exists, the config is the empty one upstream
// synthesizes (BEHAVIOUR.md §1.2).
//
// Rotated tokens whose save failed (see [Store.UpdateState]) are served in
// place of the consumed ones still on disk, and the observations not
// written yet (BEHAVIOUR.md §1.9) are applied on top.
func (s *Store) Load(ctx context.Context) (*Snapshot, error) {
	if s.backend != nil {
		return s.backendLoad(ctx)
	}
	cfg, _, err := s.files.ReadConfig()
	if err != nil {
		return nil, err
	}
	st, _, err := s.files.ReadState()
	if err != nil {
		return nil, err
	}
	if s.hasPending() {
		if st == nil {
			st = &record.StateFile{}
		}
		normalizeState(st)
		s.overlayPending(st)
	}
	if obs := s.queued(); len(obs) > 0 {
		// Observations not written yet (BEHAVIOUR.md §1.9).
		if st == nil {
			st = &record.StateFile{}
		}
		normalizeState(st)
		replay(st, obs)
	}
	if cfg == nil && st != nil {
		cfg = emptyConfig()
	}
	migrateLegacyCredentials(cfg, st) // in memory only; written by UpdateConfig
	return buildSnapshot(cfg, st)
}

// UpdateState re-reads the state file under its lock, lets fn change it,
// and writes it back. fn must change only what it means to change: it sees
// the file as it is on disk now, not a stale copy. The config file is never
// written; state entries of accounts that the config no longer lists are
// pruned (config membership is authoritative, as upstream).
//
// # Notes
//
// fn runs with the store's in-process mutex held: it must not call another
// Update method of the same store. Nothing is written when fn returns an
// error or changes nothing. When the lock is lost before the write (another
// process evicted it), the whole cycle runs again, fn included, up to
// lostLockAttempts times: fn must only describe a change to the st it is
// given. Rotated tokens whose earlier save failed, and the observations
// queued for the write-behind flush (BEHAVIOUR.md §1.9), are written along.
// The returned snapshot becomes the store's cached view of the files; it
// is shared and must not be modified.
func (s *Store) UpdateState(ctx context.Context, fn func(st *record.StateFile) error) (*Snapshot, error) {
	return s.updateState(ctx, nil, fn)
}

// updateState is UpdateState writing through res, space reserved before a
// token call (nil: a plain write).
func (s *Store) updateState(ctx context.Context, res *filestore.Reservation, fn func(st *record.StateFile) error) (*Snapshot, error) {
	if s.readOnly {
		return nil, ErrReadOnly
	}
	if s.backend != nil {
		return s.backendWrite(ctx, s.backend.UpdateState, fn)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if res != nil {
		defer res.AbortWrite()
		// Give back the spare room, so the state lock file finds space.
		res.BeforeLock()
	}
	// Every state write carries the observations queued so far
	// (BEHAVIOUR.md §1.9), replayed before fn: they happened first.
	obs := s.takeQueue()
	snap, stamps, err := s.updateStateLocked(ctx, res, obs, fn)
	gen := s.gen.Add(1)
	if err != nil {
		s.requeue(obs)
		return nil, err
	}
	if res != nil {
		res.Saved() // the journal has served
	}
	s.publish(snap, stamps[0], stamps[1], gen)
	return snap, nil
}

func (s *Store) updateStateLocked(ctx context.Context, res *filestore.Reservation, obs []observation, fn func(st *record.StateFile) error) (*Snapshot, [2]filestore.Stamp, error) {
	var snap *Snapshot
	var stamps [2]filestore.Stamp
	err := s.files.RetryLost(s.paths.State, func() error {
		return s.files.WithLock(ctx, filestore.LockStateWrite, func(owned func() error) error {
			// The config is read only now, under the state lock: a config
			// writer writes the config before it takes the state lock, so
			// an account it adds is visible here before its state entry
			// is, and pruning can never remove a fresh account's tokens.
			// Its stamp is taken first: a change after it only makes the
			// cached snapshot look stale.
			stamps[0], _ = filestore.StampOf(s.paths.Config)
			cfg, _, err := s.files.ReadConfig()
			if err != nil {
				return err
			}
			st, raw, err := s.files.ReadState()
			if err != nil {
				return err
			}
			if st == nil {
				st = &record.StateFile{}
			}
			normalizeState(st)
			applied := s.overlayPending(st)
			replay(st, obs)
			if err := fn(st); err != nil {
				return err
			}
			normalizeState(st)
			pruneState(cfg, st)
			if err := filestore.WriteIfChanged(s.paths.State, raw, st, owned, res); err != nil {
				return err
			}
			// Still under the lock: this stamp is our version of the file.
			stamps[1], _ = filestore.StampOf(s.paths.State)
			s.settlePending(applied, st)
			if cfg == nil {
				cfg = emptyConfig()
			}
			snap, err = buildSnapshot(cfg, st)
			return err
		})
	})
	return snap, stamps, err
}

// UpdateConfig re-reads both files under the config lock and then the state
// lock, lets fn change them, and writes both back. When the config does not
// exist, fn sees the empty config upstream synthesizes. Credentials that an
// old config carries inline are moved into the state before fn runs and are
// never written back to the config. State entries of accounts no longer in
// the config are pruned. Queued observations are written along, and the
// returned snapshot, shared, becomes the cached view (see UpdateState).
func (s *Store) UpdateConfig(ctx context.Context, fn func(cfg *record.ConfigFile, st *record.StateFile) error) (*Snapshot, error) {
	if s.readOnly {
		return nil, ErrReadOnly
	}
	if s.backend != nil {
		return s.backendUpdateConfig(ctx, fn)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	obs := s.takeQueue()
	var snap *Snapshot
	var stamps [2]filestore.Stamp
	err := s.files.RetryLost(s.paths.Config, func() error {
		return s.updateConfigOnce(ctx, obs, fn, &snap, &stamps)
	})
	gen := s.gen.Add(1)
	if err != nil {
		s.requeue(obs)
		return nil, err
	}
	s.publish(snap, stamps[0], stamps[1], gen)
	return snap, nil
}

func (s *Store) updateConfigOnce(ctx context.Context, obs []observation, fn func(cfg *record.ConfigFile, st *record.StateFile) error, out **Snapshot, stamps *[2]filestore.Stamp) error {
	return s.files.WithLock(ctx, filestore.LockConfigWrite, func(configOwned func() error) error {
		cfg, cfgRaw, err := s.files.ReadConfig()
		if err != nil {
			return err
		}
		return s.files.WithLock(ctx, filestore.LockStateWrite, func(stateOwned func() error) error {
			st, stRaw, err := s.files.ReadState()
			if err != nil {
				return err
			}
			if cfg == nil {
				cfg = emptyConfig()
			}
			if st == nil {
				st = &record.StateFile{}
			}
			normalizeState(st)
			applied := s.overlayPending(st)
			replay(st, obs)
			migrateLegacyCredentials(cfg, st)
			if err := fn(cfg, st); err != nil {
				return err
			}
			cfg.Version = 1
			if len(cfg.Main) == 0 {
				cfg.Main = json.RawMessage(defaultMainSection)
			}
			normalizeState(st)
			pruneState(cfg, st)
			// State first: if the config write then fails, the accounts it
			// would have added have state that the next save prunes, while
			// the reverse order could list an account without its tokens.
			if err := filestore.WriteIfChanged(s.paths.State, stRaw, st, stateOwned, nil); err != nil {
				return err
			}
			s.settlePending(applied, st)
			if err := filestore.WriteIfChanged(s.paths.Config, cfgRaw, cfg, configOwned, nil); err != nil {
				return err
			}
			// Under both locks: these stamps are our versions.
			stamps[0], _ = filestore.StampOf(s.paths.Config)
			stamps[1], _ = filestore.StampOf(s.paths.State)
			*out, err = buildSnapshot(cfg, st)
			return err
		})
	})
}

const defaultMainSection = `{"type":"opencode","provider":"anthropic"}`

// emptyConfig is the config upstream synthesizes when only the state file
// exists (BEHAVIOUR.md §1.2).
func emptyConfig() *record.ConfigFile {
	return &record.ConfigFile{Version: 1, Main: json.RawMessage(defaultMainSection), Accounts: []record.AccountConfig{}}
}

func normalizeState(st *record.StateFile) {
	if st.Version == 0 {
		st.Version = 1
	}
	if st.Accounts == nil {
		st.Accounts = map[string]*record.AccountState{}
	}
}

// pruneState deletes state entries whose account the config does not list.
// Nothing is pruned without a config file, or when a config entry has no
// id (upstream skips pruning when an entry is unparseable).
func pruneState(cfg *record.ConfigFile, st *record.StateFile) {
	if cfg == nil {
		return
	}
	members := make(map[string]bool, len(cfg.Accounts))
	for _, a := range cfg.Accounts {
		id := strings.TrimSpace(a.ID)
		if id == "" {
			return
		}
		members[id] = true
	}
	for id := range st.Accounts {
		if !members[strings.TrimSpace(id)] {
			delete(st.Accounts, id)
		}
	}
}
