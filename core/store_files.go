package core

import (
	"errors"
	"io/fs"
	"os"

	"github.com/acctpool/acctpool/core/internal/atomicfile"
)

// readConfig reads the config file (see readConfig), first making sure it
// is not readable by others.
func (s *Store) readConfig() (*ConfigFile, []byte, error) {
	s.tightenMode(s.paths.Config)
	return readConfig(s.paths.Config)
}

// readState reads the state file (see readState), first making sure it is
// not readable by others.
func (s *Store) readState() (*StateFile, []byte, error) {
	s.tightenMode(s.paths.State)
	return readState(s.paths.State)
}

// tightenMode sets a token file that group or others may read back to mode
// 0600, warning once per path. Both files may hold tokens (the config of an
// old plugin version carries them inline).
func (s *Store) tightenMode(path string) {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return
	}
	err = os.Chmod(path, 0o600)
	if _, warned := s.looseWarned.LoadOrStore(path, true); warned {
		return
	}
	if err != nil {
		s.logger.Warn("file holding tokens is readable by group or others and its mode cannot be changed; run `chmod 600` on it", "path", path, "mode", fi.Mode().Perm().String(), "err", err)
		return
	}
	s.logger.Warn("file holding tokens was readable by group or others; set it to mode 0600", "path", path, "was", fi.Mode().Perm().String())
}

func (s *Store) hasPending() bool {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	return len(s.pending) > 0
}

// Room reserved for the save of a rotation (see reserveState).
const (
	// rotationGrowth is how much the state file may grow between the
	// reservation and the save (new tokens, a concurrent writer's quota).
	rotationGrowth = 16 << 10
	// lockRoom is given back right before the state lock is taken, so
	// that the lock file can be created on a disk the reservation filled.
	lockRoom = 8 << 10
)

// stateReservation is space reserved for the next state write.
type stateReservation struct {
	r    *atomicfile.Reservation
	keep int64 // what to keep reserved once the lock is about to be taken
}

// reserveState creates the temporary file of the next state write and
// gives it room for the current state plus rotationGrowth (and lockRoom),
// before a token call whose answer must be saved. An error means the disk
// cannot take the save: the caller must not consume the refresh token.
func (s *Store) reserveState() (*stateReservation, error) {
	size := int64(0)
	if fi, err := os.Stat(s.paths.State); err == nil {
		size = fi.Size()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	keep := size + rotationGrowth
	r, err := atomicfile.Reserve(s.paths.State, keep+lockRoom)
	if err != nil {
		return nil, err
	}
	return &stateReservation{r: r, keep: keep}, nil
}

// abort gives the reserved space back; nil-safe.
func (r *stateReservation) abort() {
	if r != nil {
		r.r.Abort()
	}
}
