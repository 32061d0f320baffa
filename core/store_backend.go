package core

import "github.com/acctpool/acctpool/core/record"

// This file is the part of the store that does not depend on where the
// bytes live. The file store and the PostgreSQL store (package
// core/pgstore) read and write the same ConfigFile and StateFile shapes;
// what a read returns and what a write normalizes and prunes is decided
// here, once, so the two cannot drift apart.

// SnapshotOf is the snapshot a Load returns for a config and a state as
// stored (nil when absent): an absent config beside a state is the empty
// config upstream synthesizes, and inline credentials of an old config are
// read as the state's (in memory only).
func SnapshotOf(cfg *record.ConfigFile, st *record.StateFile) (*Snapshot, error) {
	if cfg == nil && st != nil {
		cfg = emptyConfig()
	}
	migrateLegacyCredentials(cfg, st)
	return buildSnapshot(cfg, st)
}

// EditState applies fn to st the way [Store.UpdateState] does: st (nil:
// the empty state) is normalized, fn changes it in place, and entries of
// accounts that cfg does not list are pruned. It returns the state to
// write and the snapshot after the write. cfg is only read.
func EditState(cfg *record.ConfigFile, st *record.StateFile, fn func(st *record.StateFile) error) (*record.StateFile, *Snapshot, error) {
	if st == nil {
		st = &record.StateFile{}
	}
	normalizeState(st)
	if err := fn(st); err != nil {
		return nil, nil, err
	}
	normalizeState(st)
	pruneState(cfg, st)
	if cfg == nil {
		cfg = emptyConfig()
	}
	snap, err := buildSnapshot(cfg, st)
	if err != nil {
		return nil, nil, err
	}
	return st, snap, nil
}

// EditConfig applies fn to cfg and st the way [Store.UpdateConfig] does:
// an absent config is the empty one, inline credentials move into the
// state before fn runs, the config gets version 1 and a main section, and
// state entries of accounts no longer listed are pruned. It returns the
// config and state to write and the snapshot after the write.
func EditConfig(cfg *record.ConfigFile, st *record.StateFile, fn func(cfg *record.ConfigFile, st *record.StateFile) error) (*record.ConfigFile, *record.StateFile, *Snapshot, error) {
	if cfg == nil {
		cfg = emptyConfig()
	}
	if st == nil {
		st = &record.StateFile{}
	}
	normalizeState(st)
	migrateLegacyCredentials(cfg, st)
	if err := fn(cfg, st); err != nil {
		return nil, nil, nil, err
	}
	cfg.Version = 1
	if len(cfg.Main) == 0 {
		cfg.Main = []byte(defaultMainSection)
	}
	normalizeState(st)
	pruneState(cfg, st)
	snap, err := buildSnapshot(cfg, st)
	if err != nil {
		return nil, nil, nil, err
	}
	return cfg, st, snap, nil
}

// Sticky assignment limits every routing store keeps (BEHAVIOUR.md
// §1.5): an assignment idle this long is dropped, and beyond the cap the
// least recently seen ones are.
const (
	StickyAssignmentTTL = stickyTTL
	StickyAssignmentCap = stickyMax
)
