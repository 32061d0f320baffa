// Package atomicfile replaces files so that a reader, or a process that
// crashes mid-write, only ever sees the old or the new content.
//
// A write goes to a temporary file beside the target, named
// "<name>.acctpool.<host>.<pid>.<start>.<random>.tmp" (host is a short hash
// of the host name and boot id; pid and start identify the writer, see
// package procid), which is synced and renamed over the target. The name
// lets [RemoveStale] recognise our own leftovers and remove them once their
// writer is provably dead.
package atomicfile

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/acctpool/acctpool/core/internal/procid"
)

// maxLinks bounds symlink resolution, as the kernel does (ELOOP).
const maxLinks = 40

// commits counts, by target path, the replacements this process has made
// (Commit), for the writes-per-call measurements and tests.
var commits sync.Map // string → *atomic.Uint64

// Commits returns how many times this process has replaced the file at
// path (as Commit resolved it) so far.
func Commits(path string) uint64 {
	if n, ok := commits.Load(path); ok {
		return n.(*atomic.Uint64).Load()
	}
	return 0
}

// Write replaces path with data: [Reserve] with no extra room, then
// [Reservation.Commit]. The parent directory is created with mode 0700 if
// missing. On any failure the temporary file is removed and the target is
// left as it was.
func Write(path string, data []byte) error {
	r, err := Reserve(path, 0)
	if err != nil {
		return err
	}
	return r.Commit(data)
}

// Reservation is a temporary file created, and given its disk space, ahead
// of the write it is for, so that content which must not be lost (tokens an
// endpoint has just rotated) never meets a full disk after the fact.
//
// # Notes
//
// The space is allocated with fallocate where the file system supports it,
// by writing zeros otherwise; Commit overwrites it in place. A copy-on-write
// file system (btrfs, ZFS) needs fresh blocks for the overwrite anyway, so
// there the reservation only proves that the space existed a moment ago.
type Reservation struct {
	f      *os.File
	target string // the resolved target: renames land here
	tmp    string
	size   int64
	done   bool
}

// Reserve creates the temporary file for a later write of up to size bytes
// to path. Symlinks in path's last element are resolved once, here: the
// temporary file sits beside the final target and Commit renames over the
// target, so a symlinked file stays a symlink. The parent directory is
// created with mode 0700 if missing.
func Reserve(path string, size int64) (*Reservation, error) {
	target, err := resolve(path)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(target)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create directory of %s: %w", target, err)
	}
	tmp := filepath.Join(dir, tempName(filepath.Base(target)))
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create temporary file for %s: %w", target, err)
	}
	r := &Reservation{f: f, target: target, tmp: tmp, size: size}
	if size > 0 {
		if err := allocate(f, size); err != nil {
			r.Abort()
			return nil, fmt.Errorf("reserve %d bytes for %s: %w", size, target, err)
		}
	}
	return r, nil
}

// Target returns the file the reservation will replace (symlinks resolved).
func (r *Reservation) Target() string { return r.target }

// Shrink gives back the reserved space beyond size bytes, so that a small
// file the caller must create before committing (a lock) finds room.
func (r *Reservation) Shrink(size int64) {
	if r.done || size >= r.size {
		return
	}
	if r.f.Truncate(size) == nil {
		r.size = size
	}
}

// Commit writes data into the reserved file, syncs it, gives it the
// target's owner and group when they differ from ours (or fails, leaving
// the target alone), renames it over the target and syncs the directory.
// On failure the temporary file is removed. A reservation commits once.
func (r *Reservation) Commit(data []byte) (err error) {
	if r.done {
		return fmt.Errorf("write %s: reservation already used", r.target)
	}
	defer func() {
		if err != nil {
			r.Abort()
		}
	}()
	if _, err := r.f.WriteAt(data, 0); err != nil {
		return fmt.Errorf("write %s: %w", r.tmp, err)
	}
	if int64(len(data)) < r.size {
		if err := r.f.Truncate(int64(len(data))); err != nil {
			return fmt.Errorf("write %s: %w", r.tmp, err)
		}
	}
	if err := r.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", r.tmp, err)
	}
	if err := keepOwner(r.f, r.target); err != nil {
		return err
	}
	if err := r.f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", r.tmp, err)
	}
	if err := os.Rename(r.tmp, r.target); err != nil {
		return fmt.Errorf("replace %s: %w", r.target, err)
	}
	r.done = true
	n, _ := commits.LoadOrStore(r.target, new(atomic.Uint64))
	n.(*atomic.Uint64).Add(1)
	// The rename has happened, so the new content is what readers see; a
	// failed directory sync only weakens durability across a power loss
	// and is not worth failing a completed replacement for.
	_ = syncDir(filepath.Dir(r.target))
	return nil
}

