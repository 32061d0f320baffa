//go:build linux

package filestore

import (
	"errors"
	"os"
	"syscall"
)

// Stamp identifies one version of a file: writers replace files by
// rename, so a new version has a new inode (and a new ctime); size and
// mtime guard against a reused inode number.
type Stamp struct {
	dev, ino       uint64
	size           int64
	mtime, ctime   int64
	exists, filled bool
}

// StampOf stats path with one system call and no allocation beyond the
// path conversion; a missing file has a stamp too.
func StampOf(path string) (Stamp, error) {
	var st syscall.Stat_t
	for {
		err := syscall.Stat(path, &st)
		if err == nil {
			break
		}
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) {
			return Stamp{filled: true}, nil
		}
		return Stamp{}, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return Stamp{dev: uint64(st.Dev), ino: uint64(st.Ino), size: st.Size, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(), exists: true, filled: true}, nil
}

// Same reports whether two stamps describe the same file version.
func (a Stamp) Same(b Stamp) bool { return a.filled && b.filled && a == b }
