package filestore

import (
	"context"
	"fmt"
	"time"

	"github.com/acctpool/acctpool/core/internal/atomicfile"
)

// The routing-state file's write lock, "<routing-state>.write.lock"
// (BEHAVIOUR.md §5.4).
const (
	routingLockTTL  = 10 * time.Second
	routingLockWait = 5 * time.Second
	routingLockPoll = 10 * time.Millisecond
)

// UpdateRoutingState runs update under the routing-state file's write lock
// and writes the bytes it returns atomically (mode 0600). update reads the
// file itself, so it sees what is on disk now. It returns the stamp of the
// version written, taken under the lock (zero when the stat fails).
func (f *Files) UpdateRoutingState(ctx context.Context, update func() ([]byte, error)) (Stamp, error) {
	release, err := f.AcquireAt(ctx, f.RoutingState+".write.lock", routingLockTTL, routingLockWait, routingLockPoll)
	if err != nil {
		return Stamp{}, fmt.Errorf("lock routing state: %w", err)
	}
	defer release()
	data, err := update()
	if err != nil {
		return Stamp{}, err
	}
	if err := atomicfile.Write(f.RoutingState, data); err != nil {
		return Stamp{}, fmt.Errorf("write routing state: %w", err)
	}
	fi, _ := StampOf(f.RoutingState) // under the lock: our version
	return fi, nil
}
