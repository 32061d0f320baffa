package cli

// This file is the only place where the commands interpret core's views and
// settings (elsewhere they use no more than a returned view's ID, through
// nameOf). Everything else works on the types below, so a change to core's
// view fields is a change to this file alone.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	json "github.com/goccy/go-json"

	"github.com/acctpool/acctpool/core"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/internal/storeopen"
)

// engineOptions are what a command needs to build an engine over the pool.
type engineOptions struct {
	paths     core.Paths
	store     storeopen.Spec // the files, or a postgres store
	clock     core.Clock
	endpoints core.Endpoints
	logger    *slog.Logger
}

// openEngine builds a store and an engine over the user's pool: the files,
// or the postgres store, opened as the server opens it. The engine has no
// main credentials: the host owns them, so commands judge the main account
// on what the state records (see judgeMain). A command is one short call
// with no request path to spare, so its store writes observations at once
// instead of behind (BEHAVIOUR.md §1.9). close releases the store.
func openEngine(o engineOptions) (*core.Engine, func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, close, err := storeopen.Open(ctx, o.store, core.StoreOptions{Paths: o.paths, Logger: o.logger, WriteBehind: -1}, false)
	if err != nil {
		return nil, nil, err
	}
	eng, err := core.New(core.Options{Store: store, Clock: o.clock, Endpoints: o.endpoints, Logger: o.logger})
	if err != nil {
		close()
		return nil, nil, err
	}
	return eng, close, nil
}

// window is one quota window of an account as the commands show it.
type window struct {
	// Name is "5h", "7d" or a model window's title ("Fable only").
	Name string
	// Model is the model a scoped window limits; empty for 5h and 7d.
	Model string
	// Remaining is the percent left, 0..100.
	Remaining float64
	// ResetsAt is zero when unknown.
	ResetsAt time.Time
	// Thresholds are the least remaining percentages that apply, with what
	// they come from ("min" for minimumRemaining, "kill" for the killswitch).
	Thresholds []threshold
}

// threshold is one limit drawn on a window's bar.
type threshold struct {
	Kind    string // "min" or "kill"
	Percent float64
}

// account is one row of the status screen.
type account struct {
	ID    string
	Label string
	// Kind is "main", "oauth" or "api".
	Kind string
	// Order is the config position (0 first); Position counts from 1
	// among accounts of the same kind (fallback 1, 2, ...).
	Order, Position int
	Enabled         bool
	Usable          bool
	Reason          string
	Until           time.Time
	// NeedsRelogin is true when the refresh token was rejected for good.
	NeedsRelogin bool
	// ReloginSince is when the rejection was recorded.
	ReloginSince  time.Time
	LastRefreshed time.Time
	QuotaChecked  time.Time
	// QuotaBackoffUntil is when quota polling resumes, if backed off.
	QuotaBackoffUntil time.Time
	Windows           []window
	// Exhausted is true when a standard window is at 0 % (the evidence an
	// API-key route needs before routing uses it).
	Exhausted bool
}

// Name is the label, or the id when the account has none.
func (a account) Name() string {
	if a.Label != "" {
		return a.Label
	}
	return a.ID
}

// pool is one consistent look at the pool: the views as hosts see them
// (for --json) and the rows the screens are drawn from.
type pool struct {
	Now   time.Time
	Paths core.Paths
	// Store names a shared store (password redacted); "" for the files.
	Store    string
	Mode     string
	Views    []core.AccountView
	Accounts []account
	Sticky   stickyCount
}

