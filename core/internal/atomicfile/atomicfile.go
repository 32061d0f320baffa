// Package atomicfile replaces files so that a reader, or a process that
// crashes mid-write, only ever sees the old or the new content.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Write replaces path with data: it writes a temporary file
// "<path>.<random>.tmp" (mode 0600) in the same directory, syncs it, renames
// it over path and syncs the directory. The parent directory is created with
// mode 0700 if missing. On any failure the temporary file is removed and
// path is left as it was.
//
// # Notes
//
// A process killed between the create and the rename leaves its temporary
// file behind; it never leaves a truncated path.
func Write(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create directory of %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, base+".*.tmp") // mode 0600
	if err != nil {
		return fmt.Errorf("create temporary file for %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	// The rename has happened, so the new content is what readers see; a
	// failed directory sync only weakens durability across a power loss
	// and is not worth failing a completed replacement for.
	_ = syncDir(dir)
	return nil
}

// syncDir flushes the directory entry of a rename to disk.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
