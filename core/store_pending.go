package core

import (
	"sort"
	"time"

	"github.com/acctpool/acctpool/core/internal/atomicfile"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
)

// pendingPair is a rotated token pair whose save failed. The token
// endpoint has consumed the refresh token still on disk, so this pair is
// the account's only valid credential: the store serves it in place of the
// disk's (Load) and writes it with every later state write (UpdateState,
// UpdateConfig) until one succeeds.
type pendingPair struct {
	used        secret.Secret // the consumed refresh token the disk still holds
	access      secret.Secret
	refresh     secret.Secret
	expires     int64
	refreshedAt int64
	err         string // why the last save failed; never holds secrets
	since       time.Time
	retrying    bool
	// journal is the durable copy of the pair on disk (a temporary file
	// that a store opened after our death salvages); removed once saved.
	journal *atomicfile.Reservation
}

// drop forgets p's journal file.
func (p *pendingPair) drop() {
	if p.journal != nil {
		p.journal.Abort()
	}
}

// setPending records the rotated pair of account id after its save failed
// with err.
func (s *Store) setPending(id string, used secret.Secret, st record.AccountState, journal *atomicfile.Reservation, err error) {
	s.pendMu.Lock()
	if s.pending == nil {
		s.pending = map[string]*pendingPair{}
	}
	p := s.pending[id]
	if p == nil || p.refresh != st.Refresh {
		if p != nil {
			p.drop()
		}
		p = &pendingPair{used: used, since: s.wallNow()}
		s.pending[id] = p
	}
	if journal != nil {
		if p.journal != nil && p.journal != journal {
			p.journal.Abort()
		}
		p.journal = journal
	}
	p.access, p.refresh, p.expires, p.refreshedAt = st.Access, st.Refresh, st.Expires, st.LastRefreshedAt
	p.err = err.Error()
	s.pendMu.Unlock()
	s.gen.Add(1)
}

// notePendingError updates the reason shown for a pending pair.
func (s *Store) notePendingError(id string, err error) {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	if p := s.pending[id]; p != nil {
		p.err = err.Error()
	}
}

// pendingIDs returns the accounts whose rotated tokens are not saved yet.
func (s *Store) pendingIDs() []string {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	ids := make([]string, 0, len(s.pending))
	for id := range s.pending {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// pendingOf reports whether account id has unsaved rotated tokens, and why
// the last save failed.
func (s *Store) pendingOf(id string) (bool, string) {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	if p := s.pending[id]; p != nil {
		return true, p.err
	}
	return false, ""
}

// claimRetry marks that a retry loop runs for account id; false if one
// already does or nothing is pending.
func (s *Store) claimRetry(id string) bool {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	p := s.pending[id]
	if p == nil || p.retrying {
		return false
	}
	p.retrying = true
	return true
}

// endRetry clears the retry mark of account id.
func (s *Store) endRetry(id string) {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	if p := s.pending[id]; p != nil {
		p.retrying = false
	}
}

// overlayPending puts the pending pairs into st, a state just read from
// disk, and returns what it applied. A pair is applied while the disk still
// holds the consumed token; a disk that already holds the pair settles it,
// and one holding other tokens (a new login) supersedes it.
func (s *Store) overlayPending(st *record.StateFile) map[string]*pendingPair {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	if len(s.pending) == 0 {
		return nil
	}
	applied := map[string]*pendingPair{}
	for id, p := range s.pending {
		a := st.Accounts[id]
		switch {
		case a != nil && a.Refresh == p.refresh:
			p.drop()
			delete(s.pending, id)
			continue
		case a != nil && a.Refresh != p.used:
			s.logger.Warn("unsaved rotated tokens superseded by new tokens on disk", "account", id)
			p.drop()
			delete(s.pending, id)
			continue
		case a == nil:
			a = &record.AccountState{}
			st.Accounts[id] = a
		}
		a.Access, a.Refresh, a.Expires, a.LastRefreshedAt = p.access, p.refresh, p.expires, p.refreshedAt
		a.LastRefreshError = nil
		applied[id] = p
	}
	return applied
}

// settlePending forgets the pairs of applied that a successful write has
// put on disk (or that pruning removed with their account).
func (s *Store) settlePending(applied map[string]*pendingPair, st *record.StateFile) {
	if len(applied) == 0 {
		return
	}
	s.pendMu.Lock()
	for id, p := range applied {
		if s.pending[id] != p {
			continue
		}
		if st.Accounts[id] == nil {
			s.logger.Warn("unsaved rotated tokens dropped: the account was removed", "account", id)
		} else {
			s.logger.Info("rotated tokens saved after an earlier failure", "account", id, "after", s.wallNow().Sub(p.since).Round(time.Millisecond))
		}
		p.drop()
		delete(s.pending, id)
	}
	s.pendMu.Unlock()
	s.gen.Add(1)
}
