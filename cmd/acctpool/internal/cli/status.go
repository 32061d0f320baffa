package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	json "github.com/goccy/go-json"

	"github.com/acctpool/acctpool/core"
	"github.com/acctpool/acctpool/core/secret"
)

const statusUsage = `status [--json] [--watch [interval]] [--refresh] [--width N] [--color auto|always|never] [file flags]

Shows every account: whether it can serve now or why not and until when,
its 5-hour, 7-day and per-model quota windows with the thresholds that
apply, when its token was refreshed and its quota checked, and which account
the next request would get. Exit status: 0 when at least one account can
serve, 1 when none can, 2 on a bad argument or an unreadable file.`

// Status is `acctpool status`.
func Status(args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runStatus(ctx, args, stdout, stderr, env, statusLoop{})
}

// statusLoop drives --watch: ticks delivers the redraw times (a
// time.Ticker's channel when nil) and frames, when positive, stops after
// that many frames. Tests set both, so no test waits on a real timer;
// terminal makes them draw as on a terminal.
type statusLoop struct {
	ticks    <-chan time.Time
	frames   int
	terminal bool
}

type statusFlags struct {
	common
	json    bool
	refresh bool
	watch   time.Duration
	width   int
	color   string
}

// splitWatch takes the optional interval of --watch out of args, since the
// flag package has no optional values: `--watch`, `--watch 5s`,
// `--watch=5s` and `--watch 5` (seconds) are all accepted.
func splitWatch(args []string) ([]string, time.Duration, error) {
	var out []string
	var watch time.Duration
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "watch" {
			out = append(out, a)
			continue
		}
		watch = 2 * time.Second
		if !hasVal && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			val, hasVal = args[i+1], true
			i++
		}
		if hasVal {
			d, err := parseInterval(val)
			if err != nil {
				return nil, 0, err
			}
			watch = d
		}
	}
	return out, watch, nil
}

func parseInterval(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		n, nerr := strconv.Atoi(s)
		if nerr != nil {
			return 0, usageErr("--watch %q: want a duration such as 5s or 1m", s)
		}
		d = time.Duration(n) * time.Second
	}
	if d < time.Second {
		return 0, usageErr("--watch %q: the interval must be at least 1s", s)
	}
	return d, nil
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) string, loop statusLoop) int {
	args, watch, err := splitWatch(args)
	if err != nil {
		return fail(stderr, "status", err)
	}
	var f statusFlags
	f.watch = watch
	fs := newFlags("status", stderr, statusUsage)
	f.register(fs)
	fs.BoolVar(&f.json, "json", false, "print a JSON object (schema/cli-status.schema.json) instead of the screen")
	fs.BoolVar(&f.refresh, "refresh", false, "poll the usage of accounts whose quota is stale first (honours backoff and the 1 s gap)")
	fs.IntVar(&f.width, "width", 0, "columns to fit (default: COLUMNS, else the terminal's, else 80)")
	fs.StringVar(&f.color, "color", "auto", "auto (colour and Unicode on a terminal unless NO_COLOR is set), always, or never")
	fs.Bool("watch", false, "redraw every interval (default 2s) until interrupted")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return fail(stderr, "status", usageErr("unexpected argument %q", fs.Arg(0)))
	}
	st, err := outputStyle(stdout, env, f.color, f.width)
	if err != nil {
		return fail(stderr, "status", err)
	}
	st.tty = st.tty || loop.terminal
	eng, clock, closeStore, err := f.engine(env, stderr)
	if err != nil {
		return fail(stderr, "status", err)
	}
	defer closeStore()
	frame := func() int {
		if f.refresh {
			refreshQuota(ctx, eng, stderr)
		}
		p, err := loadPool(ctx, eng, clock.Now())
		if err != nil {
			return fail(stderr, "status", err)
		}
		if f.json {
			if err := writeStatusJSON(stdout, p); err != nil {
				return fail(stderr, "status", err)
			}
		} else {
			if f.watch > 0 && st.tty {
				io.WriteString(stdout, "\x1b[H\x1b[2J")
			}
			io.WriteString(stdout, renderStatus(p, st))
		}
		if countUsable(p) == 0 {
			return exitNone
		}
		return exitOK
	}
	code := frame()
	if f.watch <= 0 || code == exitUsage {
		return code
	}
	ticks := loop.ticks
	if ticks == nil {
		t := time.NewTicker(f.watch)
		defer t.Stop()
		ticks = t.C
	}
	for n := 1; loop.frames <= 0 || n < loop.frames; n++ {
		select {
		case <-ctx.Done():
			return code
		case <-ticks:
		}
		code = frame()
		if code == exitUsage {
			return code
		}
	}
	return code
}

