// Package filecheck validates acctpool's files (anthropic-auth.json, its
// state and routing-state files) and plugin manifests without changing
// them: every finding names the file, the key path (or line and column),
// the value found, what was expected and the default used. `acctpool
// check` prints the findings and the server logs them once at start, so
// both say the same thing about the same files.
package filecheck

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/acctpool/acctpool/core"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/plugins"
)

// Finding is one problem check reports.
type Finding struct {
	Severity Severity
	File     string
	// Key is the key path inside the file; empty for the file as a whole.
	Key string
	// Line and Col locate a syntax error (1-based); 0 otherwise.
	Line, Col int
	// Found is the value found ("missing" when absent); empty when the
	// Finding is not about one value.
	Found    string
	Expected string
	// Effect is what acctpool does about it: the default it uses, what it
	// skips, or what the user should do.
	Effect string
}

// String is the line check prints.
func (f Finding) String() string {
	var b strings.Builder
	b.WriteString(string(f.Severity) + ": " + f.File)
	if f.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", f.Line, f.Col)
	}
	if f.Key != "" {
		b.WriteString(": " + f.Key)
	}
	b.WriteString(": ")
	switch {
	case f.Found != "" && f.Expected != "":
		b.WriteString("found " + f.Found + ", expected " + f.Expected)
	case f.Found != "":
		b.WriteString(f.Found)
	default:
		b.WriteString(f.Expected)
	}
	if f.Effect != "" {
		b.WriteString("; " + f.Effect)
	}
	return b.String()
}

// HasError reports whether any finding is an error (a file acctpool
// cannot use as it is), not only warnings.
func HasError(fs []Finding) bool {
	for _, f := range fs {
		if f.Severity == SevError {
			return true
		}
	}
	return false
}

// readJSONFile reads and decodes one file. A missing file is reported once
// (a warning for the config, nothing for the others, whose absence is
// normal); unparseable JSON is an error with its line and column.
func readJSONFile(path string, kind fileKind, out *[]Finding) (any, bool) {
	if path == "" {
		return nil, false
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if kind == configFile {
			*out = append(*out, Finding{Severity: SevWarning, File: path, Found: "the file does not exist",
				Effect: "the empty config is used: main only, default settings"})
		}
		return nil, false
	}
	if err != nil {
		*out = append(*out, Finding{Severity: SevError, File: path, Found: "cannot be read (" + errText(err) + ")",
			Effect: "acctpool cannot use it until it is readable"})
		return nil, true
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		f := Finding{Severity: SevError, File: path, Found: "not valid JSON (" + syntaxText(err) + ")",
			Effect: "the file is left untouched and nothing that needs it runs until it is fixed by hand (removing it deletes what it holds" + holds(kind) + ")"}
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			f.Line, f.Col = lineCol(b, se.Offset)
		case errors.As(err, &te):
			f.Line, f.Col = lineCol(b, te.Offset)
		default:
			f.Line, f.Col = lineCol(b, int64(len(b)))
		}
		*out = append(*out, f)
		return nil, true
	}
	if _, ok := v.(map[string]any); !ok {
		*out = append(*out, Finding{Severity: SevError, File: path, Found: "found " + describe(v, false), Expected: "a JSON object",
			Effect: effectNotLoaded})
		return nil, true
	}
	return v, true
}

func holds(kind fileKind) string {
	switch kind {
	case configFile:
		return ": the account list and settings"
	case stateFile:
		return ": every account's tokens"
	}
	return ": the sticky session assignments"
}

// syntaxText is the parser's message without any quoted input, so no token
// fragment can reach the terminal.
func syntaxText(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "looking for"); i > 0 && strings.HasPrefix(msg, "invalid character") {
		return "unexpected character " + strings.TrimSpace(msg[len("invalid character"):i]) + " " + msg[i:]
	}
	return secret.Redact(msg)
}

func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// lineCol converts a byte offset into a 1-based line and column.
func lineCol(b []byte, off int64) (int, int) {
	if off > int64(len(b)) {
		off = int64(len(b))
	}
	if off < 1 {
		off = 1
	}
	before := b[:off-1]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(off) - bytes.LastIndexByte(before, '\n') - 1
	return line, col
}

// splitPath turns "accounts[].quota.scoped[]" into its segments.
func splitPath(p string) []string {
	var out []string
	for _, s := range strings.Split(p, ".") {
		if strings.HasSuffix(s, "[]") {
			out = append(out, strings.TrimSuffix(s, "[]"), "[]")
			continue
		}
		out = append(out, s)
	}
	return out
}

