//go:build unix

package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// keepOwner gives the temporary file f the owner and group of target when
// target exists and they differ from f's, so that a save by another user
// (root, typically) does not take the file away from its owner. When that
// is not permitted it fails with an error saying what to do, and the
// target is left alone.
func keepOwner(f *os.File, target string) error {
	ti, err := os.Stat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspect %s: %w", target, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("inspect temporary file of %s: %w", target, err)
	}
	want, ok1 := ti.Sys().(*syscall.Stat_t)
	have, ok2 := fi.Sys().(*syscall.Stat_t)
	if !ok1 || !ok2 || (want.Uid == have.Uid && want.Gid == have.Gid) {
		return nil
	}
	if err := f.Chown(int(want.Uid), int(want.Gid)); err != nil {
		return fmt.Errorf("%s belongs to uid %d gid %d and this process (uid %d) cannot keep that owner (%v); run acctpool as the file's owner, or change the file's owner: not writing it",
			target, want.Uid, want.Gid, os.Geteuid(), err)
	}
	return nil
}
