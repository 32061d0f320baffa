package core

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	json "github.com/goccy/go-json"

	"github.com/acctpool/acctpool/core/internal/atomicfile"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
)

// readConfig reads the config file (see readConfig), first making sure it
// is not readable by others.
func (s *Store) readConfig() (*record.ConfigFile, []byte, error) {
	s.tightenMode(s.paths.Config)
	return readConfig(s.paths.Config)
}

// readState reads the state file (see readState), first making sure it is
// not readable by others.
func (s *Store) readState() (*record.StateFile, []byte, error) {
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

// journalRoom is the room of a rotation's journal (one account's pair).
const journalRoom = 4 << 10

// stateReservation is space reserved for the next state write, and for the
// journal of the rotation that write saves.
type stateReservation struct {
	r       *atomicfile.Reservation
	keep    int64 // what to keep reserved once the lock is about to be taken
	journal *atomicfile.Reservation
}

// reserveState creates the temporary file of the next state write and
// gives it room for the current state plus rotationGrowth (and lockRoom),
// before a token call whose answer must be saved. An error means the disk
// cannot take the save: the caller must not consume the refresh token.
func (s *Store) reserveState() (*stateReservation, error) {
	if s.backend != nil {
		// The save is the lock's commit: no state file to fill. The
		// journal still goes to this machine's own disk, in the state
		// file's directory, so that a process killed between the answer
		// and the commit leaves the pair behind (BEHAVIOUR.md §1.8).
		j, err := atomicfile.Reserve(s.journalTarget(), journalRoom)
		if err != nil {
			return nil, err
		}
		return &stateReservation{journal: j}, nil
	}
	size := int64(0)
	if fi, err := os.Stat(s.paths.State); err == nil {
		size = fi.Size()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	keep := size + rotationGrowth
	j, err := atomicfile.Reserve(s.paths.State, journalRoom)
	if err != nil {
		return nil, err
	}
	r, err := atomicfile.Reserve(s.paths.State, keep+lockRoom)
	if err != nil {
		j.Abort()
		return nil, err
	}
	return &stateReservation{r: r, keep: keep, journal: j}, nil
}

// backendJournal is the name the journals of a backend's rotations are
// kept under (as temporaries of a file never written), in the state
// file's directory: apart from the state file's own temporaries, so that
// a file store (or `acctpool check`) on the same machine never adopts a
// pair that belongs to the database.
const backendJournal = "acctpool-store-journal.json"

// journalTarget is the file whose temporaries hold the journals: the state
// file for the files, backendJournal beside it for a backend.
func (s *Store) journalTarget() string {
	if s.backend != nil {
		return filepath.Join(filepath.Dir(s.paths.State), backendJournal)
	}
	return s.paths.State
}

// journalReplaces is the key of a journal's binding: account id → the
// fingerprint of the refresh token its pair replaces.
const journalReplaces = "replaces"

// writeJournal makes the rotated pair of account id durable at once, in
// the reserved journal file, before the save waits for the state lock: a
// process killed from here on leaves the pair in a temporary file that the
// next store salvages (see salvageTemps). The journal names the refresh
// token the pair replaces (used, by fingerprint), so that it is only ever
// applied over that token, never over a later rotation or a new login.
func (r *stateReservation) writeJournal(id string, pair record.AccountState, used secret.Secret) error {
	if r == nil || r.journal == nil {
		return nil
	}
	binding, err := json.Marshal(map[string]string{id: used.Fingerprint()})
	if err != nil {
		return err
	}
	data, err := encodeFile(&record.StateFile{Version: 1, Accounts: map[string]*record.AccountState{id: &pair}, Extra: record.Extra{journalReplaces: binding}})
	if err != nil {
		return err
	}
	return r.journal.WriteSynced(data)
}

// keepJournal hands the journal over to the caller (a pending pair), so
// that abort leaves it on disk.
func (r *stateReservation) keepJournal() *atomicfile.Reservation {
	if r == nil {
		return nil
	}
	j := r.journal
	r.journal = nil
	return j
}

// abort gives the reserved space back and removes the journal; nil-safe.
func (r *stateReservation) abort() {
	if r != nil {
		if r.r != nil {
			r.r.Abort()
		}
		if r.journal != nil {
			r.journal.Abort()
		}
	}
}

// salvageTemps reads the state-file temporaries of dead writers (a
// rotation's journal, or a whole state written but not renamed), adopts
// from them every rotated pair that replaces what the store holds (see
// adoptSalvaged), and then removes them. Temporaries of the config and
// routing files are removed. It returns the accounts whose tokens it
// restored. Nothing is removed when the adoption cannot be saved.
//
// On a backend the temporaries are this machine's journals (see
// journalTarget); only journals bound to the token they replace are
// adopted, into the backend.
func (s *Store) salvageTemps(ctx context.Context) ([]string, error) {
	if s.backend == nil {
		for _, p := range []string{s.paths.Config, s.paths.RoutingState} {
			removed, err := atomicfile.RemoveStale(p)
			if err != nil {
				s.logger.Warn("look for stale temporary files", "path", p, "err", err)
			}
			for _, r := range removed {
				s.logger.Info("removed a temporary file left by a killed writer", "path", r)
			}
		}
	}
	stale, err := atomicfile.Stale(s.journalTarget())
	if err != nil || len(stale) == 0 {
		return nil, err
	}
	type salvaged struct {
		st       record.StateFile
		replaces map[string]string // account → fingerprint; nil: unbound
	}
	var found []salvaged
	for _, p := range stale {
		var f salvaged
		data, err := os.ReadFile(p)
		if err != nil || json.Unmarshal(data, &f.st) != nil {
			continue
		}
		if raw, ok := f.st.Extra[journalReplaces]; ok && json.Unmarshal(raw, &f.replaces) != nil {
			continue
		}
		if s.backend != nil && f.replaces == nil {
			continue // not a journal of ours: nothing to adopt into a backend
		}
		found = append(found, f)
	}
	var restored []string
	if len(found) > 0 {
		if _, err := s.UpdateState(ctx, func(st *record.StateFile) error {
			restored = restored[:0]
			for _, f := range found {
				for id, a := range f.st.Accounts {
					fp, bound := f.replaces[id]
					if f.replaces != nil && !bound {
						continue
					}
					if d := st.Accounts[id]; d != nil && a != nil && adoptSalvaged(d, a, fp, bound) {
						restored = append(restored, id)
					}
				}
			}
			return nil
		}); err != nil {
			return nil, fmt.Errorf("salvage rotated tokens from %s: %w", strings.Join(stale, ", "), err)
		}
	}
	for _, p := range stale {
		if os.Remove(p) == nil {
			s.logger.Info("removed a temporary file left by a killed writer", "path", p)
		}
	}
	for _, id := range restored {
		s.logger.Warn("restored rotated tokens that a killed process had not saved", "account", id)
	}
	return restored, nil
}

// adoptSalvaged takes the tokens of a salvaged entry into d when they are a
// later rotation than d's: for a journal bound to the refresh token it
// replaces (bound, fingerprint replaces), when d still holds that token;
// for an unbound temporary (a whole state file not renamed), when its
// lastRefreshedAt is later. A refresh error bound to the token they
// replace goes with it (an invalid_grant a survivor got for the consumed
// token is healed by the pair that consumed it).
func adoptSalvaged(d, a *record.AccountState, replaces string, bound bool) bool {
	if a.Refresh == "" || a.Refresh == d.Refresh {
		return false
	}
	if bound && d.Refresh.Fingerprint() != replaces {
		return false
	}
	if !bound && a.LastRefreshedAt <= d.LastRefreshedAt {
		return false
	}
	if e := d.LastRefreshError; e != nil && (e.RefreshTokenFingerprint == "" || e.RefreshTokenFingerprint == d.Refresh.Fingerprint()) {
		d.LastRefreshError = nil
	}
	d.Access, d.Refresh, d.Expires, d.LastRefreshedAt = a.Access, a.Refresh, a.Expires, a.LastRefreshedAt
	return true
}