// walk visits every value at segs below v; for a named key that is absent
// in a present object it visits with present false.
func walk(v any, segs []string, path string, visit func(key string, val any, present bool)) {
	if len(segs) == 0 {
		visit(path, v, true)
		return
	}
	seg, rest := segs[0], segs[1:]
	switch seg {
	case "*":
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			walk(m[k], rest, joinKey(path, k), visit)
		}
	case "[]":
		a, ok := v.([]any)
		if !ok {
			return
		}
		for i, item := range a {
			walk(item, rest, fmt.Sprintf("%s[%d]", path, i), visit)
		}
	default:
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		val, present := m[seg]
		if !present {
			if len(rest) == 0 {
				visit(joinKey(path, seg), nil, false)
			}
			return
		}
		walk(val, rest, joinKey(path, seg), visit)
	}
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func joinKey(path, k string) string {
	if !plainKey.MatchString(k) {
		return path + "[" + strconv.Quote(k) + "]"
	}
	if path == "" {
		return k
	}
	return path + "." + k
}

// judge applies the rule to one value; bad is true with the Finding (its
// file and key still empty) when the value breaks it.
func (r checkRule) judge(val any, present bool) (Finding, bool) {
	f := Finding{Severity: r.sev, Expected: r.expected, Effect: r.effect}
	if !present {
		if !r.required {
			return f, false
		}
		f.Found = "missing"
		if r.missing != "" {
			f.Severity, f.Effect = r.missing, r.missingEffect
		}
		return f, true
	}
	f.Found = describe(val, r.secret)
	outOfRange := func() (Finding, bool) {
		if r.rangeSev != "" {
			f.Severity, f.Effect = r.rangeSev, r.rangeEffect
		}
		return f, true
	}
	inRange := func(n float64) bool {
		return (r.min == nil || n >= *r.min) && (r.max == nil || n <= *r.max)
	}
	switch r.kind {
	case kindObject:
		_, ok := val.(map[string]any)
		return f, !ok
	case kindArray:
		_, ok := val.([]any)
		return f, !ok
	case kindString:
		_, ok := val.(string)
		return f, !ok
	case kindBool:
		_, ok := val.(bool)
		return f, !ok
	case kindEnum:
		s, ok := val.(string)
		if !ok {
			return f, true
		}
		for _, e := range r.enum {
			if s == e {
				return f, false
			}
		}
		return f, true
	case kindTimestamp:
		s, ok := val.(string)
		if !ok {
			return f, true
		}
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			return outOfRange()
		}
		return f, false
	case kindNumberOrNull:
		if val == nil {
			return f, false
		}
		fallthrough
	case kindNumber, kindInteger:
		n, ok := val.(float64)
		if !ok || (r.kind == kindInteger && n != math.Trunc(n)) {
			return f, true
		}
		if !inRange(n) {
			return outOfRange()
		}
	}
	return f, false
}