// loadPool reads the files through the engine and builds the rows: main
// first, then OAuth fallbacks in order, then API-key routes in order.
func loadPool(ctx context.Context, eng *core.Engine, now time.Time) (*pool, error) {
	views, err := eng.ListAccounts(ctx)
	if err != nil {
		return nil, err
	}
	snap, err := eng.Store().Load(ctx)
	if err != nil {
		return nil, err
	}
	paths := eng.Store().Paths()
	for i := range views {
		if views[i].Main {
			judgeMain(snap, &views[i], now)
		}
	}
	sort.SliceStable(views, func(i, j int) bool { return rank(views[i]) < rank(views[j]) })
	p := &pool{Now: now, Paths: paths, Mode: string(snap.Settings.Routing), Views: views}
	if eng.Store().Shared() {
		p.Store = eng.Store().String()
	}
	seen := map[string]int{}
	for _, v := range views {
		a := accountOf(v, snap.Settings)
		seen[a.Kind]++
		a.Position = seen[a.Kind]
		p.Accounts = append(p.Accounts, a)
	}
	doc, err := eng.Store().RoutingDoc(ctx)
	if err != nil {
		return nil, err
	}
	name := paths.RoutingState
	if p.Store != "" {
		name = p.Store + " (routing)"
	}
	sticky, err := countSticky(doc, name, now)
	if err != nil {
		return nil, err
	}
	p.Sticky = sticky
	return p, nil
}

// rank orders main, then OAuth fallbacks, then API-key routes.
func rank(v core.AccountView) int {
	switch {
	case v.Main:
		return -1
	case v.Type == record.AccountAPI:
		return 1<<20 + v.Order
	default:
		return v.Order
	}
}

// judgeMain replaces the "credentials not set" verdict a command always gets
// for main (the host owns main's tokens and never hands them to a CLI) with
// the verdict on what the state file records: a rejected refresh token, an
// active refresh backoff, and the quota against the thresholds. It assumes
// the host still holds the refresh token the last error was recorded for.
func judgeMain(snap *core.Snapshot, v *core.AccountView, now time.Time) {
	if !v.Main || v.HasCredential {
		return
	}
	*v = core.MainViewOnRecord(snap, now)
}

func accountOf(v core.AccountView, s core.Settings) account {
	a := account{
		ID: v.ID, Label: v.Label, Kind: string(v.Type), Order: v.Order, Enabled: v.Enabled,
		Usable: v.Usable, Reason: v.Reason, Until: fromMs(v.Until), NeedsRelogin: v.NeedsRelogin,
		LastRefreshed: fromMs(v.LastRefreshedAt), QuotaBackoffUntil: fromMs(v.QuotaBackoffUntil),
	}
	if v.Main {
		a.Kind = "main"
	}
	if v.Problem != "" && a.Reason == "" {
		a.Reason = v.Problem
	}
	if v.NeedsRelogin && v.LastRefreshError != nil {
		a.ReloginSince = fromMs(v.LastRefreshError.CheckedAt)
	}
	q := v.Quota
	if q == nil {
		return a
	}
	a.QuotaChecked = fromMs(q.LatestCheck())
	id := v.ID
	if v.Main {
		id = core.MainAccountID
	}
	ks := s.Killswitch.For(id)
	// minimumRemaining judges fallbacks unless quota.enabled is false, and
	// main only when quota.enabled is true (BEHAVIOUR.md §3.2, core.Settings).
	minApplies := s.QuotaEnabled
	if v.Main {
		minApplies = s.QuotaRouting
	}
	std := func(name string, w *record.QuotaWindow, min, kill float64) {
		if w == nil {
			return
		}
		win := window{Name: name, Remaining: clampPct(w.RemainingPercent), ResetsAt: parseTime(w.ResetsAt)}
		if minApplies && min > 0 {
			win.Thresholds = append(win.Thresholds, threshold{Kind: "min", Percent: min})
		}
		if s.Killswitch.Enabled && kill > 0 {
			win.Thresholds = append(win.Thresholds, threshold{Kind: "kill", Percent: kill})
		}
		if win.Remaining <= 0 {
			a.Exhausted = true
		}
		a.Windows = append(a.Windows, win)
	}
	std("5h", q.FiveHour, s.MinimumRemaining.FiveHour, ks.FiveHour)
	std("7d", q.SevenDay, s.MinimumRemaining.SevenDay, ks.SevenDay)
	for _, sw := range q.Scoped {
		win := window{Name: sw.Title, Model: sw.ModelName, Remaining: clampPct(sw.RemainingPercent), ResetsAt: parseTime(sw.ResetsAt)}
		if win.Name == "" {
			win.Name = sw.ModelName
		}
		if s.Killswitch.Enabled && ks.Scoped > 0 {
			win.Thresholds = append(win.Thresholds, threshold{Kind: "kill", Percent: ks.Scoped})
		}
		a.Windows = append(a.Windows, win)
	}
	return a
}

