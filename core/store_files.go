package core

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/acctpool/acctpool/core/internal/atomicfile"
	"github.com/acctpool/acctpool/core/internal/filestore"
	"github.com/acctpool/acctpool/core/record"
	json "github.com/goccy/go-json"
)

func (s *Store) hasPending() bool {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	return len(s.pending) > 0
}

// reserveState reserves the room of the next state write and of its
// rotation's journal before a token call whose answer must be saved (see
// filestore.Files.ReserveState). An error means the disk cannot take the
// save: the caller must not consume the refresh token.
func (s *Store) reserveState() (*filestore.Reservation, error) {
	if s.backend != nil {
		// The save is the lock's commit: no state file to fill. The
		// journal still goes to this machine's own disk, in the state
		// file's directory, so that a process killed between the answer
		// and the commit leaves the pair behind (BEHAVIOUR.md §1.8).
		return filestore.ReserveJournal(s.journalTarget())
	}
	return s.files.ReserveState()
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
		if raw, ok := f.st.Extra[filestore.JournalReplaces]; ok && json.Unmarshal(raw, &f.replaces) != nil {
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
