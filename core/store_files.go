package core

import (
	"context"
	"fmt"
	"os"
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
		return nil, nil // no disk to fill: the save is the lock's commit
	}
	return s.files.ReserveState()
}

// salvageTemps reads the state-file temporaries of dead writers (a
// rotation's journal, or a whole state written but not renamed), adopts
// from them every rotated pair newer than the disk's (a later
// lastRefreshedAt and other tokens), and then removes them. Temporaries of
// the config and routing files are removed. It returns the accounts whose
// tokens it restored. Nothing is removed when the adoption cannot be
// saved.
func (s *Store) salvageTemps(ctx context.Context) ([]string, error) {
	if s.backend != nil {
		return nil, nil
	}
	for _, p := range []string{s.paths.Config, s.paths.RoutingState} {
		removed, err := atomicfile.RemoveStale(p)
		if err != nil {
			s.logger.Warn("look for stale temporary files", "path", p, "err", err)
		}
		for _, r := range removed {
			s.logger.Info("removed a temporary file left by a killed writer", "path", r)
		}
	}
	stale, err := atomicfile.Stale(s.paths.State)
	if err != nil || len(stale) == 0 {
		return nil, err
	}
	var found []*record.StateFile
	for _, p := range stale {
		var st record.StateFile
		if data, err := os.ReadFile(p); err == nil && json.Unmarshal(data, &st) == nil {
			found = append(found, &st)
		}
	}
	var restored []string
	if len(found) > 0 {
		if _, err := s.UpdateState(ctx, func(st *record.StateFile) error {
			restored = restored[:0]
			for _, f := range found {
				for id, a := range f.Accounts {
					if d := st.Accounts[id]; d != nil && a != nil && adoptSalvaged(d, a) {
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
// later rotation than d's. A refresh error bound to the token they replace
// goes with it.
func adoptSalvaged(d, a *record.AccountState) bool {
	if a.Refresh == "" || a.Refresh == d.Refresh || a.LastRefreshedAt <= d.LastRefreshedAt {
		return false
	}
	if e := d.LastRefreshError; e != nil && (e.RefreshTokenFingerprint == "" || e.RefreshTokenFingerprint == d.Refresh.Fingerprint()) {
		d.LastRefreshError = nil
	}
	d.Access, d.Refresh, d.Expires, d.LastRefreshedAt = a.Access, a.Refresh, a.Expires, a.LastRefreshedAt
	return true
}
