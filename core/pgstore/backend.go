package pgstore

import (
	"context"
	"time"

	"github.com/acctpool/acctpool/core"
)

// Backend returns the store as a core.Backend, for core.StoreOptions: the
// engine then keeps its accounts, state and sticky routing here.
func (s *Store) Backend() core.Backend { return backend{s} }

// backend adapts Store to core.Backend.
type backend struct{ *Store }

// LockAccount implements core.Backend.
func (b backend) LockAccount(ctx context.Context, id string, wait time.Duration) (core.AccountLock, error) {
	l, err := b.Store.LockAccount(ctx, id, wait)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// Subscribe reports other Stores' changes (this one's own writes are
// already known to the engine).
func (b backend) Subscribe(fn func(accounts []string, config bool)) func() {
	return b.Store.Subscribe(func(c Change) {
		if c.Origin == b.origin {
			return
		}
		switch c.Kind {
		case ChangeState:
			fn(c.Accounts, false)
		case ChangeConfig, ChangeReset:
			fn(c.Accounts, true)
		}
	})
}

// HolderName is the holding session's name, for the engine's message.
func (e *LockTimeoutError) HolderName() string { return e.Holder }

var _ core.Backend = backend{}
