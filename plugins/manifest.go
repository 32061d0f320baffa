package plugins

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	json "github.com/goccy/go-json"

	"github.com/acctpool/acctpool/core/millis"
)

// ABIVersion is the only ABI this host speaks, as a manifest spells it.
const ABIVersion = "errclass v1"

// Host maxima. A manifest's limits may lower them, never raise them; a
// zero limit means the default.
const (
	// MaxMemoryPages caps guest linear memory: 512 pages of 64 KiB, 32 MiB.
	// Go guests need at least 256.
	MaxMemoryPages = 512
	// DefaultCallTimeout is the per-call deadline when a manifest sets none.
	DefaultCallTimeout = 50 * time.Millisecond
	// MaxCallTimeout is the longest per-call deadline a manifest may ask for.
	MaxCallTimeout = time.Second
	// MaxInitTimeout is the deadline of instantiation, _initialize included.
	MaxInitTimeout = 2 * time.Second
	// MaxInputBytes caps the input JSON written into the guest.
	MaxInputBytes = 64 << 10
	// MaxOutputBytes caps the output JSON read from the guest.
	MaxOutputBytes = 4 << 10
	// MaxRecycleAfter is how many calls an instance serves before it is
	// replaced, at most.
	MaxRecycleAfter = 10000
	// MaxWasmBytes caps the size of a .wasm file.
	MaxWasmBytes = 16 << 20
	// MaxStackBytes bounds a guest's call stack, in estimated frame bytes
	// (64 per call plus 16 per parameter and 8 per local; a Go guest's
	// functions are charged about 100 each, so it may recurse ~10,000
	// deep). A call past it traps with the stack_overflow fault. Measured,
	// one runaway call then costs the host about 5 MiB of RSS, where
	// wazero's own ~50 MB stack ceiling cost ~290 MB.
	MaxStackBytes = 1 << 20
)

// Manifest describes one plugin: which module to load and how to trust and
// limit it. It comes from the config file's "plugins" array or from a
// --plugin file.
//
// # Notes
//
// Decoding is strict: an unknown key is an error, because a typo in a
// limit must not silently run a plugin without it. Wasm is resolved
// against the manifest file's directory by [LoadManifestFile]; a manifest
// from the config file should carry an absolute path.
type Manifest struct {
	// ID names the plugin in verdicts ("plugin:<id>"), logs and Status.
	ID string `json:"id"`
	// Version is the plugin's own version, reported in Status.
	Version string `json:"version"`
	// ABI must be "errclass v1" (the number 1 and "1" are accepted too).
	ABI string `json:"abi"`
	// Wasm is the path of the module.
	Wasm string `json:"wasm"`
	// SHA256 is the hex digest the module must have; checked before compiling.
	SHA256 string `json:"sha256"`
	// Limits lowers the host maxima for this plugin.
	Limits Limits `json:"limits"`

	// err is why parsing failed; NewHost and Reload report such a manifest
	// as rejected instead of loading it.
	err error
}

// Err reports why the manifest failed to parse, or nil.
func (m Manifest) Err() error { return m.err }

// Limits are a plugin's resource limits. Zero fields take the host
// default; values above the host maxima are rejected.
type Limits struct {
	// MemoryPages caps linear memory in 64 KiB pages (JSON memoryPages).
	MemoryPages uint32
	// CallTimeout is the per-call deadline (JSON callTimeoutMs).
	CallTimeout time.Duration
	// InitTimeout is the instantiation deadline (JSON initTimeoutMs).
	InitTimeout time.Duration
	// MaxInputBytes caps the input JSON (JSON maxInputBytes).
	MaxInputBytes int
	// MaxOutputBytes caps the output JSON (JSON maxOutputBytes).
	MaxOutputBytes int
	// RecycleAfter replaces an instance after this many calls (JSON recycleAfter).
	RecycleAfter int
}

type wireLimits struct {
	MemoryPages    uint32 `json:"memoryPages,omitempty"`
	CallTimeoutMs  int64  `json:"callTimeoutMs,omitempty"`
	InitTimeoutMs  int64  `json:"initTimeoutMs,omitempty"`
	MaxInputBytes  int    `json:"maxInputBytes,omitempty"`
	MaxOutputBytes int    `json:"maxOutputBytes,omitempty"`
	RecycleAfter   int    `json:"recycleAfter,omitempty"`
}

// MarshalJSON writes the limits with durations in milliseconds.
func (l Limits) MarshalJSON() ([]byte, error) {
	return json.Marshal(wireLimits{l.MemoryPages, l.CallTimeout.Milliseconds(), l.InitTimeout.Milliseconds(),
		l.MaxInputBytes, l.MaxOutputBytes, l.RecycleAfter})
}

