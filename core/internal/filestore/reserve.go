package filestore

import (
	"errors"
	"io/fs"
	"os"

	json "github.com/goccy/go-json"

	"github.com/acctpool/acctpool/core/internal/atomicfile"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
)

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

// Reservation is space reserved for the next state write, and for the
// journal of the rotation that write saves. A journal-only reservation
// (see [ReserveJournal]) has no state write: its r is nil.
type Reservation struct {
	r       *atomicfile.Reservation
	keep    int64 // what to keep reserved once the lock is about to be taken
	journal *atomicfile.Reservation
}

// ReserveState creates the temporary file of the next state write and
// gives it room for the current state plus rotationGrowth (and lockRoom),
// before a token call whose answer must be saved. An error means the disk
// cannot take the save: the caller must not consume the refresh token.
func (f *Files) ReserveState() (*Reservation, error) {
	size := int64(0)
	if fi, err := os.Stat(f.State); err == nil {
		size = fi.Size()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	keep := size + rotationGrowth
	j, err := atomicfile.Reserve(f.State, journalRoom)
	if err != nil {
		return nil, err
	}
	r, err := atomicfile.Reserve(f.State, keep+lockRoom)
	if err != nil {
		j.Abort()
		return nil, err
	}
	return &Reservation{r: r, keep: keep, journal: j}, nil
}

// ReserveJournal reserves only the journal of a rotation, as a temporary
// of target, for a store whose save is not a file write (the PostgreSQL
// store keeps its journals on this machine's disk all the same).
func ReserveJournal(target string) (*Reservation, error) {
	j, err := atomicfile.Reserve(target, journalRoom)
	if err != nil {
		return nil, err
	}
	return &Reservation{journal: j}, nil
}

// JournalReplaces is the key of a journal's binding: account id → the
// fingerprint of the refresh token its pair replaces.
const JournalReplaces = "replaces"

// WriteJournal makes the rotated pair of account id durable at once, in
// the reserved journal file, before the save waits for the state lock: a
// process killed from here on leaves the pair in a temporary file that the
// next store salvages (see core's salvageTemps). The journal names the
// refresh token the pair replaces (used, by fingerprint), so that it is
// only ever applied over that token, never over a later rotation or a new
// login.
func (r *Reservation) WriteJournal(id string, pair record.AccountState, used secret.Secret) error {
	if r == nil || r.journal == nil {
		return nil
	}
	binding, err := json.Marshal(map[string]string{id: used.Fingerprint()})
	if err != nil {
		return err
	}
	data, err := Encode(&record.StateFile{Version: 1, Accounts: map[string]*record.AccountState{id: &pair}, Extra: record.Extra{JournalReplaces: binding}})
	if err != nil {
		return err
	}
	return r.journal.WriteSynced(data)
}

// KeepJournal hands the journal over to the caller (a pending pair), so
// that abort leaves it on disk.
func (r *Reservation) KeepJournal() *atomicfile.Reservation {
	if r == nil {
		return nil
	}
	j := r.journal
	r.journal = nil
	return j
}

// Abort gives the reserved space back and removes the journal; nil-safe.
func (r *Reservation) Abort() {
	if r != nil {
		if r.r != nil {
			r.r.Abort()
		}
		if r.journal != nil {
			r.journal.Abort()
		}
	}
}

// BeforeLock gives back the spare room kept for the lock file, right
// before the state lock is taken, so the lock file finds space.
func (r *Reservation) BeforeLock() {
	if r.r != nil {
		r.r.Shrink(r.keep)
	}
}

// AbortWrite gives back the state write's temporary file (not the
// journal); a reservation committed by [WriteIfChanged] is left as is.
func (r *Reservation) AbortWrite() {
	if r.r != nil {
		r.r.Abort()
	}
}

// Saved removes the journal once the state holding its pair is written.
func (r *Reservation) Saved() {
	if r.journal != nil {
		r.journal.Abort()
	}
}
