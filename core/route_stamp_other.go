//go:build !linux

package core

import (
	"errors"
	"os"
)

// fileStamp identifies one version of a file (see the Linux version).
type fileStamp struct {
	fi             os.FileInfo
	exists, filled bool
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return fileStamp{filled: true}, nil
	}
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi: fi, exists: true, filled: true}, nil
}

func (a fileStamp) same(b fileStamp) bool {
	if !a.filled || !b.filled || a.exists != b.exists {
		return false
	}
	if !a.exists {
		return true
	}
	return os.SameFile(a.fi, b.fi) && a.fi.Size() == b.fi.Size() && a.fi.ModTime().Equal(b.fi.ModTime())
}