// UnmarshalJSON reads the limits strictly; durations are in milliseconds.
func (l *Limits) UnmarshalJSON(data []byte) error {
	var w wireLimits
	if err := strictDecode(data, &w); err != nil {
		return err
	}
	// The millisecond fields are range-checked before conversion, so a
	// huge value is rejected by name instead of wrapping into a negative
	// or tiny deadline. 0 means the default.
	call, err := millis.Duration("limits.callTimeoutMs", w.CallTimeoutMs, 0, MaxCallTimeout.Milliseconds())
	if err != nil {
		return msRangeErr(err, DefaultCallTimeout)
	}
	init, err := millis.Duration("limits.initTimeoutMs", w.InitTimeoutMs, 0, MaxInitTimeout.Milliseconds())
	if err != nil {
		return msRangeErr(err, MaxInitTimeout)
	}
	for _, c := range []struct {
		name     string
		got, max int
	}{
		{"maxInputBytes", w.MaxInputBytes, MaxInputBytes},
		{"maxOutputBytes", w.MaxOutputBytes, MaxOutputBytes},
		{"recycleAfter", w.RecycleAfter, MaxRecycleAfter},
	} {
		if c.got < 0 || c.got > c.max {
			return fmt.Errorf("limits.%s: %d is out of range (0..%d; 0 means %d)", c.name, c.got, c.max, c.max)
		}
	}
	if w.MemoryPages > MaxMemoryPages {
		return fmt.Errorf("limits.memoryPages: %d is out of range (0..%d; 0 means %d)", w.MemoryPages, MaxMemoryPages, MaxMemoryPages)
	}
	*l = Limits{w.MemoryPages, call, init, w.MaxInputBytes, w.MaxOutputBytes, w.RecycleAfter}
	return nil
}

// msRangeErr adds what 0 means to a millisecond limit's range error.
func msRangeErr(err error, def time.Duration) error {
	return fmt.Errorf("%w; 0 means %d ms", err, def.Milliseconds())
}

// effective returns l with defaults filled in, or an error naming the first
// limit above its host maximum.
func (l Limits) effective() (Limits, error) {
	over := func(name string, got, max any) error {
		return fmt.Errorf("limits.%s %v exceeds the host maximum %v", name, got, max)
	}
	switch {
	case l.CallTimeout < 0:
		return l, fmt.Errorf("limits.callTimeoutMs %d must not be negative", l.CallTimeout.Milliseconds())
	case l.InitTimeout < 0:
		return l, fmt.Errorf("limits.initTimeoutMs %d must not be negative", l.InitTimeout.Milliseconds())
	case l.MaxInputBytes < 0 || l.MaxOutputBytes < 0 || l.RecycleAfter < 0:
		return l, errors.New("limits must not be negative")
	case l.MemoryPages > MaxMemoryPages:
		return l, over("memoryPages", l.MemoryPages, MaxMemoryPages)
	case l.CallTimeout > MaxCallTimeout:
		return l, over("callTimeoutMs", l.CallTimeout.Milliseconds(), MaxCallTimeout.Milliseconds())
	case l.InitTimeout > MaxInitTimeout:
		return l, over("initTimeoutMs", l.InitTimeout.Milliseconds(), MaxInitTimeout.Milliseconds())
	case l.MaxInputBytes > MaxInputBytes:
		return l, over("maxInputBytes", l.MaxInputBytes, MaxInputBytes)
	case l.MaxOutputBytes > MaxOutputBytes:
		return l, over("maxOutputBytes", l.MaxOutputBytes, MaxOutputBytes)
	case l.RecycleAfter > MaxRecycleAfter:
		return l, over("recycleAfter", l.RecycleAfter, MaxRecycleAfter)
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	if l.MemoryPages == 0 {
		l.MemoryPages = MaxMemoryPages
	}
	if l.CallTimeout == 0 {
		l.CallTimeout = DefaultCallTimeout
	}
	if l.InitTimeout == 0 {
		l.InitTimeout = MaxInitTimeout
	}
	def(&l.MaxInputBytes, MaxInputBytes)
	def(&l.MaxOutputBytes, MaxOutputBytes)
	def(&l.RecycleAfter, MaxRecycleAfter)
	return l, nil
}

type wireManifest struct {
	ID      string          `json:"id"`
	Version string          `json:"version"`
	ABI     json.RawMessage `json:"abi"`
	Wasm    string          `json:"wasm"`
	SHA256  string          `json:"sha256"`
	Limits  Limits          `json:"limits"`
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ParseManifest decodes and checks one manifest.
//
// # Notes
//
// On error the returned Manifest carries what could be read and the error
// ([Manifest.Err]), so a host given it lists the plugin as rejected.
func ParseManifest(data []byte) (Manifest, error) {
	m, err := parseManifest(data)
	if err != nil {
		m.err = err
	}
	return m, err
}

func parseManifest(data []byte) (Manifest, error) {
	var w wireManifest
	if err := strictDecode(data, &w); err != nil {
		// Recover the id, when there is a valid one, to name the plugin.
		var named struct {
			ID      string `json:"id"`
			Version string `json:"version"`
		}
		if json.Unmarshal(data, &named) == nil && idPattern.MatchString(named.ID) {
			return Manifest{ID: named.ID, Version: named.Version}, fmt.Errorf("plugin %s: %w", named.ID, err)
		}
		return Manifest{}, fmt.Errorf("manifest: %w", err)
	}
	m := Manifest{ID: w.ID, Version: w.Version, Wasm: w.Wasm, SHA256: strings.ToLower(w.SHA256), Limits: w.Limits}
	if m.ID != "" && !idPattern.MatchString(m.ID) {
		return m, fmt.Errorf("manifest: id %q must match %s", m.ID, idPattern)
	}
	prefix := "manifest"
	if m.ID != "" {
		prefix = "plugin " + m.ID
	}
	abi, err := parseABI(w.ABI)
	if err != nil {
		return m, fmt.Errorf("%s: %w", prefix, err)
	}
	m.ABI = abi
	if err := m.check(); err != nil {
		return m, fmt.Errorf("%s: %w", prefix, err)
	}
	return m, nil
}

// parseABI accepts "errclass v1", "v1", "1" or the number 1.
func parseABI(raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return "", errors.New("abi missing (want \"errclass v1\")")
	}
	var s string
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("abi: %w", err)
		}
	} else {
		s = string(raw)
	}
	switch s {
	case ABIVersion, "v1", "1":
		return ABIVersion, nil
	}
	return "", fmt.Errorf("ABI %s not supported by this host (supports %q)", raw, ABIVersion)
}