// WriteSynced writes data into the reserved file and syncs it, without
// renaming: the file is then a durable journal of data under a temporary
// name, which [Stale] finds once its writer is dead. The reservation stays
// usable (WriteSynced again, Commit or Abort).
func (r *Reservation) WriteSynced(data []byte) error {
	if r.done {
		return fmt.Errorf("write %s: reservation already used", r.tmp)
	}
	if _, err := r.f.WriteAt(data, 0); err != nil {
		return fmt.Errorf("write %s: %w", r.tmp, err)
	}
	if err := r.f.Truncate(int64(len(data))); err != nil {
		return fmt.Errorf("write %s: %w", r.tmp, err)
	}
	r.size = int64(len(data))
	if err := r.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", r.tmp, err)
	}
	return nil
}

// Path returns the temporary file's path.
func (r *Reservation) Path() string { return r.tmp }

// Abort removes the temporary file. It does nothing after Commit.
func (r *Reservation) Abort() {
	if r.done {
		return
	}
	r.done = true
	_ = r.f.Close()
	_ = os.Remove(r.tmp)
}

// resolve follows symlinks in the last element of path (a dangling link
// resolves to the file it names, which the write creates).
func resolve(path string) (string, error) {
	for i := 0; i < maxLinks; i++ {
		fi, err := os.Lstat(path)
		if errors.Is(err, fs.ErrNotExist) {
			return path, nil
		}
		if err != nil {
			return "", fmt.Errorf("inspect %s: %w", path, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return path, nil
		}
		link, err := os.Readlink(path)
		if err != nil {
			return "", fmt.Errorf("read symlink %s: %w", path, err)
		}
		if !filepath.IsAbs(link) {
			link = filepath.Join(filepath.Dir(path), link)
		}
		path = link
	}
	return "", fmt.Errorf("resolve %s: too many levels of symbolic links", path)
}

// tempMarker separates a target's name from the writer tag in our
// temporary file names.
const tempMarker = ".acctpool."

// tempName is "<base>.acctpool.<host>.<pid>.<start>.<random>.tmp".
func tempName(base string) string {
	me := procid.Self()
	var b [6]byte
	_, _ = rand.Read(b[:])
	start := me.Start
	if start == "" {
		start = "0"
	}
	return base + tempMarker + hostTag(me) + "." + strconv.Itoa(me.PID) + "." + start + "." + hex.EncodeToString(b[:]) + ".tmp"
}

// hostTag is a short hash of what must match for a pid in a file name to
// mean a process of ours: host name, boot id and pid namespace.
func hostTag(id procid.Identity) string {
	sum := sha256.Sum256([]byte(id.Host + "\x00" + id.BootID + "\x00" + id.PIDNS))
	return hex.EncodeToString(sum[:4])
}

// RemoveStale deletes the temporary files that our writers left beside
// path (killed between create and rename) whose writer is provably dead,
// and returns the paths it removed. Temporary files of live writers, of
// other hosts, and of other programs are left alone.
func RemoveStale(path string) ([]string, error) {
	stale, err := Stale(path)
	var removed []string
	for _, p := range stale {
		if os.Remove(p) == nil {
			removed = append(removed, p)
		}
	}
	return removed, err
}

// Stale returns the temporary files our writers left beside path whose
// writer is provably dead, for a caller that wants to read them first.
func Stale(path string) ([]string, error) {
	target, err := resolve(path)
	if err != nil {
		return nil, err
	}
	dir, base := filepath.Split(target)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	me := procid.Self()
	var stale []string
	for _, e := range entries {
		writer, ok := parseTemp(e.Name(), base)
		if ok && writerDead(writer, me) {
			stale = append(stale, filepath.Join(dir, e.Name()))
		}
	}
	return stale, nil
}

type tempWriter struct {
	host  string
	pid   int
	start string
}

func parseTemp(name, base string) (tempWriter, bool) {
	rest, ok := strings.CutPrefix(name, base+tempMarker)
	if !ok {
		return tempWriter{}, false
	}
	rest, ok = strings.CutSuffix(rest, ".tmp")
	if !ok {
		return tempWriter{}, false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 4 {
		return tempWriter{}, false
	}
	pid, err := strconv.Atoi(parts[1])
	if err != nil {
		return tempWriter{}, false
	}
	return tempWriter{host: parts[0], pid: pid, start: parts[2]}, true
}

func writerDead(w tempWriter, me procid.Identity) bool {
	if w.host != hostTag(me) {
		return false
	}
	return procid.Dead(procid.Identity{PID: w.pid, Start: w.start, Host: me.Host, BootID: me.BootID, PIDNS: me.PIDNS})
}

// zeroFill allocates size bytes by writing zeros: the portable fallback
// for file systems without fallocate.
func zeroFill(f *os.File, size int64) error {
	buf := make([]byte, min(size, 64<<10))
	for off := int64(0); off < size; {
		n := min(int64(len(buf)), size-off)
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return err
		}
		off += n
	}
	return f.Sync()
}

// syncDir flushes the directory entry of a rename to disk.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// Done reports whether the reservation has been committed or aborted.
func (r *Reservation) Done() bool { return r.done }
