package lockfile

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeClock is a wall clock that moves only when told to; its sleep
// advances it instead of waiting.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.UnixMilli(1_700_000_000_000)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.Advance(d)
	return ctx.Err()
}

func (c *fakeClock) opts(ttl time.Duration) Options {
	return Options{TTL: ttl, Now: c.Now, Sleep: c.Sleep, RenewEvery: -1}
}

func readLock(t *testing.T, path string) owner {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(string(data), "}\n"), "JSON and a newline: %q", data)
	var o owner
	require.NoError(t, json.Unmarshal(data, &o))
	return o
}

// writeOwner plants a lock file as another process would have left it.
func writeOwner(t *testing.T, path, id string, expiresAt time.Time) {
	t.Helper()
	data, _ := json.Marshal(owner{OwnerID: id, ExpiresAt: expiresAt.UnixMilli()})
	require.NoError(t, os.WriteFile(path, append(data, '\n'), 0o600))
}

func TestTryAcquire_fileShape(t *testing.T) {
	clk := newFakeClock()
	path := filepath.Join(t.TempDir(), "cfg.json.state-write.lock")
	l, err := TryAcquire(context.Background(), path, clk.opts(10*time.Second))
	require.NoError(t, err)
	require.NotNil(t, l)
	defer l.Release()

	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	o := readLock(t, path)
	assert.Equal(t, l.OwnerID(), o.OwnerID)
	assert.Len(t, o.OwnerID, 36, "a UUID")
	assert.Equal(t, clk.Now().Add(10*time.Second).UnixMilli(), o.ExpiresAt)
	data, _ := os.ReadFile(path)
	assert.NotContains(t, string(data), "createdAt")
}

func TestTryAcquire_liveness(t *testing.T) {
	clk := newFakeClock()
	ttl := 10 * time.Second
	cases := []struct {
		name  string
		plant func(t *testing.T, path string)
		held  bool
	}{
		{"live owner file is held", func(t *testing.T, p string) {
			writeOwner(t, p, "other", clk.Now().Add(time.Second))
		}, true},
		{"expired owner file is evicted", func(t *testing.T, p string) {
			writeOwner(t, p, "other", clk.Now().Add(-time.Millisecond))
		}, false},
		{"expiry exactly now is stale", func(t *testing.T, p string) {
			writeOwner(t, p, "other", clk.Now())
		}, false},
		{"unreadable file with fresh mtime is held", func(t *testing.T, p string) {
			require.NoError(t, os.WriteFile(p, []byte("{\"owner"), 0o600))
			require.NoError(t, os.Chtimes(p, clk.Now(), clk.Now().Add(-ttl+time.Second)))
		}, true},
		{"unreadable file with old mtime is evicted", func(t *testing.T, p string) {
			require.NoError(t, os.WriteFile(p, nil, 0o600))
			require.NoError(t, os.Chtimes(p, clk.Now(), clk.Now().Add(-ttl-time.Second)))
		}, false},
		{"legacy directory lock with live owner.json is held", func(t *testing.T, p string) {
			require.NoError(t, os.Mkdir(p, 0o700))
			writeOwner(t, filepath.Join(p, "owner.json"), "legacy", clk.Now().Add(time.Minute))
		}, true},
		{"initializing legacy directory is never stolen", func(t *testing.T, p string) {
			require.NoError(t, os.Mkdir(p, 0o700))
			require.NoError(t, os.Chtimes(p, clk.Now(), clk.Now().Add(-time.Hour)))
		}, true},
		{"legacy directory lock with expired owner.json is evicted", func(t *testing.T, p string) {
			require.NoError(t, os.Mkdir(p, 0o700))
			writeOwner(t, filepath.Join(p, "owner.json"), "legacy", clk.Now().Add(-time.Minute))
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.lock")
			tc.plant(t, path)
			l, err := TryAcquire(context.Background(), path, clk.opts(ttl))
			require.NoError(t, err)
			if tc.held {
				assert.Nil(t, l)
				return
			}
			require.NotNil(t, l)
			assert.Equal(t, l.OwnerID(), readLock(t, path).OwnerID)
			require.NoError(t, l.Release())
			assert.NoFileExists(t, path)
			assert.NoDirExists(t, path+".evicting", "marker released")
		})
	}
}

