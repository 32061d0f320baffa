package core

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/acctpool/acctpool/core/internal/atomicfile"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
)

// Bounds of a detached rotation (see [Engine.detach]).
const (
	// rotationTimeout bounds the token call of one rotation, retries
	// included; it is the rotation's own deadline, not the caller's.
	rotationTimeout = 90 * time.Second
	// saveTimeout bounds the save of a rotated pair, lock wait included.
	saveTimeout = 30 * time.Second
)

// detached tracks the work that must finish even when the request that
// started it is cancelled: a token call that may consume a refresh token,
// and the save of what it returned. [Engine.Drain] waits for it.
type detached struct {
	mu    sync.Mutex
	tasks map[uint64]string // id → what it is, for the shutdown log
	next  uint64
	idle  chan struct{} // closed while tasks is empty
}

// detach runs fn in its own goroutine, tracked until it returns. name says
// what it is ("refresh fb") for Drain's log.
func (e *Engine) detach(name string, fn func()) {
	d := &e.detached
	d.mu.Lock()
	if d.tasks == nil {
		d.tasks = map[uint64]string{}
	}
	if len(d.tasks) == 0 {
		d.idle = make(chan struct{})
	}
	d.next++
	id := d.next
	d.tasks[id] = name
	d.mu.Unlock()
	go func() {
		defer func() {
			d.mu.Lock()
			delete(d.tasks, id)
			if len(d.tasks) == 0 {
				close(d.idle)
			}
			d.mu.Unlock()
		}()
		fn()
	}()
}

// inFlight returns the names of the detached tasks running now, sorted, and
// a channel closed once none is left (nil when none runs).
func (d *detached) inFlight() ([]string, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.tasks) == 0 {
		return nil, nil
	}
	names := make([]string, 0, len(d.tasks))
	for _, n := range d.tasks {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, d.idle
}

// runDetached runs fn as a detached task under a context that keeps ctx's
// values but not its cancellation, and waits for it or for ctx, whichever
// ends first. A caller that gives up gets ctx's error while fn goes on: once
// a token call has started, only fn knows whether the old refresh token is
// consumed, so only fn may decide when the work is over.
func runDetached[T any](e *Engine, ctx context.Context, name string, fn func(ctx context.Context) (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	dctx := context.WithoutCancel(ctx)
	e.detach(name, func() {
		v, err := fn(dctx)
		done <- result{v, err}
	})
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		e.log.Info("caller gave up; finishing in the background", "task", name)
		return zero, ctx.Err()
	}
}

// Drain waits until every rotation in flight has finished and persisted
// (or ctx ends), then makes one last attempt to save rotated tokens that a
// failed save left in memory. Hosts call it on the way out, bounded (the
// stdio server gives it 10 s), so that a shutdown right after the token
// endpoint answered does not throw the new tokens away. It logs what it
// waited for, and returns an error naming what is still unsaved.
func (e *Engine) Drain(ctx context.Context) error {
	start := time.Now()
	names, idle := e.detached.inFlight()
	waited := len(names) > 0
	if waited {
		e.log.Info("waiting for rotations in flight before exit", "tasks", strings.Join(names, ", "))
	}
	for idle != nil {
		select {
		case <-idle:
		case <-ctx.Done():
			left, _ := e.detached.inFlight()
			e.log.Error("gave up waiting for rotations in flight", "tasks", strings.Join(left, ", "), "waited", time.Since(start).Round(time.Millisecond))
			return fmt.Errorf("shutdown: %s still running after %s", strings.Join(left, ", "), time.Since(start).Round(time.Millisecond))
		}
		_, idle = e.detached.inFlight()
	}
	if pending := e.store.pendingIDs(); len(pending) > 0 {
		if _, err := e.store.UpdateState(ctx, func(*record.StateFile) error { return nil }); err != nil {
			e.log.Error("rotated tokens not saved at exit", "accounts", strings.Join(pending, ", "), "err", err)
			return fmt.Errorf("shutdown: rotated tokens of %s not saved: %w", strings.Join(pending, ", "), err)
		}
	}
	if waited {
		e.log.Info("rotations in flight finished", "waited", time.Since(start).Round(time.Millisecond))
	}
	// Observations still in memory (BEHAVIOUR.md §1.9).
	if err := e.Flush(ctx); err != nil {
		e.log.Error("observations not saved at exit", "err", err)
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// Backoff of the save retries of rotated tokens whose save failed. They
// run on real time: they are I/O retries, not policy, and must go on
// under a manual engine clock too.
const (
	persistRetryFirst = 100 * time.Millisecond
	persistRetryMax   = 30 * time.Second
)

// keepUnsaved handles a rotation whose save failed after the endpoint
// answered: the new pair becomes the account's credential in memory (so
// the consumed token is never posted again), a detached loop retries the
// save with backoff, and accounts/list shows persistPending until it
// succeeds. The refresh itself succeeded, so the caller gets the account.
func (e *Engine) keepUnsaved(ctx context.Context, id string, used secret.Secret, pair record.AccountState, journal *atomicfile.Reservation, saveErr error) (*Account, error) {
	e.store.setPending(id, used, pair, journal, saveErr)
	e.log.Warn("rotated tokens could not be saved; kept in memory and retrying", "account", id, "err", saveErr)
	e.emit(Event{Kind: EventAccountsChanged, Accounts: []string{id}})
	if e.store.claimRetry(id) {
		e.detach("save rotated tokens of "+id, func() { e.retryPersist(context.WithoutCancel(ctx), id) })
	}
	snap, err := e.store.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("refreshed %s but cannot read the files back: %w", id, err)
	}
	a, ok := snap.Account(id)
	if !ok {
		return nil, errorf(ErrNoAccount, "%s", id)
	}
	return a, nil
}

// retryPersist writes the pending pair of account id with a growing pause
// between attempts until it is on disk (or superseded).
func (e *Engine) retryPersist(ctx context.Context, id string) {
	defer e.store.endRetry(id)
	delay := persistRetryFirst
	for attempt := 1; ; attempt++ {
		if err := (SystemClock{}).Sleep(ctx, delay); err != nil {
			return
		}
		if pending, _ := e.store.pendingOf(id); !pending {
			return
		}
		saveCtx, cancel := context.WithTimeout(ctx, saveTimeout)
		_, err := e.store.UpdateState(saveCtx, func(*record.StateFile) error { return nil })
		cancel()
		if pending, _ := e.store.pendingOf(id); !pending {
			e.log.Info("rotated tokens saved", "account", id, "attempts", attempt)
			e.emit(Event{Kind: EventAccountsChanged, Accounts: []string{id}})
			return
		}
		delay = min(2*delay, persistRetryMax)
		if err != nil {
			e.store.notePendingError(id, err)
			e.log.Warn("saving rotated tokens failed again; will retry", "account", id, "attempt", attempt, "retryIn", delay, "err", err)
		}
	}
}
