package plugincheck

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/acctpool/acctpool/core/verdict"
	"github.com/acctpool/acctpool/plugins"
)

// Verdict is a classification as reports show it.
type Verdict struct {
	Class        verdict.Class `json:"class"`
	RetryAfterMs int64         `json:"retryAfterMs"`
	Reason       string        `json:"reason"`
	DecidedBy    string        `json:"decidedBy"`
}

func verdictOf(v verdict.Verdict) Verdict {
	return Verdict{Class: v.Class, RetryAfterMs: v.RetryAfterMs(), Reason: v.Reason, DecidedBy: v.DecidedBy}
}

// Fault is a plugin call that failed; the server would have used the
// built-in verdict.
type Fault struct {
	// Kind is the fault kind the host counts (timeout, trap, bad_output,
	// memory, alloc, input_too_large, pool_exhausted, instantiate).
	Kind plugins.FaultKind `json:"kind"`
	// Message is the host's one-line description.
	Message string `json:"message"`
}

// Row is the outcome of one case.
type Row struct {
	Name string `json:"name"`
	// Origin is "corpus" for the built-in cases, "cases" for --cases.
	Origin          string         `json:"origin"`
	Source          verdict.Source `json:"source"`
	Status          int            `json:"status"`
	Network         bool           `json:"network,omitempty"`
	StreamRateLimit bool           `json:"streamRateLimit,omitempty"`
	// Builtin is the built-in verdict; Plugin the plugin's, nil when it
	// had no opinion or faulted; Final what the server would use.
	Builtin Verdict  `json:"builtin"`
	Plugin  *Verdict `json:"plugin,omitempty"`
	Final   Verdict  `json:"final"`
	Fault   *Fault   `json:"fault,omitempty"`
	// EffectsThatDiffer are the effects-table consequences (verdict.EffectOf)
	// that the final verdict changes against the built-in one, each
	// "what: built-in → plugin".
	EffectsThatDiffer []string `json:"effectsThatDiffer"`
	// ExpectFailures are unmet "expect" assertions of the case.
	ExpectFailures []string `json:"expectFailures,omitempty"`
	Millis         float64  `json:"ms"`
}

// Report is the outcome of a check.
type Report struct {
	Manifest string `json:"manifest"`
	// ID, Version and Wasm are the manifest's (Wasm resolved).
	ID      string `json:"id"`
	Version string `json:"version"`
	Wasm    string `json:"wasm"`
	// LoadError is why the plugin was rejected; then no case ran.
	LoadError  string  `json:"loadError,omitempty"`
	LoadMillis float64 `json:"loadMs"`
	Rows       []Row   `json:"rows"`
	// Changed counts the cases where the plugin's verdict differs from
	// the built-in one; NoOpinion where it had none; Faults where it
	// faulted; ExpectFailed where an expectation was not met.
	Changed      int   `json:"changed"`
	NoOpinion    int   `json:"noOpinion"`
	Faults       int   `json:"faults"`
	ExpectFailed int   `json:"expectFailed"`
	Millis       int64 `json:"totalMs"`
	started      time.Time
}

// Failed reports whether the check fails: the plugin was rejected,
// faulted on an input, or missed an expectation.
func (r Report) Failed() bool { return r.LoadError != "" || r.Faults > 0 || r.ExpectFailed > 0 }

// Options configure [Check].
type Options struct {
	// ManifestPath is the plugin's manifest file, as --plugin takes it.
	ManifestPath string
	// Cases are classified in order.
	Cases []Case
	// CacheDir is the compilation cache ("" is the server's default).
	CacheDir string
	// Logger gets the host's log lines (plugin log output); nil discards.
	Logger *slog.Logger
}

// Check loads the plugin exactly as the server does (plugins.NewHost:
// manifest limits, sha256, ABI validation, _initialize) and classifies
// every case through it. A fault is recorded on its row; when faults open
// the plugin's circuit breaker the plugin is reloaded, so every case
// reaches it.
func Check(ctx context.Context, opts Options) (Report, error) {
	rep := Report{Manifest: opts.ManifestPath, Rows: []Row{}, started: time.Now()}
	m, err := plugins.LoadManifestFile(opts.ManifestPath)
	rep.ID, rep.Version, rep.Wasm = m.ID, m.Version, m.Wasm
	if err != nil {
		rep.LoadError = err.Error()
		return finish(rep), nil
	}
	start := time.Now()
	host, err := plugins.NewHost(ctx, plugins.Options{Manifests: []plugins.Manifest{m}, CacheDir: opts.CacheDir, Logger: opts.Logger})
	if err != nil {
		return rep, err
	}
	defer host.Close(context.WithoutCancel(ctx))
	rep.LoadMillis = millis(time.Since(start))
	st := status(host)
	if st.State == plugins.StateRejected {
		rep.LoadError = st.Error
		return finish(rep), nil
	}
	for _, c := range opts.Cases {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if st.State == plugins.StateOpen {
			if _, err := host.Reload(ctx, []plugins.Manifest{m}); err != nil {
				return rep, fmt.Errorf("reload after the circuit breaker opened: %w", err)
			}
		}
		before := status(host)
		f := c.Failure(time.Now())
		builtin := verdict.ClassifyBuiltin(f)
		t0 := time.Now()
		final := host.Classify(ctx, f)
		elapsed := time.Since(t0)
		st = status(host)
		row := Row{Name: c.Name, Origin: "corpus", Source: c.Source, Status: c.Status, Network: c.Network, StreamRateLimit: c.StreamRateLimit,
			Builtin: verdictOf(builtin), Final: verdictOf(final), Millis: millis(elapsed), EffectsThatDiffer: []string{}}
		if !c.builtin {
			row.Origin = "cases"
		}
		switch kind, faulted := newFault(before, st); {
		case faulted:
			row.Fault = &Fault{Kind: kind, Message: st.LastError}
			rep.Faults++
		case strings.HasPrefix(final.DecidedBy, "plugin:"):
			pv := verdictOf(final)
			row.Plugin = &pv
			if pv.Class != row.Builtin.Class || pv.RetryAfterMs != row.Builtin.RetryAfterMs {
				rep.Changed++
			}
		default:
			rep.NoOpinion++
		}
		row.EffectsThatDiffer = EffectsThatDiffer(f, builtin, final)
		row.ExpectFailures = c.Expect.check(row)
		if len(row.ExpectFailures) > 0 {
			rep.ExpectFailed++
		}
		rep.Rows = append(rep.Rows, row)
	}
	return finish(rep), nil
}

