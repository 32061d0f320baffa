//go:build !linux

package filestore

import (
	"errors"
	"os"
)

// Stamp identifies one version of a file (see the Linux version).
type Stamp struct {
	fi             os.FileInfo
	exists, filled bool
}

// StampOf stats path; a missing file has a stamp too.
func StampOf(path string) (Stamp, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return Stamp{filled: true}, nil
	}
	if err != nil {
		return Stamp{}, err
	}
	return Stamp{fi: fi, exists: true, filled: true}, nil
}

// Same reports whether two stamps describe the same file version.
func (a Stamp) Same(b Stamp) bool {
	if !a.filled || !b.filled || a.exists != b.exists {
		return false
	}
	if !a.exists {
		return true
	}
	return os.SameFile(a.fi, b.fi) && a.fi.Size() == b.fi.Size() && a.fi.ModTime().Equal(b.fi.ModTime())
}
