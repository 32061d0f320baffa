// Package lockfile implements the cross-process lock-file protocol of the
// upstream TypeScript plugin (docs/BEHAVIOUR.md §1.7), so that acctpool and a
// running plugin exclude each other on the same files.
//
// A lock is a file created with O_CREAT|O_EXCL, mode 0600, holding
// {"ownerId":<uuid>,"expiresAt":<epoch ms>} and a newline. It is live while
// expiresAt lies in the future; a crashed owner's lock goes stale and is
// evicted by exactly one contender, which serializes through a marker
// directory "<lock>.evicting". An owner keeps its lock alive by renewing
// expiresAt and removes it on release only if it still owns it.
//
// Our lock files also carry the owner's process identity (pid, procStart,
// bootId, pidNs, host; see package procid). The upstream plugin reads only
// ownerId and expiresAt and ignores the rest. A live-looking lock whose
// owner is provably dead on this host is treated as stale at once; a lock
// without these keys (the plugin's) keeps the expiry rule.
//
// The package depends on the standard library only. Expiry is judged on an
// injected wall clock ([Options.Now]), because it is compared across
// processes.
package lockfile

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/acctpool/acctpool/core/internal/procid"
)

// Errors of the package.
var (
	// ErrTimeout means the lock stayed held by someone else for the whole
	// wait given to [Acquire].
	ErrTimeout = errors.New("timed out waiting for lock")
	// ErrLost means the lock was evicted or replaced while we believed we
	// held it. The wording is upstream's.
	// (Capitalized, unlike Go convention, to match upstream's message.)
	ErrLost = errors.New("Account file lock ownership was lost")
)

// Protocol constants of BEHAVIOUR.md §1.7.
const (
	// MarkerMaxAge is how long an eviction marker protects its creator;
	// an older marker is presumed abandoned and may be claimed.
	MarkerMaxAge = 5 * time.Second
	// EvictAttempts bounds the eviction attempts of one TryAcquire.
	EvictAttempts = 8
	// MinRenewEvery is the shortest renewal period.
	MinRenewEvery = time.Second
	maxBackoff    = 3 * time.Millisecond
	markerSuffix  = ".evicting"
	markerOwner   = "owner.json"
)

