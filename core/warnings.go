package core

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/acctpool/acctpool/core/internal/policy"
	"github.com/acctpool/acctpool/core/record"
	json "github.com/goccy/go-json"
)

// Warning is a value in one of the files that acctpool could not use as
// written: a value of the wrong type. It fell back to its default and the
// rest of the file was used (BEHAVIOUR.md §1.2); only JSON that does not
// parse makes a file corrupt. A warning never quotes the value, which may
// be a token: it names the file, the key path, the type found and the
// default used.
type Warning struct {
	// File is the file's path (in a Snapshot: "config" or "state" until
	// the engine fills in the path).
	File    string `json:"file"`
	Path    string `json:"path"`
	Type    string `json:"type"`
	Default string `json:"default"`
}

// String is the warning for a log line or a check command.
func (w Warning) String() string {
	return fmt.Sprintf("%s: %s is %s; using the default (%s)", w.File, w.Path, w.Type, w.Default)
}

// File roles of a snapshot's warnings.
const (
	warnConfig = "config"
	warnState  = "state"
)

// warnings collects the warnings of one file.
type warnings struct {
	file string
	list []Warning
}

func (w *warnings) add(path string, raw json.RawMessage, def string) {
	if w == nil {
		return
	}
	w.list = append(w.list, Warning{File: w.file, Path: path, Type: jsonType(raw), Default: def})
}

// jsonType names the JSON type of a raw value, with an article.
func jsonType(raw json.RawMessage) string {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return "empty"
	}
	switch t[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// fieldDefaults says, per struct type, what a field falls back to; a field
// not listed falls back to "none".
var fieldDefaults = map[reflect.Type]map[string]string{
	reflect.TypeOf(record.ConfigFile{}):    {"version": "1", "mainAccountId": "a new id", "accounts": "no accounts"},
	reflect.TypeOf(record.AccountConfig{}): {"enabled": "true", "addedAt": "unknown", "type": "none: the entry is listed, never routed"},
	reflect.TypeOf(record.StateFile{}):     {"version": "1", "accounts": "no account state"},
}

// structWarnings reports the known keys that the decoders kept raw in
// extra because their value had the wrong type.
func structWarnings(w *warnings, path string, v any, extra record.Extra) {
	if len(extra) == 0 {
		return
	}
	t := reflect.TypeOf(v)
	fields := record.JSONFields(t)
	keys := make([]string, 0, len(extra))
	for k := range extra {
		if _, known := fields[k]; known {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		def, ok := fieldDefaults[t][k]
		if !ok {
			def = "none"
		}
		w.add(path+k, extra[k], def)
	}
}

// fileWarnings lists the wrong-typed values of both files.
func fileWarnings(cfg *record.ConfigFile, st *record.StateFile) []Warning {
	c := &warnings{file: warnConfig}
	if cfg != nil {
		structWarnings(c, "", *cfg, cfg.Extra)
		for i := range cfg.Accounts {
			structWarnings(c, "accounts["+strconv.Itoa(i)+"].", cfg.Accounts[i], cfg.Accounts[i].Extra)
		}
	}
	s := &warnings{file: warnState}
	if st != nil {
		structWarnings(s, "", *st, st.Extra)
		if st.Main != nil {
			structWarnings(s, "main.", *st.Main, st.Main.Extra)
		}
		var ids []string // only the entries with unknown or wrong-typed keys
		for id, a := range st.Accounts {
			if a != nil && len(a.Extra) > 0 {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		for _, id := range ids {
			if a := st.Accounts[id]; a != nil {
				structWarnings(s, "accounts."+id+".", *a, a.Extra)
			}
		}
	}
	return append(c.list, s.list...)
}

// Warnings lists the values of the files that fell back to their defaults
// because they had the wrong type, with the files' paths (on a backend,
// the store's name and which part of it: the files are not read). Each is
// also logged once per process when the engine first reads it.
func (e *Engine) Warnings(ctx context.Context) ([]Warning, error) {
	snap, err := e.store.Load(ctx)
	if err != nil {
		return nil, err
	}
	return e.warningsOf(snap), nil
}

func (e *Engine) warningsOf(snap *Snapshot) []Warning {
	config, state := e.store.Paths().Config, e.store.Paths().State
	if e.store.backend != nil {
		// The values came from the database, not from this machine's
		// files: name the store (no secrets in its name) and the part.
		config, state = e.store.backend.String()+" (configuration)", e.store.backend.String()+" (account state)"
	}
	out := make([]Warning, len(snap.Warnings))
	for i, w := range snap.Warnings {
		switch w.File {
		case warnConfig:
			w.File = config
		case warnState:
			w.File = state
		}
		out[i] = w
	}
	return out
}

// logWarnings logs each warning of snap once per process.
func (e *Engine) logWarnings(snap *Snapshot) {
	if len(snap.Warnings) == 0 {
		return
	}
	r := e.router()
	r.warnMu.Lock()
	defer r.warnMu.Unlock()
	if r.warned == nil {
		r.warned = map[string]bool{}
	}
	for _, w := range e.warningsOf(snap) {
		if s := w.String(); !r.warned[s] {
			r.warned[s] = true
			e.log.Warn("config value ignored", "file", w.File, "path", w.Path, "type", w.Type, "default", w.Default)
		}
	}
}

// sectionReader reads the settings sections of a config tolerantly.
type sectionReader struct {
	x record.Extra
	w *warnings
}

// section decodes the object x[key] into v, a pointer to a struct of
// pointer and raw fields, one key at a time: a value of the wrong type
// stays unset (its default) and is reported. A section that is not an
// object is reported and ignored.
func (r sectionReader) section(key string, v any) {
	raw, ok := r.x[key]
	if !ok || string(bytes.TrimSpace(raw)) == "null" {
		return
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		r.w.add(key, raw, "the defaults of "+key)
		return
	}
	rv := reflect.ValueOf(v).Elem()
	fields := record.JSONFields(rv.Type())
	for k, val := range m {
		i, known := fields[k]
		if !known || string(bytes.TrimSpace(val)) == "null" {
			continue
		}
		f := rv.Field(i)
		if err := json.Unmarshal(val, f.Addr().Interface()); err != nil {
			f.SetZero()
			r.w.add(key+"."+k, val, "the default")
		}
	}
}

// number reads a finite number; null and absence are silent, any other
// type is reported.
func (r sectionReader) number(path string, raw json.RawMessage) (float64, bool) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || string(t) == "null" {
		return 0, false
	}
	var f float64
	if err := json.Unmarshal(t, &f); err != nil {
		r.w.add(path, raw, "the default")
		return 0, false
	}
	return f, true
}

// thresholds reads five_hour/5h, seven_day/1w and scoped; the canonical key
// wins over its alias, and a missing, null or wrong-typed value takes def
// (upstream writes NaN as null).
func (r sectionReader) thresholds(path string, m map[string]json.RawMessage, def policy.Thresholds) policy.Thresholds {
	pick := func(canon, alias string, d float64) float64 {
		for _, k := range []string{canon, alias} {
			if v, ok := r.number(path+"."+k, m[k]); ok && policy.Finite(v) {
				return v
			}
			if canon == alias {
				break
			}
		}
		return d
	}
	return policy.Thresholds{
		FiveHour: pick("five_hour", "5h", def.FiveHour),
		SevenDay: pick("seven_day", "1w", def.SevenDay),
		Scoped:   pick("scoped", "scoped", def.Scoped),
	}
}

// trimmedID is a config id as upstream reads it: trimmed.
func trimmedID(s string) string { return strings.TrimSpace(s) }