func finish(r Report) Report {
	r.Millis = time.Since(r.started).Milliseconds()
	return r
}

func status(h *plugins.Host) plugins.PluginStatus {
	st := h.Status()
	if len(st) == 0 {
		return plugins.PluginStatus{State: plugins.StateRejected, Error: "the host lists no plugin"}
	}
	return st[0]
}

// newFault reports the kind of the fault counted between two statuses.
func newFault(before, after plugins.PluginStatus) (plugins.FaultKind, bool) {
	for kind, n := range after.Faults {
		if n > before.Faults[kind] {
			return kind, true
		}
	}
	return "", false
}

func (e *Expect) check(r Row) []string {
	if e == nil {
		return nil
	}
	var out []string
	if e.Class != "" && r.Final.Class != e.Class {
		out = append(out, fmt.Sprintf("class %s, want %s", r.Final.Class, e.Class))
	}
	switch e.DecidedBy {
	case "plugin":
		if r.Plugin == nil {
			out = append(out, "decided by "+r.Final.DecidedBy+", want the plugin")
		}
	case "builtin":
		if r.Plugin != nil {
			out = append(out, "decided by "+r.Final.DecidedBy+", want the built-in classifier")
		}
	}
	if e.RetryAfterMs != nil && r.Final.RetryAfterMs != *e.RetryAfterMs {
		out = append(out, fmt.Sprintf("retryAfterMs %d, want %d", r.Final.RetryAfterMs, *e.RetryAfterMs))
	}
	return out
}

// EffectsThatDiffer compares what the built-in and the final verdict do
// to an account (verdict.EffectOf, and the backoff delays of a first
// failure), returning "what: built-in → final" for every difference.
func EffectsThatDiffer(f verdict.Failure, builtin, final verdict.Verdict) []string {
	a, b := effects(f, builtin), effects(f, final)
	out := []string{}
	for i := range a {
		if a[i][1] != b[i][1] {
			out = append(out, fmt.Sprintf("%s: %s → %s", a[i][0], a[i][1], b[i][1]))
		}
	}
	return out
}

// effects lists, in a fixed order, what verdict v does at f's source.
func effects(f verdict.Failure, v verdict.Verdict) [][2]string {
	e := verdict.EffectOf(f.Source, v)
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	refresh := "none"
	if e.RefreshBackoff != verdict.RefreshBackoffNone {
		refresh = duration(verdict.RefreshBackoffDelay(e.RefreshBackoff, v.RetryAfter, f.Network, 1))
		if e.RefreshBackoff == verdict.RefreshBackoffTransient && v.RetryAfter == 0 && !f.Network {
			refresh += " doubling"
		}
		if e.RefreshBackoff == verdict.RefreshBackoffPermanent {
			refresh += " permanent"
		}
	}
	var persisted []string
	if e.PersistRefreshError {
		persisted = append(persisted, "lastRefreshError")
	}
	if e.PersistQuotaError {
		q := "lastQuotaRefreshError"
		if e.RefreshAndRetry {
			q += " (if the retry fails)"
		}
		persisted = append(persisted, q)
	}
	if len(persisted) == 0 {
		persisted = append(persisted, "nothing")
	}
	out := [][2]string{
		{"refresh backoff", refresh},
		{"quota backoff", quota(e.QuotaBackoff)},
		{"persisted", strings.Join(persisted, ", ")},
		{"forced refresh and retry", yes(e.RefreshAndRetry)},
		{"fallback", yes(e.Fallback)},
		{"quota probe before moving", yes(e.ProbeQuota)},
		{"re-login", yes(e.RefreshBackoff == verdict.RefreshBackoffPermanent)},
	}
	if f.Source == verdict.SourceToken {
		out = append(out, [2]string{"quota backoff in a quota pass", quota(e.InQuotaPass)})
	}
	if f.Source == verdict.SourceMessages {
		out = append(out, [2]string{"retry-after", duration(v.RetryAfter)})
	}
	return out
}

func quota(k verdict.QuotaBackoffKind) string {
	switch k {
	case verdict.QuotaBackoffTransient:
		return duration(verdict.QuotaBackoffDelay(k, 1)) + " doubling"
	case verdict.QuotaBackoffFlat:
		return duration(verdict.QuotaBackoffDelay(k, 1))
	}
	return "none"
}

// duration prints d as the tables do: "24h", "5m", "30s", "1.5s", "0".
func duration(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