// Options configure one lock. Zero values mean the defaults.
type Options struct {
	// TTL is how long the lock stays live without renewal. Required.
	TTL time.Duration
	// Now is the wall clock that expiry is judged on; nil means time.Now.
	// It must be wall time: other processes compare against it.
	Now func() time.Time
	// Sleep waits for d or until ctx is done; nil means a real timer. It is
	// used between polls of Acquire and for the eviction backoff.
	Sleep func(ctx context.Context, d time.Duration) error
	// RenewEvery is the renewal period: 0 means max(1 s, TTL/3), a negative
	// value disables renewal.
	RenewEvery time.Duration
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	if o.RenewEvery == 0 {
		o.RenewEvery = max(MinRenewEvery, o.TTL/3)
	}
	return o
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// owner is the content of a lock file and of an eviction marker. The
// embedded identity adds the keys only acctpool reads.
type owner struct {
	OwnerID   string `json:"ownerId"`
	ExpiresAt int64  `json:"expiresAt,omitempty"`
	CreatedAt int64  `json:"createdAt,omitempty"`
	procid.Identity
}

// TimeoutError is a wait for a lock that ran out. It names the holder as
// far as its lock file tells (an upstream lock names no process) and when
// its claim ends. It matches [ErrTimeout].
type TimeoutError struct {
	Path string
	// Holder is the process recorded in the lock; zero when unknown.
	Holder procid.Identity
	// Until is the lock's expiresAt; zero when unreadable.
	Until time.Time
}

// Error implements error.
func (e *TimeoutError) Error() string {
	return fmt.Sprintf("%s: %s held by %s%s", ErrTimeout, e.Path, e.Holder, e.UntilText())
}

// UntilText is " until <RFC 3339 time>", or "" when the expiry is unknown.
func (e *TimeoutError) UntilText() string {
	if e.Until.IsZero() {
		return ""
	}
	return " until " + e.Until.UTC().Format(time.RFC3339)
}

// Unwrap returns ErrTimeout.
func (e *TimeoutError) Unwrap() error { return ErrTimeout }

func timeoutAt(path string) error {
	e := &TimeoutError{Path: path}
	file := path
	if fi, err := os.Lstat(path); err == nil && fi.IsDir() {
		file = path + string(os.PathSeparator) + markerOwner
	}
	if o, ok := readOwner(file); ok {
		e.Holder = o.Identity
		if o.ExpiresAt != 0 {
			e.Until = time.UnixMilli(o.ExpiresAt)
		}
	}
	return e
}

// Lock is a held lock file. Its methods are safe for concurrent use.
type Lock struct {
	path    string
	ownerID string
	opts    Options

	mu        sync.Mutex // guards expiresAt, released and file rewrites
	expiresAt int64
	released  bool

	stop chan struct{} // closed by Release to stop renewal
	done chan struct{} // closed when the renewal goroutine has returned
}

// Path returns the lock file's path.
func (l *Lock) Path() string { return l.path }

// OwnerID returns the random id written into the lock file.
func (l *Lock) OwnerID() string { return l.ownerID }

// Acquire takes the lock at path, polling every poll for up to wait while
// someone else holds it live. It returns a [*TimeoutError] (matching
// [ErrTimeout]) when the wait runs out. When ctx has a deadline sooner than
// the wait, the wait ends a poll before it, so that the caller hears who
// holds the lock rather than just that its time ran out.
func Acquire(ctx context.Context, path string, opts Options, wait, poll time.Duration) (*Lock, error) {
	opts = opts.withDefaults()
	deadline := opts.Now().Add(wait)
	if d, ok := ctx.Deadline(); ok {
		if left := time.Until(d) - poll; left < wait {
			deadline = opts.Now().Add(max(left, 0))
		}
	}
	for {
		l, err := TryAcquire(ctx, path, opts)
		if err != nil || l != nil {
			return l, err
		}
		if !opts.Now().Before(deadline) {
			return nil, timeoutAt(path)
		}
		if err := opts.Sleep(ctx, min(poll, deadline.Sub(opts.Now()))); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				// The caller's time ran out while the lock was held: a
				// late wake-up on a busy machine still says who holds it.
				return nil, timeoutAt(path)
			}
			return nil, err
		}
	}
}

// TryAcquire makes one attempt to take the lock at path. It returns a nil
// Lock and a nil error when someone else holds it live, or when another
// contender is evicting a stale lock at the same moment.
func TryAcquire(ctx context.Context, path string, opts Options) (*Lock, error) {
	opts = opts.withDefaults()
	if opts.TTL <= 0 {
		return nil, fmt.Errorf("lock %s: ttl must be positive", path)
	}
	for attempt := 0; attempt < EvictAttempts; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		l, err := create(path, opts)
		if err == nil {
			return l, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create lock %s: %w", path, err)
		}
		cur, live, err := inspect(path, opts)
		if err != nil {
			return nil, err
		}
		if live {
			return nil, nil
		}
		if cur.gone {
			continue
		}
		l, retry, err := evict(path, cur, opts)
		if err != nil || l != nil || !retry {
			return l, err
		}
		if err := opts.Sleep(ctx, randomBackoff()); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// create makes the lock file exclusively and starts renewal.
func create(path string, opts Options) (*Lock, error) {
	id, err := newUUID()
	if err != nil {
		return nil, err
	}
	expires := opts.Now().Add(opts.TTL).UnixMilli()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	data := encode(owner{OwnerID: id, ExpiresAt: expires, Identity: procid.Self()})
	_, werr := f.Write(data)
	cerr := f.Close()
	if werr != nil || cerr != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("write lock %s: %w", path, errors.Join(werr, cerr))
	}
	l := &Lock{path: path, ownerID: id, opts: opts, expiresAt: expires}
	if opts.RenewEvery > 0 {
		l.stop = make(chan struct{})
		l.done = make(chan struct{})
		go l.renewLoop()
	}
	return l, nil
}