func TestTryAcquire_evictionMarker(t *testing.T) {
	clk := newFakeClock()
	cases := []struct {
		name     string
		age      time.Duration
		withFile bool
		held     bool
	}{
		{"young marker means someone is evicting", 4 * time.Second, true, true},
		{"abandoned marker is claimed", 6 * time.Second, true, false},
		{"abandoned marker without owner.json is claimed by mtime", 6 * time.Second, false, false},
		{"young marker without owner.json is respected", time.Second, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "x.lock")
			writeOwner(t, path, "dead", clk.Now().Add(-time.Minute))
			marker := path + ".evicting"
			require.NoError(t, os.Mkdir(marker, 0o700))
			created := clk.Now().Add(-tc.age)
			if tc.withFile {
				data, _ := json.Marshal(owner{OwnerID: "evictor", CreatedAt: created.UnixMilli()})
				require.NoError(t, os.WriteFile(filepath.Join(marker, "owner.json"), data, 0o600))
			}
			require.NoError(t, os.Chtimes(marker, created, created))

			l, err := TryAcquire(context.Background(), path, clk.opts(10*time.Second))
			require.NoError(t, err)
			if tc.held {
				assert.Nil(t, l)
				assert.Equal(t, "dead", readLock(t, path).OwnerID)
				return
			}
			require.NotNil(t, l)
			defer l.Release()
			entries, _ := os.ReadDir(dir)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			assert.Equal(t, []string{"x.lock"}, names, "marker and claimed marker are gone")
		})
	}
}

func TestAcquire_waitsThenTimesOut(t *testing.T) {
	clk := newFakeClock()
	path := filepath.Join(t.TempDir(), "x.lock")
	writeOwner(t, path, "other", clk.Now().Add(time.Hour))
	start := clk.Now()
	_, err := Acquire(context.Background(), path, clk.opts(10*time.Second), 12*time.Second, 25*time.Millisecond)
	require.ErrorIs(t, err, ErrTimeout)
	assert.Equal(t, 12*time.Second, clk.Now().Sub(start), "waited exactly the wait on the injected clock")
}

func TestAcquire_takesLockWhenItExpiresDuringTheWait(t *testing.T) {
	clk := newFakeClock()
	path := filepath.Join(t.TempDir(), "x.lock")
	writeOwner(t, path, "crashed", clk.Now().Add(3*time.Second))
	start := clk.Now()
	l, err := Acquire(context.Background(), path, clk.opts(10*time.Second), 12*time.Second, 25*time.Millisecond)
	require.NoError(t, err)
	defer l.Release()
	waited := clk.Now().Sub(start)
	assert.GreaterOrEqual(t, waited, 3*time.Second)
	assert.Less(t, waited, 3*time.Second+50*time.Millisecond)
}