// refreshQuota runs one quota pass and reports failures on stderr.
func refreshQuota(ctx context.Context, eng *core.Engine, stderr io.Writer) {
	sum, err := eng.RefreshQuotaDue(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "acctpool status: quota refresh: %s\n", secret.Redact(err.Error()))
		return
	}
	for _, r := range sum.Results {
		if r.Outcome == core.OutcomeFailed || r.Outcome == core.OutcomeBackoff {
			line := fmt.Sprintf("acctpool status: quota of %s: %s", r.Account, r.Outcome)
			if r.Reason != "" {
				line += ": " + r.Reason
			}
			if r.Until > 0 {
				line += " (until " + time.UnixMilli(r.Until).Format(time.RFC3339) + ")"
			}
			fmt.Fprintln(stderr, secret.Redact(line))
		}
	}
}

func countUsable(p *pool) int {
	n := 0
	for _, a := range p.Accounts {
		if a.Usable {
			n++
		}
	}
	return n
}

// statusJSON is the object `status --json` prints; its schema is
// schema/cli-status.schema.json.
type statusJSON struct {
	Version  int                `json:"version"`
	Now      int64              `json:"now"`
	Store    string             `json:"store,omitempty"`
	Files    statusFiles        `json:"files"`
	Accounts []core.AccountView `json:"accounts"`
	Summary  statusSummary      `json:"summary"`
}

type statusFiles struct {
	Config       string `json:"config"`
	State        string `json:"state"`
	RoutingState string `json:"routingState"`
}

type statusSummary struct {
	Total          int               `json:"total"`
	Usable         int               `json:"usable"`
	CanServe       bool              `json:"canServe"`
	Mode           string            `json:"mode"`
	Next           *statusNext       `json:"next"`
	NextBackAt     int64             `json:"nextBackAt,omitempty"`
	StickySessions int               `json:"stickySessions"`
	StickyBy       map[string]int    `json:"stickyByAccount"`
	NeedsRelogin   []statusRelogin   `json:"needsRelogin"`
	Thresholds     []statusThreshold `json:"thresholds"`
}

type statusNext struct {
	AccountID string `json:"accountId"`
	Label     string `json:"label,omitempty"`
	Why       string `json:"why"`
}

type statusRelogin struct {
	AccountID string `json:"accountId"`
	Label     string `json:"label,omitempty"`
	Since     int64  `json:"since,omitempty"`
	Fix       string `json:"fix"`
}

type statusThreshold struct {
	AccountID string  `json:"accountId"`
	Window    string  `json:"window"`
	Kind      string  `json:"kind"`
	Percent   float64 `json:"percent"`
}

func buildStatusJSON(p *pool) statusJSON {
	out := statusJSON{
		Version:  1,
		Now:      p.Now.UnixMilli(),
		Store:    p.Store,
		Files:    statusFiles{Config: p.Paths.Config, State: p.Paths.State, RoutingState: p.Paths.RoutingState},
		Accounts: p.Views,
		Summary: statusSummary{
			Total: len(p.Accounts), Usable: countUsable(p), Mode: p.Mode,
			StickySessions: p.Sticky.Total, StickyBy: p.Sticky.ByAccount,
			NeedsRelogin: []statusRelogin{}, Thresholds: []statusThreshold{},
		},
	}
	if out.Accounts == nil {
		out.Accounts = []core.AccountView{}
	}
	out.Summary.CanServe = out.Summary.Usable > 0
	if a, why := nextAccount(p); a != nil {
		out.Summary.Next = &statusNext{AccountID: a.ID, Label: a.Label, Why: why}
	}
	if back := nextBack(p); !back.IsZero() {
		out.Summary.NextBackAt = back.UnixMilli()
	}
	for _, a := range p.Accounts {
		if a.NeedsRelogin {
			r := statusRelogin{AccountID: a.ID, Label: a.Label, Fix: fixFor(a)}
			if !a.ReloginSince.IsZero() {
				r.Since = a.ReloginSince.UnixMilli()
			}
			out.Summary.NeedsRelogin = append(out.Summary.NeedsRelogin, r)
		}
		for _, w := range a.Windows {
			for _, t := range w.Thresholds {
				out.Summary.Thresholds = append(out.Summary.Thresholds, statusThreshold{AccountID: a.ID, Window: w.Name, Kind: t.Kind, Percent: t.Percent})
			}
		}
	}
	return out
}

func writeStatusJSON(w io.Writer, p *pool) error {
	b, err := json.MarshalIndent(buildStatusJSON(p), "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// nextBack is the earliest moment an unusable account comes back, zero when
// none has a known end.
func nextBack(p *pool) time.Time {
	var t time.Time
	for _, a := range p.Accounts {
		if a.Usable || a.Until.IsZero() || !a.Until.After(p.Now) {
			continue
		}
		if t.IsZero() || a.Until.Before(t) {
			t = a.Until
		}
	}
	return t
}

// fixFor is the command that brings a needs-re-login account back.
func fixFor(a account) string {
	if a.Kind == "main" {
		return "log in to the host again (opencode: opencode auth login)"
	}
	return "acctpool login --replace " + a.ID
}
