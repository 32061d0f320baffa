package core

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"

	"github.com/acctpool/acctpool/core/internal/atomicfile"
	"github.com/acctpool/acctpool/core/internal/lockfile"
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
	// DefaultWriteBehind, a negative value writes each one at once.
	WriteBehind time.Duration
	// AfterFunc schedules the write-behind flush; nil means
	// time.AfterFunc. Tests inject one they fire by hand.
	AfterFunc AfterFunc
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

	looseWarned sync.Map // path → true once a loose mode was reported

	backend Backend // nil: the files

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
	cur        *Snapshot
	curGen     uint64
	// curBackend is the backend's generation cur was read at.
	curBackend uint64
	cfgStamp   fileStamp
	stStamp    fileStamp
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
	s := &Store{paths: opts.Paths, logger: l, wall: opts.WallClock, interval: opts.WriteBehind, afterFunc: opts.AfterFunc, backend: opts.Backend}
	if s.interval == 0 {
		s.interval = DefaultWriteBehind
	}
	if s.afterFunc == nil {
		s.afterFunc = systemAfterFunc
	}
	if s.backend != nil {
		return s, nil
	}
	// Temporary files our writers left when they were killed mid-save are
	// full copies of the tokens, or the journal of a rotation that was not
	// saved yet: adopt what is newer than the disk, then remove them.
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
	cfg, _, err := s.readConfig()
	if err != nil {
		return nil, err
	}
	st, _, err := s.readState()
	if err != nil {
		return nil, err
	}
	if s.hasPending() {
		if st == nil {
			st = &StateFile{}
		}
		normalizeState(st)
		s.overlayPending(st)
	}
	if obs := s.queued(); len(obs) > 0 {
		// Observations not written yet (BEHAVIOUR.md §1.9).
		if st == nil {
			st = &StateFile{}
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
func (s *Store) UpdateState(ctx context.Context, fn func(st *StateFile) error) (*Snapshot, error) {
	return s.updateState(ctx, nil, fn)
}

// updateState is UpdateState writing through res, space reserved before a
// token call (nil: a plain write).
func (s *Store) updateState(ctx context.Context, res *stateReservation, fn func(st *StateFile) error) (*Snapshot, error) {
	if s.backend != nil {
		return s.backendWrite(ctx, s.backend.UpdateState, fn)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if res != nil {
		defer res.r.Abort()
		// Give back the spare room, so the state lock file finds space.
		res.r.Shrink(res.keep)
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
	if res != nil && res.journal != nil {
		res.journal.Abort() // saved: the journal has served
	}
	s.publish(snap, stamps[0], stamps[1], gen)
	return snap, nil
}

func (s *Store) updateStateLocked(ctx context.Context, res *stateReservation, obs []observation, fn func(st *StateFile) error) (*Snapshot, [2]fileStamp, error) {
	var snap *Snapshot
	var stamps [2]fileStamp
	err := s.retryLost(s.paths.State, func() error {
		return s.withLock(ctx, lockStateWrite, func(owned func() error) error {
			// The config is read only now, under the state lock: a config
			// writer writes the config before it takes the state lock, so
			// an account it adds is visible here before its state entry
			// is, and pruning can never remove a fresh account's tokens.
			// Its stamp is taken first: a change after it only makes the
			// cached snapshot look stale.
			stamps[0], _ = stampOf(s.paths.Config)
			cfg, _, err := s.readConfig()
			if err != nil {
				return err
			}
			st, raw, err := s.readState()
			if err != nil {
				return err
			}
			if st == nil {
				st = &StateFile{}
			}
			normalizeState(st)
			applied := s.overlayPending(st)
			replay(st, obs)
			if err := fn(st); err != nil {
				return err
			}
			normalizeState(st)
			pruneState(cfg, st)
			if err := writeIfChanged(s.paths.State, raw, st, owned, res); err != nil {
				return err
			}
			// Still under the lock: this stamp is our version of the file.
			stamps[1], _ = stampOf(s.paths.State)
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

// lostLockAttempts bounds how often one update re-runs after losing its
// lock before the write.
const lostLockAttempts = 3

// retryLost runs cycle (take the lock, re-read, apply, write) again when it
// fails because the lock was lost before the write, so that a change is
// re-applied to what the evicting process wrote instead of being dropped.
func (s *Store) retryLost(path string, cycle func() error) error {
	var err error
	for attempt := 1; attempt <= lostLockAttempts; attempt++ {
		if err = cycle(); !errors.Is(err, lockfile.ErrLost) {
			return err
		}
		s.logger.Warn("write lock lost before the write; re-reading and re-applying", "path", path, "attempt", attempt)
	}
	return fmt.Errorf("write %s: its lock was taken away %d times before the write (another process evicting it); nothing written, try again: %w", path, lostLockAttempts, err)
}

// UpdateConfig re-reads both files under the config lock and then the state
// lock, lets fn change them, and writes both back. When the config does not
// exist, fn sees the empty config upstream synthesizes. Credentials that an
// old config carries inline are moved into the state before fn runs and are
// never written back to the config. State entries of accounts no longer in
// the config are pruned. Queued observations are written along, and the
// returned snapshot, shared, becomes the cached view (see UpdateState).
func (s *Store) UpdateConfig(ctx context.Context, fn func(cfg *ConfigFile, st *StateFile) error) (*Snapshot, error) {
	if s.backend != nil {
		return s.backendUpdateConfig(ctx, fn)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	obs := s.takeQueue()
	var snap *Snapshot
	var stamps [2]fileStamp
	err := s.retryLost(s.paths.Config, func() error {
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

func (s *Store) updateConfigOnce(ctx context.Context, obs []observation, fn func(cfg *ConfigFile, st *StateFile) error, out **Snapshot, stamps *[2]fileStamp) error {
	return s.withLock(ctx, lockConfigWrite, func(configOwned func() error) error {
		cfg, cfgRaw, err := s.readConfig()
		if err != nil {
			return err
		}
		return s.withLock(ctx, lockStateWrite, func(stateOwned func() error) error {
			st, stRaw, err := s.readState()
			if err != nil {
				return err
			}
			if cfg == nil {
				cfg = emptyConfig()
			}
			if st == nil {
				st = &StateFile{}
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
			if err := writeIfChanged(s.paths.State, stRaw, st, stateOwned, nil); err != nil {
				return err
			}
			s.settlePending(applied, st)
			if err := writeIfChanged(s.paths.Config, cfgRaw, cfg, configOwned, nil); err != nil {
				return err
			}
			// Under both locks: these stamps are our versions.
			stamps[0], _ = stampOf(s.paths.Config)
			stamps[1], _ = stampOf(s.paths.State)
			*out, err = buildSnapshot(cfg, st)
			return err
		})
	})
}

const defaultMainSection = `{"type":"opencode","provider":"anthropic"}`

// emptyConfig is the config upstream synthesizes when only the state file
// exists (BEHAVIOUR.md §1.2).
func emptyConfig() *ConfigFile {
	return &ConfigFile{Version: 1, Main: json.RawMessage(defaultMainSection), Accounts: []AccountConfig{}}
}

func normalizeState(st *StateFile) {
	if st.Version == 0 {
		st.Version = 1
	}
	if st.Accounts == nil {
		st.Accounts = map[string]*AccountState{}
	}
}

// pruneState deletes state entries whose account the config does not list.
// Nothing is pruned without a config file, or when a config entry has no
// id (upstream skips pruning when an entry is unparseable).
func pruneState(cfg *ConfigFile, st *StateFile) {
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

// Lock names and timings of the upstream protocol (BEHAVIOUR.md §1.7).
const (
	lockConfigWrite = "config-write"
	lockStateWrite  = "state-write"
	writeLockTTL    = 10 * time.Second
	writeLockWait   = 12 * time.Second
	lockPoll        = 25 * time.Millisecond
)

// lockTimeouts are upstream's messages for the two write locks.
var lockTimeouts = map[string]string{
	lockConfigWrite: "Timed out waiting for the account configuration write lock",
	lockStateWrite:  "Timed out waiting for the account state write lock",
}

// lockTimeoutError is a lock wait that ran out. Its message is upstream's
// wording; it matches [ErrLockTimeout]. holder says who held the lock and
// until when, as far as its file tells (" held by pid 12 on host h until
// <time>").
type lockTimeoutError struct{ msg, holder string }

func (e *lockTimeoutError) Error() string { return e.msg }
func (e *lockTimeoutError) Unwrap() error { return ErrLockTimeout }

// withLock runs fn while holding the named write lock. fn receives owned,
// which reports an error once the lock has been lost (evicted while we
// stalled); writers call it right before they commit.
func (s *Store) withLock(ctx context.Context, name string, fn func(owned func() error) error) error {
	l, err := s.lockAt(ctx, s.lockPath(name), writeLockTTL, writeLockWait, lockPoll)
	if err != nil {
		return err
	}
	err = fn(l.AssertOwned)
	if rerr := l.Release(); rerr != nil && err == nil {
		s.logger.Warn("release lock", "lock", l.Path(), "err", rerr)
	}
	return err
}

func (s *Store) lockPath(name string) string { return s.paths.Config + "." + name + ".lock" }

// acquire takes the named cross-process lock (<config>.<name>.lock) with the
// given time to live, waiting up to wait for it and polling every 25 ms.
// The lock is renewed while held. The returned release function is safe to
// call more than once. The error wraps ErrLockTimeout when the wait runs
// out.
func (s *Store) acquire(ctx context.Context, name string, ttl, wait time.Duration) (release func(), err error) {
	return s.acquireAt(ctx, s.lockPath(name), ttl, wait, lockPoll)
}

// acquireAt is acquire for an arbitrary lock file path, for locks that do
// not sit beside the config (the sticky routing file's
// "<routing-state>.write.lock").
func (s *Store) acquireAt(ctx context.Context, lockPath string, ttl, wait, poll time.Duration) (func(), error) {
	l, err := s.lockAt(ctx, lockPath, ttl, wait, poll)
	if err != nil {
		return nil, err
	}
	return func() {
		if err := l.Release(); err != nil {
			s.logger.Warn("release lock", "lock", lockPath, "err", err)
		}
	}, nil
}

func (s *Store) lockAt(ctx context.Context, lockPath string, ttl, wait, poll time.Duration) (*lockfile.Lock, error) {
	// Locks are taken only to write: a first write into a config
	// directory that does not exist yet creates it (mode 0700).
	if err := os.MkdirAll(filepath.Dir(lockPath), 0o700); err != nil {
		return nil, fmt.Errorf("create directory %s: %w", filepath.Dir(lockPath), err)
	}
	l, err := lockfile.Acquire(ctx, lockPath, lockfile.Options{TTL: ttl, Now: s.wall}, wait, poll)
	if errors.Is(err, lockfile.ErrTimeout) {
		name := strings.TrimSuffix(strings.TrimPrefix(lockPath, s.paths.Config+"."), ".lock")
		msg, ok := lockTimeouts[name]
		if !ok {
			msg = "Timed out waiting for lock " + filepath.Base(lockPath)
		}
		holder := ""
		var te *lockfile.TimeoutError
		if errors.As(err, &te) {
			holder = " held by " + te.Holder.String() + te.UntilText()
		}
		return nil, &lockTimeoutError{msg: msg, holder: holder}
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", filepath.Base(lockPath), err)
	}
	return l, nil
}

// readConfig returns the config file, its raw bytes, or nil for a missing
// file.
func readConfig(path string) (*ConfigFile, []byte, error) {
	var c ConfigFile
	raw, err := readJSON(path, &c)
	if err != nil || raw == nil {
		return nil, nil, err
	}
	return &c, raw, nil
}

// readState returns the state file, its raw bytes, or nil for a missing
// file.
func readState(path string) (*StateFile, []byte, error) {
	var st StateFile
	raw, err := readJSON(path, &st)
	if err != nil || raw == nil {
		return nil, nil, err
	}
	return &st, raw, nil
}

// readJSON decodes the JSON object in path into v and returns the file's
// bytes, or nil bytes for a missing file. Anything else that cannot be
// read as a JSON object is an error wrapping ErrCorruptFile in upstream's
// wording; it names the path and never quotes the content, which may hold
// tokens.
func readJSON(path string, v any) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		cause := err
		var pe *fs.PathError
		if errors.As(err, &pe) {
			cause = pe.Err
		}
		return nil, corrupt(path, cause.Error())
	}
	if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '{' {
		return nil, corrupt(path, "not a JSON object")
	}
	if err := decodeFile(data, v); err != nil {
		return nil, corrupt(path, jsonErrorAt(data, err))
	}
	return data, nil
}

// decodeFile decodes a whole file into v: one pass for the document
// types (their UnmarshalJSON checks the whole text), goccy/go-json for
// anything else.
func decodeFile(data []byte, v any) error {
	if u, ok := v.(json.Unmarshaler); ok {
		return u.UnmarshalJSON(data)
	}
	return json.Unmarshal(data, v)
}

func corrupt(path, cause string) error {
	return fmt.Errorf("%w: account store at %s is corrupt or unreadable (%s) — fix or remove it", ErrCorruptFile, path, cause)
}

// encodeFile is the upstream file format: 2-space indented JSON and a
// trailing newline.
func encodeFile(v any) ([]byte, error) {
	if d, ok := v.(docEncoder); ok {
		data, err := encodeSized("  ", &fileSize, d.encodeJSON)
		if err != nil {
			return nil, err
		}
		return append(data, '\n'), nil
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// writeIfChanged writes v to path atomically (mode 0600) unless its
// encoding equals old, the bytes read under the same lock. owned is checked
// right before the write. res, when not nil and unused, is the reserved
// temporary file to write through.
func writeIfChanged(path string, old []byte, v any, owned func() error, res *stateReservation) error {
	data, err := encodeFile(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	if old != nil && bytes.Equal(data, old) {
		return nil
	}
	if err := owned(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if res != nil && !res.r.Done() {
		return res.r.Commit(data)
	}
	return atomicfile.Write(path, data)
}
