package filestore

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	json "github.com/goccy/go-json"

	"github.com/acctpool/acctpool/core/internal/atomicfile"
	"github.com/acctpool/acctpool/core/record"
)

var (
	// ErrCorruptFile means a file exists but cannot be parsed (core
	// re-exports it as core.ErrCorruptFile).
	ErrCorruptFile = errors.New("corrupt file")
	// ErrLockTimeout means a cross-process lock stayed busy too long (core
	// re-exports it as core.ErrLockTimeout).
	ErrLockTimeout = errors.New("timed out waiting for lock")
)

// Files are the three files of one store and the process-wide facts about
// them. Config and State must be set; the zero value of the rest works.
type Files struct {
	Config, State, RoutingState string
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// Wall is the clock lock-file expiry is judged on; nil is the system
	// wall clock (see core.StoreOptions.WallClock).
	Wall func() time.Time
	// ReadOnly leaves the files' modes alone (see core.StoreOptions).
	ReadOnly bool

	looseWarned sync.Map // path → true once a loose mode was reported
}

func (f *Files) logger() *slog.Logger {
	if f.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return f.Logger
}

// ReadConfig reads the config file, first making sure it is not readable
// by others: the document, its raw bytes, or nil for a missing file.
func (f *Files) ReadConfig() (*record.ConfigFile, []byte, error) {
	f.tightenMode(f.Config)
	return ReadConfigFile(f.Config)
}

// ReadState reads the state file as ReadConfig reads the config.
func (f *Files) ReadState() (*record.StateFile, []byte, error) {
	f.tightenMode(f.State)
	return ReadStateFile(f.State)
}

// ReadConfigFile returns the config file at path, its raw bytes, or nil
// for a missing file.
func ReadConfigFile(path string) (*record.ConfigFile, []byte, error) {
	var c record.ConfigFile
	raw, err := readJSON(path, &c)
	if err != nil || raw == nil {
		return nil, nil, err
	}
	return &c, raw, nil
}

// ReadStateFile returns the state file at path, its raw bytes, or nil for
// a missing file.
func ReadStateFile(path string) (*record.StateFile, []byte, error) {
	var st record.StateFile
	raw, err := readJSON(path, &st)
	if err != nil || raw == nil {
		return nil, nil, err
	}
	return &st, raw, nil
}

// tightenMode sets a token file that group or others may read back to mode
// 0600, warning once per path. Both files may hold tokens (the config of an
// old plugin version carries them inline).
func (f *Files) tightenMode(path string) {
	if f.ReadOnly {
		return
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return
	}
	err = os.Chmod(path, 0o600)
	if _, warned := f.looseWarned.LoadOrStore(path, true); warned {
		return
	}
	if err != nil {
		f.logger().Warn("file holding tokens is readable by group or others and its mode cannot be changed; run `chmod 600` on it", "path", path, "mode", fi.Mode().Perm().String(), "err", err)
		return
	}
	f.logger().Warn("file holding tokens was readable by group or others; set it to mode 0600", "path", path, "was", fi.Mode().Perm().String())
}

// readJSON decodes the JSON object in path into v and returns the file's
// bytes, or nil bytes for a missing file. Anything else that cannot be
// read as a JSON object is an error wrapping ErrCorruptFile in upstream's
// wording; it names the path and never quotes the content, which may hold
// tokens.
func readJSON(path string, v any) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		cause := err
		var pe *fs.PathError
		if errors.As(err, &pe) {
			cause = pe.Err
		}
		return nil, corrupt(path, cause.Error())
	}
	if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '{' {
		return nil, corrupt(path, "not a JSON object")
	}
	if err := decodeFile(data, v); err != nil {
		return nil, corrupt(path, record.JSONErrorAt(data, err))
	}
	return data, nil
}

func corrupt(path, cause string) error {
	return fmt.Errorf("%w: account store at %s is corrupt or unreadable (%s) — fix or remove it", ErrCorruptFile, path, cause)
}

// Encode is the upstream file format: 2-space indented JSON and a
// trailing newline. The documents of package record are written in one
// pass (record.EncodeFile); anything else through goccy/go-json.
func Encode(v any) ([]byte, error) {
	data, ok, err := record.EncodeFile(v)
	if !ok {
		data, err = json.MarshalIndent(v, "", "  ")
	}
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// decodeFile decodes a whole file into v: a type with its own decoder
// (the documents of package record, which decode and check the whole text
// in one pass) is handed the bytes directly, so they are not scanned a
// second time first; anything else goes through goccy/go-json.
func decodeFile(data []byte, v any) error {
	if u, ok := v.(json.Unmarshaler); ok {
		return u.UnmarshalJSON(data)
	}
	return json.Unmarshal(data, v)
}

// WriteIfChanged writes v to path atomically (mode 0600) unless its
// encoding equals old, the bytes read under the same lock. owned is checked
// right before the write. res, when not nil and unused, is the reserved
// temporary file to write through.
func WriteIfChanged(path string, old []byte, v any, owned func() error, res *Reservation) error {
	data, err := Encode(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	if old != nil && bytes.Equal(data, old) {
		return nil
	}
	if err := owned(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if res != nil && res.r != nil && !res.r.Done() {
		return res.r.Commit(data)
	}
	return atomicfile.Write(path, data)
}