// describe shows a value found, never a secret: strings are quoted and
// shortened, containers are named.
func describe(v any, isSecret bool) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(x) + " (a boolean)"
	case float64:
		if isSecret {
			return "a number"
		}
		return strconv.FormatFloat(x, 'f', -1, 64) + " (a number)"
	case string:
		if isSecret {
			return "a string"
		}
		s := secret.Redact(x)
		if r := []rune(s); len(r) > 40 {
			s = string(r[:39]) + "…"
		}
		return strconv.Quote(s) + " (a string)"
	case []any:
		return fmt.Sprintf("an array of %d", len(x))
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// checkConfig runs the checks that relate several keys of the config and
// returns the account ids it lists, with their types.
func checkConfig(path string, cfg any, out *[]Finding) map[string]string {
	ids := map[string]string{}
	m, _ := cfg.(map[string]any)
	if m == nil {
		return ids
	}
	add := func(sev Severity, key, found, expected, effect string) {
		*out = append(*out, Finding{Severity: sev, File: path, Key: key, Found: found, Expected: expected, Effect: effect})
	}
	accounts, _ := m["accounts"].([]any)
	firstAt := map[string]int{}
	for i, item := range accounts {
		a, ok := item.(map[string]any)
		if !ok {
			continue
		}
		key := fmt.Sprintf("accounts[%d]", i)
		id, _ := a["id"].(string)
		typ, _ := a["type"].(string)
		if s, isString := a["id"].(string); isString && strings.TrimSpace(s) == "" {
			add(SevError, key+".id", describe(s, false), "a non-empty string", "the account cannot be used")
		}
		if id != "" {
			if j, dup := firstAt[id]; dup {
				add(SevError, key+".id", describe(id, false), fmt.Sprintf("an id no other account has (accounts[%d] has it)", j),
					"both entries share one state entry and one set of tokens; give one a new id or remove it")
			} else {
				firstAt[id] = i
				ids[id] = typ
			}
		}
		if typ == "api" {
			u, _ := a["baseURL"].(string)
			if _, has := a["baseURL"]; !has {
				add(SevError, key+".baseURL", "missing", "an http(s) URL for this API-key route", "the account cannot be used")
			} else if _, isString := a["baseURL"].(string); isString && !httpURL(u) {
				add(SevError, key+".baseURL", describe(secret.Redact(u), false), "an http(s) URL without credentials", "the account cannot be used")
			}
		}
		for _, k := range []string{"access", "refresh", "apiKey", "expires"} {
			if _, has := a[k]; has {
				add(SevWarning, key+"."+k, "a credential in the config file", "credentials only in the state file",
					"acctpool moves it to the state file on the next account change; keep this file private until then")
			}
		}
	}
	if q, ok := m["quota"].(map[string]any); ok {
		checkAliases(path, "quota.minimumRemaining", q["minimumRemaining"], out)
	}
	if k, ok := m["killswitch"].(map[string]any); ok {
		checkAliases(path, "killswitch.main", k["main"], out)
		if per, ok := k["accounts"].(map[string]any); ok {
			for _, id := range sortedKeys(per) {
				checkAliases(path, joinKey("killswitch.accounts", id), per[id], out)
				if _, known := ids[id]; !known && id != core.MainAccountID {
					add(SevWarning, joinKey("killswitch.accounts", id), describe(id, false), "the id of an account in accounts, or main",
						"the entry has no effect")
				}
			}
		}
	}
	if al, ok := m["alerts"].(map[string]any); ok {
		if u, ok := al["webhook"].(string); ok && !httpURL(u) {
			// A webhook URL often carries its secret in the path: shown by type only.
			add(SevWarning, "alerts.webhook", describe(u, true), "an http(s) URL without credentials", "no webhook is called")
		}
	}
	return ids
}

func checkAliases(path, key string, v any, out *[]Finding) {
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	for _, p := range [][2]string{{"five_hour", "5h"}, {"seven_day", "1w"}} {
		_, canon := m[p[0]]
		_, alias := m[p[1]]
		if canon && alias {
			*out = append(*out, Finding{Severity: SevWarning, File: path, Key: key + "." + p[1], Found: describe(m[p[1]], false),
				Expected: "only one of " + p[0] + " and its alias " + p[1], Effect: p[0] + " wins; " + p[1] + " is ignored"})
		}
	}
}

