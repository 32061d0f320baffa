package pgstore

import (
	"context"
	"time"

	"github.com/acctpool/acctpool/core/record"
)

// Import makes the store hold cfg and st (the upstream files' content; nil
// when a file is absent) and, when routing is not nil, the sticky routing
// state: the accounts in order with their settings, their state entries
// with tokens (sealed), and this host's main account and main section.
// Running it again with the same files changes nothing (idempotent).
func (s *Store) Import(ctx context.Context, cfg *record.ConfigFile, st *record.StateFile, routing []byte) error {
	if cfg != nil || st != nil {
		if _, err := s.UpdateConfig(ctx, func(dst *record.ConfigFile, dstState *record.StateFile) error {
			if cfg != nil {
				*dst = *cfg
			} else {
				dst.Accounts = []record.AccountConfig{}
			}
			if st != nil {
				*dstState = *st
			}
			if dstState.Accounts == nil {
				dstState.Accounts = map[string]*record.AccountState{}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	if routing == nil {
		return nil
	}
	return s.UpdateRouting(ctx, time.Now(), func([]byte) ([]byte, error) { return routing, nil })
}

// Export returns what the store holds in the upstream files' shapes: the
// config and the state as this host sees them (its own main account), nil
// when never written, and the sticky routing state (nil when none).
func (s *Store) Export(ctx context.Context) (cfg *record.ConfigFile, st *record.StateFile, routing []byte, err error) {
	if cfg, st, err = s.Read(ctx); err != nil {
		return nil, nil, nil, err
	}
	if routing, err = s.LoadRouting(ctx); err != nil {
		return nil, nil, nil, err
	}
	return cfg, st, routing, nil
}