func encode(o owner) []byte {
	data, _ := json.Marshal(o) // cannot fail: plain strings and numbers
	return append(data, '\n')
}

// state is what inspect found at a lock path.
type state struct {
	owner    owner
	readable bool
	dir      bool
	gone     bool // no lock at the path any more
	modTime  time.Time
}

// inspect reads the lock at path and decides whether it is live: expiresAt
// in the future and its owner not provably dead (procid.Dead), or, when the
// content is unreadable (a writer mid-write), mtime+ttl in the future. A
// legacy directory lock is judged by its owner.json; a directory without
// one is still initializing and is live.
func inspect(path string, opts Options) (state, bool, error) {
	var st state
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		st.gone = true // released meanwhile: not live, nothing to evict
		return st, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("inspect lock %s: %w", path, err)
	}
	st.modTime = fi.ModTime()
	file := path
	if fi.IsDir() {
		st.dir = true
		file = path + string(os.PathSeparator) + markerOwner
		ofi, err := os.Stat(file)
		if err != nil {
			return st, true, nil // initializing legacy lock: never stolen
		}
		st.modTime = ofi.ModTime()
	}
	if o, ok := readOwner(file); ok && o.ExpiresAt != 0 {
		st.owner, st.readable = o, true
		return st, o.ExpiresAt > opts.Now().UnixMilli() && !procid.Dead(o.Identity), nil
	}
	return st, st.modTime.Add(opts.TTL).After(opts.Now()), nil
}

func readOwner(path string) (owner, bool) {
	var o owner
	data, err := os.ReadFile(path)
	if err != nil {
		return o, false
	}
	if err := json.Unmarshal(bytes.TrimSpace(data), &o); err != nil || o.OwnerID == "" {
		return owner{}, false
	}
	return o, true
}

// evict removes the stale lock judged in seen and creates ours in its
// place, under the eviction marker. retry is true when the caller should
// try again after a short backoff (the marker was abandoned and cleared,
// or the lock vanished meanwhile).
func evict(path string, seen state, opts Options) (l *Lock, retry bool, err error) {
	marker := path + markerSuffix
	id, err := newUUID()
	if err != nil {
		return nil, false, err
	}
	if err := os.Mkdir(marker, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, clearAbandonedMarker(marker, opts), nil
		}
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.EINVAL) {
			return nil, false, nil // lost a race with a marker being removed
		}
		return nil, false, fmt.Errorf("create eviction marker %s: %w", marker, err)
	}
	defer releaseMarker(marker, id)
	ownerFile := marker + string(os.PathSeparator) + markerOwner
	f, err := os.OpenFile(ownerFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, nil // someone claimed our fresh marker: lost
	}
	_, werr := f.Write(encode(owner{OwnerID: id, CreatedAt: opts.Now().UnixMilli()}))
	if cerr := f.Close(); werr != nil || cerr != nil {
		return nil, false, nil
	}

	// Re-confirm under the marker: still the same stale lock?
	now, live, err := inspect(path, opts)
	if err != nil {
		return nil, false, err
	}
	if live || now.gone || now.owner.OwnerID != seen.owner.OwnerID || now.dir != seen.dir {
		return nil, now.gone, nil // retaken (lost) or released (try again)
	}
	if o, ok := readOwner(ownerFile); !ok || o.OwnerID != id {
		return nil, false, nil
	}
	if err := removeLock(path, now.dir); err != nil {
		return nil, false, err
	}
	l, err = create(path, opts)
	if errors.Is(err, fs.ErrExist) {
		return nil, false, nil // a plain acquirer got in first: it wins
	}
	if err != nil {
		return nil, false, fmt.Errorf("create lock %s: %w", path, err)
	}
	return l, false, nil
}