func httpURL(s string) bool {
	u, err := url.Parse(strings.TrimSpace(s))
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.User == nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// checkState relates the state file to the config's accounts.
func checkState(path string, st any, ids map[string]string, out *[]Finding) {
	m, _ := st.(map[string]any)
	accounts, _ := m["accounts"].(map[string]any)
	for _, id := range sortedKeys(accounts) {
		if _, known := ids[id]; !known {
			*out = append(*out, Finding{Severity: SevWarning, File: path, Key: joinKey("accounts", id),
				Found: "an entry for an account the config does not list", Expected: "every state entry to have an account in the config",
				Effect: "the next write deletes this entry and its tokens; add the account back to the config first if you need it"})
		}
	}
	if m == nil {
		return
	}
	idList := make([]string, 0, len(ids))
	for id := range ids {
		idList = append(idList, id)
	}
	sort.Strings(idList)
	for _, id := range idList {
		e, _ := accounts[id].(map[string]any)
		switch ids[id] {
		case "oauth":
			if r, isString := e["refresh"].(string); e["refresh"] == nil || isString && strings.TrimSpace(r) == "" {
				*out = append(*out, Finding{Severity: SevWarning, File: path, Key: joinKey("accounts", id) + ".refresh",
					Found: "missing", Expected: "the account's refresh token", Effect: "the account cannot be used; run: acctpool login --replace " + id})
			}
		case "api":
			if k, isString := e["apiKey"].(string); e["apiKey"] == nil || isString && strings.TrimSpace(k) == "" {
				*out = append(*out, Finding{Severity: SevWarning, File: path, Key: joinKey("accounts", id) + ".apiKey",
					Found: "missing", Expected: "the route's API key", Effect: "the route cannot be used; remove it and add it again with acctpool add-key"})
			}
		}
	}
}

var sessionHash = regexp.MustCompile(`^[0-9a-f]{64}$`)

// checkRouting relates the routing-state file to the accounts.
func checkRouting(path string, rt any, ids map[string]string, out *[]Finding) {
	m, _ := rt.(map[string]any)
	as, _ := m["assignments"].(map[string]any)
	for _, k := range sortedKeys(as) {
		key := joinKey("assignments", k)
		if !sessionHash.MatchString(k) {
			*out = append(*out, Finding{Severity: SevWarning, File: path, Key: "assignments",
				Found:    fmt.Sprintf("a key that is not a SHA-256 hex digest (%d characters)", len(k)),
				Expected: "64 lowercase hex digits", Effect: "a session id may be stored in clear; the assignment is kept but never matched"})
			key = "assignments[<not a hash>]"
		}
		a, _ := as[k].(map[string]any)
		if id, ok := a["accountId"].(string); ok {
			if _, known := ids[id]; !known && id != core.MainAccountID {
				*out = append(*out, Finding{Severity: SevWarning, File: path, Key: key + ".accountId", Found: describe(id, false),
					Expected: "an account of the pool", Effect: "the session is assigned again on its next request"})
			}
		}
	}
}

// checkPlugins validates the config's "plugins" array and manifest files
// with the plugin host's own parser, and that each module exists with its
// digest.
func checkPlugins(configPath string, cfg any, files []string, out *[]Finding) {
	if m, ok := cfg.(map[string]any); ok {
		if raw, has := m["plugins"]; has {
			if _, isArray := raw.([]any); isArray {
				b, _ := json.Marshal(raw)
				ms, err := plugins.ParseManifests(b)
				if err != nil {
					for _, line := range strings.Split(err.Error(), "\n") {
						key, msg, _ := strings.Cut(line, ": ")
						*out = append(*out, Finding{Severity: SevError, File: configPath, Key: key, Found: msg,
							Effect: "this plugin is not loaded (the built-in classifier decides)"})
					}
				}
				for i, mf := range ms {
					if mf.Err() == nil {
						checkModule(configPath, fmt.Sprintf("plugins[%d].wasm", i), mf, out)
					}
				}
			}
		}
	}
	for _, path := range files {
		mf, err := plugins.LoadManifestFile(path)
		if err != nil {
			*out = append(*out, Finding{Severity: SevError, File: path, Found: err.Error(), Effect: "this plugin is not loaded"})
			continue
		}
		checkModule(path, "wasm", mf, out)
	}
}

func checkModule(file, key string, m plugins.Manifest, out *[]Finding) {
	if !filepath.IsAbs(m.Wasm) {
		*out = append(*out, Finding{Severity: SevWarning, File: file, Key: key, Found: describe(m.Wasm, false), Expected: "an absolute path",
			Effect: "it is resolved against the server's working directory"})
		return
	}
	b, err := os.ReadFile(m.Wasm)
	if err != nil {
		*out = append(*out, Finding{Severity: SevError, File: file, Key: key, Found: describe(m.Wasm, false) + " cannot be read (" + errText(err) + ")",
			Effect: "this plugin is not loaded"})
		return
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, m.SHA256) {
		*out = append(*out, Finding{Severity: SevError, File: file, Key: strings.TrimSuffix(key, "wasm") + "sha256", Found: describe(m.SHA256, false),
			Expected: "the module's digest " + got, Effect: "this plugin is not loaded"})
	}
}

// checkModes reports files readable by others and missing directories.
func checkModes(paths core.Paths, cfg any, out *[]Finding) {
	inline := false
	if m, ok := cfg.(map[string]any); ok {
		accounts, _ := m["accounts"].([]any)
		for _, a := range accounts {
			e, _ := a.(map[string]any)
			for _, k := range []string{"access", "refresh", "apiKey"} {
				if _, has := e[k]; has {
					inline = true
				}
			}
		}
	}
	for _, f := range []struct {
		path   string
		tokens bool
	}{{paths.Config, inline}, {paths.State, true}, {paths.RoutingState, false}} {
		info, err := os.Stat(f.path)
		if err != nil {
			continue
		}
		mode := info.Mode().Perm()
		if mode&0o077 == 0 {
			continue
		}
		sev, effect := SevWarning, "run: chmod 600 "+f.path
		if f.tokens {
			sev, effect = SevError, "it holds tokens that other users can read; run: chmod 600 "+f.path
		}
		*out = append(*out, Finding{Severity: sev, File: f.path, Found: fmt.Sprintf("mode %04o (readable or writable by group or others)", mode),
			Expected: "mode 0600", Effect: effect})
	}
	seen := map[string]bool{}
	for _, p := range []string{paths.Config, paths.State, paths.RoutingState} {
		dir := filepath.Dir(p)
		if p == "" || seen[dir] {
			continue
		}
		seen[dir] = true
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			*out = append(*out, Finding{Severity: SevWarning, File: dir, Found: "the directory does not exist",
				Effect: "acctpool creates it when it first writes a file there"})
		}
	}
}