// nextAccount predicts which account the next request without a session
// would get, from the rows alone (status must not refresh tokens or write
// files, which core's Select may do). It follows BEHAVIOUR.md §5: main-first
// tries main, then OAuth fallbacks in order; fallback-first the reverse;
// sticky-balanced routes requests without a session as main-first. An
// API-key route is chosen only when main's quota is spent. The second
// result says why.
func nextAccount(p *pool) (*account, string) {
	a, why := nextOrdered(p)
	if p.Mode == string(core.RoutingStickyBalanced) {
		why = "for requests without a session: " + why
	}
	return a, why
}

func nextOrdered(p *pool) (*account, string) {
	var main *account
	var fallbacks, keys []*account
	for i := range p.Accounts {
		a := &p.Accounts[i]
		switch a.Kind {
		case "main":
			main = a
		case string(record.AccountAPI):
			keys = append(keys, a)
		default:
			fallbacks = append(fallbacks, a)
		}
	}
	firstUsable := func(list []*account) *account {
		for _, a := range list {
			if a.Usable {
				return a
			}
		}
		return nil
	}
	mainOK := main != nil && main.Usable
	if p.Mode == string(core.RoutingFallbackFirst) {
		if a := firstUsable(fallbacks); a != nil {
			return a, "first usable fallback"
		}
		if mainOK {
			return main, "no fallback can serve"
		}
	} else {
		if mainOK {
			return main, "main can serve"
		}
		if a := firstUsable(fallbacks); a != nil {
			return a, "main cannot serve; first usable fallback"
		}
	}
	if main != nil && main.Exhausted {
		if a := firstUsable(keys); a != nil {
			return a, "main quota spent; API-key route"
		}
	}
	return nil, "no account can serve"
}

// stickyCount is what the routing-state file says about sticky sessions.
type stickyCount struct {
	Total     int
	ByAccount map[string]int
}

// stickyTTL is how long an assignment lives without use (BEHAVIOUR.md §1.5).
const stickyTTL = 7 * 24 * time.Hour

// countSticky counts the live sticky assignments of a routing state
// document (nil: none); name says where it came from, for errors.
func countSticky(doc []byte, name string, now time.Time) (stickyCount, error) {
	c := stickyCount{ByAccount: map[string]int{}}
	if doc == nil {
		return c, nil
	}
	var f struct {
		Assignments map[string]struct {
			AccountID  string `json:"accountId"`
			LastSeenAt int64  `json:"lastSeenAt"`
		} `json:"assignments"`
	}
	if err := json.Unmarshal(doc, &f); err != nil {
		return c, &fileError{Path: name, Err: errors.New("not valid JSON (run acctpool check for details)")}
	}
	for _, a := range f.Assignments {
		if a.LastSeenAt > 0 && now.Sub(fromMs(a.LastSeenAt)) > stickyTTL {
			continue
		}
		c.Total++
		c.ByAccount[a.AccountID]++
	}
	return c, nil
}

// nameOf is how commands name an account a core call returned: its label,
// or its id when it has none.
func nameOf(v core.AccountView) string {
	if v.Label != "" {
		return v.Label
	}
	return v.ID
}

// fileError is a problem with one of the files.
type fileError struct {
	Path string
	Err  error
}

func (e *fileError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *fileError) Unwrap() error { return e.Err }

// isFileError reports whether err is about the files (exit status 2) rather
// than the accounts.
func isFileError(err error) bool {
	var fe *fileError
	return errors.As(err, &fe) || errors.Is(err, core.ErrCorruptFile) || errors.Is(err, core.ErrLockTimeout) ||
		errors.Is(err, os.ErrPermission)
}

func fromMs(ms int64) time.Time {
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func parseTime(s string) time.Time {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

func clampPct(f float64) float64 {
	switch {
	case f != f || f < 0:
		return 0
	case f > 100:
		return 100
	}
	return f
}

// discardLogger is the logger of commands run without --verbose.
func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