func TestAcquire_contextCancelled(t *testing.T) {
	clk := newFakeClock()
	path := filepath.Join(t.TempDir(), "x.lock")
	writeOwner(t, path, "other", clk.Now().Add(time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Acquire(ctx, path, clk.opts(time.Second), time.Minute, time.Millisecond)
	require.ErrorIs(t, err, context.Canceled)
}

func TestLock_Release_onlyByOwner(t *testing.T) {
	clk := newFakeClock()
	path := filepath.Join(t.TempDir(), "x.lock")
	l, err := TryAcquire(context.Background(), path, clk.opts(10*time.Second))
	require.NoError(t, err)
	require.NotNil(t, l)

	// Our lock goes stale (we stalled) and another process takes it.
	clk.Advance(11 * time.Second)
	other, err := TryAcquire(context.Background(), path, clk.opts(10*time.Second))
	require.NoError(t, err)
	require.NotNil(t, other, "a stale lock is evicted")

	assert.ErrorIs(t, l.AssertOwned(), ErrLost)
	assert.Equal(t, "Account file lock ownership was lost", l.AssertOwned().Error())
	assert.ErrorIs(t, l.Renew(), ErrLost, "a lost lock is not renewed")
	require.NoError(t, l.Release())
	assert.Equal(t, other.OwnerID(), readLock(t, path).OwnerID, "release left the new owner's lock alone")
	require.NoError(t, l.Release(), "a second release does nothing")

	require.NoError(t, other.AssertOwned())
	require.NoError(t, other.Release())
	assert.NoFileExists(t, path)
	assert.ErrorIs(t, other.AssertOwned(), ErrLost, "released")
}

func TestLock_Renew(t *testing.T) {
	clk := newFakeClock()
	path := filepath.Join(t.TempDir(), "x.lock")
	l, err := TryAcquire(context.Background(), path, clk.opts(10*time.Second))
	require.NoError(t, err)
	defer l.Release()

	clk.Advance(4 * time.Second)
	require.NoError(t, l.Renew())
	assert.Equal(t, clk.Now().Add(10*time.Second).UnixMilli(), readLock(t, path).ExpiresAt)
	assert.Equal(t, clk.Now().Add(10*time.Second), l.ExpiresAt())

	// Renewed, the lock outlives its first expiry.
	clk.Advance(8 * time.Second)
	require.NoError(t, l.AssertOwned())
	other, err := TryAcquire(context.Background(), path, clk.opts(10*time.Second))
	require.NoError(t, err)
	assert.Nil(t, other)

	// Expired locks are not renewed: someone may be evicting them.
	clk.Advance(3 * time.Second)
	assert.ErrorIs(t, l.Renew(), ErrLost)
}

func TestLock_renewalGoroutine(t *testing.T) {
	clk := newFakeClock()
	path := filepath.Join(t.TempDir(), "x.lock")
	opts := clk.opts(10 * time.Second)
	opts.RenewEvery = time.Millisecond
	l, err := TryAcquire(context.Background(), path, opts)
	require.NoError(t, err)
	first := readLock(t, path).ExpiresAt

	clk.Advance(5 * time.Second)
	want := clk.Now().Add(10 * time.Second).UnixMilli()
	require.Eventually(t, func() bool { return l.ExpiresAt().UnixMilli() == want },
		time.Minute, time.Millisecond, "the goroutine renews")
	// The goroutine keeps rewriting the file in place, so a read can catch
	// it between truncate and write (other processes then fall back to
	// mtime+TTL); wait for a whole read that shows the renewal.
	require.Eventually(t, func() bool {
		data, err := os.ReadFile(path)
		var o owner
		return err == nil && json.Unmarshal(data, &o) == nil && o.ExpiresAt > first
	}, time.Minute, time.Millisecond, "the file shows the renewed expiry")

	require.NoError(t, l.Release()) // stops and waits for the goroutine
	assert.NoFileExists(t, path)
	select {
	case <-l.done:
	default:
		t.Fatal("renewal goroutine still running after Release")
	}
}

func TestOptions_defaultRenewEvery(t *testing.T) {
	cases := []struct {
		ttl, want time.Duration
	}{
		{10 * time.Second, 3333 * time.Millisecond},
		{2 * time.Second, time.Second},
		{10 * time.Minute, 200 * time.Second},
	}
	for _, tc := range cases {
		got := Options{TTL: tc.ttl}.withDefaults().RenewEvery
		assert.InDelta(t, tc.want, got, float64(time.Millisecond), "ttl %v", tc.ttl)
	}
}

// TestTryAcquire_hammer: many goroutines race to evict the same stale lock;
// exactly one wins each round, and mutual exclusion holds while they then
// take turns.
func TestTryAcquire_hammer(t *testing.T) {
	rounds, workers := 30, 16
	if testing.Short() {
		rounds = 5
	}
	clk := newFakeClock()
	for r := 0; r < rounds; r++ {
		path := filepath.Join(t.TempDir(), "x.lock")
		writeOwner(t, path, "crashed", clk.Now().Add(-time.Second))
		var winners atomic.Int32
		var start sync.WaitGroup
		start.Add(1)
		var wg sync.WaitGroup
		locks := make(chan *Lock, workers)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start.Wait()
				l, err := TryAcquire(context.Background(), path, Options{TTL: time.Minute, Now: clk.Now, RenewEvery: -1})
				assert.NoError(t, err)
				if l != nil {
					winners.Add(1)
					locks <- l
				}
			}()
		}
		start.Done()
		wg.Wait()
		close(locks)
		require.Equal(t, int32(1), winners.Load(), "round %d: exactly one winner", r)
		l := <-locks
		assert.Equal(t, l.OwnerID(), readLock(t, path).OwnerID)
		require.NoError(t, l.Release())
		assert.NoDirExists(t, path+".evicting")
	}
}

// TestAcquire_hammer: goroutines take turns under the lock with a real
// clock; the critical section is never entered twice at once.
func TestAcquire_hammer(t *testing.T) {
	workers, iters := 8, 40
	if testing.Short() {
		iters = 10
	}
	path := filepath.Join(t.TempDir(), "x.lock")
	var inside, total atomic.Int32
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < iters; i++ {
				l, err := Acquire(context.Background(), path, Options{TTL: 10 * time.Second}, 30*time.Second, time.Millisecond)
				if !assert.NoError(t, err) {
					return
				}
				if n := inside.Add(1); n != 1 {
					t.Errorf("%d holders at once", n)
				}
				total.Add(1)
				inside.Add(-1)
				assert.NoError(t, l.Release())
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int32(workers*iters), total.Load())
	assert.NoFileExists(t, path)
}