// loadWithCore asks core's own loader, read-only, whether it accepts the
// files; a refusal the table did not predict is an error Finding, so check
// never passes files the server would reject.
func loadWithCore(ctx context.Context, paths core.Paths) []Finding {
	store, err := core.NewStore(core.StoreOptions{Paths: paths, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ReadOnly: true})
	if err == nil {
		_, err = store.Load(ctx)
	}
	if err == nil {
		return nil
	}
	return []Finding{{Severity: SevError, File: paths.Config, Found: "acctpool refuses the files: " + secret.Redact(err.Error()),
		Effect: "fix the value it names; the files are left untouched"}}
}

// naturalLess orders key paths with their array indexes as numbers, so
// accounts[2] comes before accounts[10].
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := digitsPrefix(a), digitsPrefix(b)
		if da != "" && db != "" {
			na, _ := strconv.Atoi(da)
			nb, _ := strconv.Atoi(db)
			if na != nb {
				return na < nb
			}
			a, b = a[len(da):], b[len(db):]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func digitsPrefix(s string) string {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i]
}

// Log logs what `acctpool check` would report, one line per finding at warn
// (warnings) or error level, so the server can say it once at start.
func Log(ctx context.Context, paths core.Paths, log *slog.Logger) {
	for _, f := range Files(ctx, paths, nil) {
		level := slog.LevelWarn
		if f.Severity == SevError {
			level = slog.LevelError
		}
		log.Log(ctx, level, "check: "+f.String())
	}
}

// Files validates the three files and the plugin manifests, read-only,
// and returns the findings in file order.
func Files(ctx context.Context, paths core.Paths, manifestFiles []string) []Finding {
	var out []Finding
	cfg, cfgFound := readJSONFile(paths.Config, configFile, &out)
	st, _ := readJSONFile(paths.State, stateFile, &out)
	rt, _ := readJSONFile(paths.RoutingState, routingFile, &out)
	docs := map[fileKind]struct {
		path string
		v    any
	}{configFile: {paths.Config, cfg}, stateFile: {paths.State, st}, routingFile: {paths.RoutingState, rt}}
	for _, r := range checkRules {
		d := docs[r.file]
		if d.v == nil {
			continue
		}
		walk(d.v, splitPath(r.path), "", func(key string, val any, present bool) {
			if f, bad := r.judge(val, present); bad {
				f.File, f.Key = d.path, key
				out = append(out, f)
			}
		})
	}
	// The state and routing state are related to the config's accounts
	// only when the config could be read (an absent one is the empty one).
	ids := checkConfig(paths.Config, cfg, &out)
	if cfg != nil || !cfgFound {
		checkState(paths.State, st, ids, &out)
		checkRouting(paths.RoutingState, rt, ids, &out)
	}
	checkPlugins(paths.Config, cfg, manifestFiles, &out)
	checkModes(paths, cfg, &out)
	if !HasError(out) {
		out = append(out, loadWithCore(ctx, paths)...)
	}
	order := map[string]int{paths.Config: 0, paths.State: 1, paths.RoutingState: 2}
	rank := func(f Finding) int {
		if o, ok := order[f.File]; ok {
			return o
		}
		return 3
	}
	sort.SliceStable(out, func(i, j int) bool {
		if ri, rj := rank(out[i]), rank(out[j]); ri != rj {
			return ri < rj
		}
		return naturalLess(out[i].Key, out[j].Key)
	})
	return out
}