// check reports the first missing or malformed field.
func (m Manifest) check() error {
	switch {
	case m.ID == "":
		return errors.New("id missing")
	case m.Wasm == "":
		return errors.New("wasm missing")
	case m.SHA256 == "":
		return errors.New("sha256 missing")
	}
	if b, err := hex.DecodeString(m.SHA256); err != nil || len(b) != 32 {
		return fmt.Errorf("sha256 %q is not 64 hex digits", m.SHA256)
	}
	if m.ABI != ABIVersion {
		return fmt.Errorf("ABI %q not supported by this host (supports %q)", m.ABI, ABIVersion)
	}
	_, err := m.Limits.effective()
	return err
}

// ParseManifests decodes a JSON array of manifests, the config file's
// top-level "plugins" value. Every bad entry is reported in the joined
// error, and also returned in place carrying its error ([Manifest.Err]) and
// an id ("plugins[i]" when it has none), so that a host lists it as
// rejected.
func ParseManifests(raw []byte) ([]Manifest, error) {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("plugins: want an array of manifests: %s", firstLine(err.Error()))
	}
	var out []Manifest
	var errs []error
	seen := map[string]bool{}
	for i, item := range items {
		m, err := ParseManifest(item)
		if err == nil && seen[m.ID] {
			err = fmt.Errorf("plugin %s: duplicate id", m.ID)
		}
		if err != nil {
			err = fmt.Errorf("plugins[%d]: %w", i, err)
			errs = append(errs, err)
			if m.ID == "" || seen[m.ID] {
				m.ID = fmt.Sprintf("plugins[%d]", i)
			}
			m.err = err
			out = append(out, m)
			continue
		}
		seen[m.ID] = true
		out = append(out, m)
	}
	return out, errors.Join(errs...)
}

// LoadManifestFile reads a manifest file (a --plugin argument). A relative
// wasm path is resolved from the manifest's directory.
func LoadManifestFile(path string) (Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		err = fmt.Errorf("read plugin manifest: %w", err)
		return Manifest{ID: filepath.Base(path), Wasm: path, err: err}, err
	}
	m, err := ParseManifest(data)
	if err != nil {
		err = fmt.Errorf("%s: %w", path, err)
		if m.ID == "" {
			m.ID = filepath.Base(path)
		}
		m.err = err
		return m, err
	}
	if !filepath.IsAbs(m.Wasm) {
		m.Wasm = filepath.Join(filepath.Dir(path), m.Wasm)
	}
	return m, nil
}

// strictDecode decodes one JSON value into v, rejecting unknown keys and
// trailing data.
func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errors.New(firstLine(err.Error()))
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the manifest")
	}
	return nil
}

// firstLine keeps error text to one line.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
