package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/acctpool/acctpool/core"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/internal/storeopen"
)

// Exit statuses shared by the commands.
const (
	exitOK    = 0
	exitNone  = 1 // status: no account can serve; check: errors found
	exitUsage = 2 // bad arguments, unreadable or corrupt files
)

// common are the flags every command that opens the files takes.
type common struct {
	config, state, routing string
	tokenURL, usageURL     string
	authorizeURL           string
	redirectURL            string
	now                    string
	verbose                bool
	// store, storeKeyFile and storeHost name the store: the files
	// (default) or a postgres:// database with the key file of its tokens
	// and this machine's name in it.
	store, storeKeyFile, storeHost string
}

// register adds the common flags to fs.
func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.config, "config", "", "path of anthropic-auth.json (default: as the server resolves it)")
	fs.StringVar(&c.state, "state", "", "path of anthropic-auth-state.json")
	fs.StringVar(&c.routing, "routing-state", "", "path of the routing-state file")
	fs.StringVar(&c.tokenURL, "token-url", "", "OAuth token endpoint (default Anthropic's)")
	fs.StringVar(&c.usageURL, "usage-url", "", "usage endpoint (default Anthropic's)")
	fs.StringVar(&c.authorizeURL, "authorize-url", "", "OAuth authorize page (default Anthropic's)")
	fs.StringVar(&c.redirectURL, "redirect-url", "", "OAuth redirect URI (default Anthropic's)")
	fs.StringVar(&c.now, "now", "", "judge as of this time (RFC 3339 or epoch ms) instead of the clock, for reproducible output")
	fs.BoolVar(&c.verbose, "verbose", false, "log diagnostics to stderr")
	fs.StringVar(&c.store, "store", "", "files (default) or postgres://…, the database a shared pool lives in (default $ACCTPOOL_STORE)")
	fs.StringVar(&c.storeKeyFile, "store-key-file", "", "key file encrypting the tokens in the postgres store (default $ACCTPOOL_STORE_KEY_FILE)")
	fs.StringVar(&c.storeHost, "store-host", "", "this machine's name in the postgres store, under which its main account is kept (default $ACCTPOOL_STORE_HOST, else the host name)")
}

// storeSpec is the store the flags, else ACCTPOOL_STORE,
// ACCTPOOL_STORE_KEY_FILE and ACCTPOOL_STORE_HOST, name (as for the
// server).
func (c *common) storeSpec(env func(string) string) (storeopen.Spec, error) {
	store, keyFile, host := c.store, c.storeKeyFile, c.storeHost
	if host == "" {
		host = env("ACCTPOOL_STORE_HOST")
	}
	if store == "" {
		store = env("ACCTPOOL_STORE")
	}
	if keyFile == "" {
		keyFile = env("ACCTPOOL_STORE_KEY_FILE")
	}
	spec, err := storeopen.Parse(store, keyFile, host)
	if err != nil {
		return spec, usageErr("%s", err.Error())
	}
	return spec, nil
}

// paths resolves the files: flags win over the environment, which wins over
// the defaults (BEHAVIOUR.md §1.1).
func (c *common) paths(env func(string) string) core.Paths {
	home := env("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	// ACCTPOOL_HOST picks whose file locations to use, as for the server;
	// a bad value falls back to OpenCode's (the server reports it).
	host, _ := core.ParseHost(env("ACCTPOOL_HOST"))
	p := core.ResolvePaths(host, env, home)
	// The server's ACCTPOOL_CONFIG and ACCTPOOL_STATE count here too, so a
	// command reads the files the server it sits beside uses; flags win.
	config, state := c.config, c.state
	if config == "" {
		config = strings.TrimSpace(env("ACCTPOOL_CONFIG"))
	}
	if state == "" {
		state = strings.TrimSpace(env("ACCTPOOL_STATE"))
	}
	if config != "" {
		// Derive state and routing state from the new config path, unless
		// the environment or a flag names them.
		q := core.ResolvePaths(host, func(k string) string {
			if k == "OPENCODE_ANTHROPIC_AUTH_FILE" || k == "PI_ANTHROPIC_AUTH_FILE" {
				return config
			}
			return env(k)
		}, home)
		p = q
	}
	if state != "" {
		p.State = state
	}
	if c.routing != "" {
		p.RoutingState = c.routing
	}
	return p
}

// clock returns the clock the command judges time on: a fixed one under
// --now, else the system clock.
func (c *common) clock() (core.Clock, error) {
	if c.now == "" {
		return core.SystemClock{}, nil
	}
	t, err := parseNow(c.now)
	if err != nil {
		return nil, err
	}
	return core.NewManualClock(t), nil
}

func parseNow(s string) (time.Time, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, usageErr("--now %q: want RFC 3339 (2026-01-01T10:00:00Z) or epoch milliseconds", s)
	}
	return t, nil
}

// engine opens the store (the files, or the postgres store the flags or
// the environment name) with the command's clock and endpoints; close
// releases the store.
func (c *common) engine(env func(string) string, stderr io.Writer) (eng *core.Engine, clock core.Clock, close func(), err error) {
	if clock, err = c.clock(); err != nil {
		return nil, nil, nil, err
	}
	spec, err := c.storeSpec(env)
	if err != nil {
		return nil, nil, nil, err
	}
	log := discardLogger()
	if c.verbose {
		log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	eng, close, err = openEngine(engineOptions{
		paths: c.paths(env),
		store: spec,
		clock: clock,
		endpoints: core.Endpoints{
			Token: c.tokenURL, Usage: c.usageURL, Authorize: c.authorizeURL, Redirect: c.redirectURL,
		},
		logger: log,
	})
	return eng, clock, close, err
}

// newFlags returns a flag set that reports to stderr and does not exit.
func newFlags(name string, stderr io.Writer, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: acctpool %s\n\nflags:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; it returns the exit status to use when parsing
// ended the command (help or a bad flag) and ok=false.
func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK, false
	}
	if err != nil {
		return exitUsage, false
	}
	return 0, true
}

// fail prints an error for the user and returns the exit status for it:
// 2 for files and arguments, 1 otherwise.
func fail(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "acctpool %s: %s\n", cmd, secret.Redact(err.Error()))
	if hint := hintFor(err); hint != "" {
		fmt.Fprintf(stderr, "  %s\n", hint)
	}
	if isFileError(err) || errors.Is(err, core.ErrConfigInvalid) || errors.Is(err, errUsage) {
		return exitUsage
	}
	return exitNone
}

// errUsage marks a wrong command line.
var errUsage = errors.New("usage")

func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

// hintFor says what to do about well-known errors.
func hintFor(err error) string {
	switch {
	case errors.Is(err, core.ErrCorruptFile):
		return "run `acctpool check` to see the line and field; the file is left untouched (removing it deletes the tokens in it)"
	case errors.Is(err, core.ErrConfigInvalid) && !errors.Is(err, errUsage):
		return "run `acctpool check` to see every problem in the files, with the value found and the one expected"
	case errors.Is(err, core.ErrLockTimeout):
		return "another process holds the file lock; try again, or remove a lock file left by a crashed process"
	case errors.Is(err, core.ErrNoAccount):
		return "run `acctpool accounts list` to see ids and labels"
	case errors.Is(err, core.ErrLoginState):
		return "the login expired or the code belongs to another login; run `acctpool login` again"
	}
	return ""
}

// trimLine reads one line from r, without its line ending.
func trimLine(s string) string { return strings.TrimRight(s, "\r\n") }