// clearAbandonedMarker claims a marker older than MarkerMaxAge by renaming
// it aside and deletes it. It reports whether the marker is gone, so that
// the caller may try again; a young marker means someone is evicting now.
func clearAbandonedMarker(marker string, opts Options) bool {
	created := time.Time{}
	if o, ok := readOwner(marker + string(os.PathSeparator) + markerOwner); ok && o.CreatedAt != 0 {
		created = time.UnixMilli(o.CreatedAt)
	} else if fi, err := os.Stat(marker); err == nil {
		created = fi.ModTime()
	} else {
		return errors.Is(err, fs.ErrNotExist)
	}
	if opts.Now().Sub(created) < MarkerMaxAge {
		return false
	}
	id, err := newUUID()
	if err != nil {
		return false
	}
	claimed := marker + "." + id
	if err := os.Rename(marker, claimed); err != nil {
		return false
	}
	_ = os.RemoveAll(claimed)
	return true
}

// releaseMarker removes the eviction marker if we still own it.
func releaseMarker(marker, id string) {
	if o, ok := readOwner(marker + string(os.PathSeparator) + markerOwner); ok && o.OwnerID == id {
		_ = os.RemoveAll(marker)
	}
}

func removeLock(path string, dir bool) error {
	var err error
	if dir {
		err = os.RemoveAll(path)
	} else {
		err = os.Remove(path)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale lock %s: %w", path, err)
	}
	return nil
}

// renewLoop renews the lock every RenewEvery until Release stops it or
// ownership is lost.
func (l *Lock) renewLoop() {
	defer close(l.done)
	t := time.NewTicker(l.opts.RenewEvery)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			if err := l.Renew(); err != nil {
				return
			}
		}
	}
}

// Renew pushes expiresAt to now+TTL if the lock is still ours and not yet
// expired. The renewal goroutine calls it; tests may call it directly.
func (l *Lock) Renew() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return ErrLost
	}
	now := l.opts.Now()
	if err := l.assertOwnedLocked(now); err != nil {
		return err
	}
	expires := now.Add(l.opts.TTL).UnixMilli()
	// Rewrite in place without O_CREAT: an evicted lock is not recreated.
	// A reader that catches the file mid-write falls back to mtime+ttl,
	// which the write has just refreshed.
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrLost, l.path)
	}
	_, werr := f.Write(encode(owner{OwnerID: l.ownerID, ExpiresAt: expires, Identity: procid.Self()}))
	if cerr := f.Close(); werr != nil || cerr != nil {
		return fmt.Errorf("renew lock %s: %w", l.path, errors.Join(werr, cerr))
	}
	l.expiresAt = expires
	return nil
}

// ExpiresAt returns the expiry this owner last wrote.
func (l *Lock) ExpiresAt() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.UnixMilli(l.expiresAt)
}

// AssertOwned returns an error wrapping [ErrLost] unless the lock file
// still carries our owner id and has not expired. Writers call it just
// before they commit, so that a lock lost to eviction never lets two
// writers overwrite each other.
func (l *Lock) AssertOwned() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return ErrLost
	}
	return l.assertOwnedLocked(l.opts.Now())
}

func (l *Lock) assertOwnedLocked(now time.Time) error {
	o, ok := readOwner(l.path)
	if !ok || o.OwnerID != l.ownerID || o.ExpiresAt <= now.UnixMilli() {
		return ErrLost
	}
	return nil
}

// Release stops renewal and deletes the lock file if it still carries our
// owner id; a lock that was evicted and retaken by someone else is left
// alone. Calling it again does nothing.
func (l *Lock) Release() error {
	l.mu.Lock()
	if l.released {
		l.mu.Unlock()
		return nil
	}
	l.released = true
	l.mu.Unlock()
	if l.stop != nil {
		close(l.stop)
		<-l.done
	}
	o, ok := readOwner(l.path)
	if !ok || o.OwnerID != l.ownerID {
		return nil
	}
	if err := os.Remove(l.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("release lock %s: %w", l.path, err)
	}
	return nil
}

// newUUID returns a random RFC 4122 version 4 UUID.
func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random owner id: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:]), nil
}

// randomBackoff returns a random pause in [0, 3 ms] between eviction
// attempts, so that contenders do not retry in lockstep.
func randomBackoff() time.Duration {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return maxBackoff / 2
	}
	return time.Duration(binary.LittleEndian.Uint64(b[:]) % uint64(maxBackoff+1))
}
