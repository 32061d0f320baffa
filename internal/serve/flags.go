package serve

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/acctpool/acctpool/core"
	"github.com/acctpool/acctpool/internal/storeopen"
	"github.com/acctpool/acctpool/rpc"
)

// config is the parsed command line.
type config struct {
	host        core.Host
	paths       core.Paths
	framing     rpc.Framing
	plugins     []string
	tokenURL    string
	usageURL    string
	profileURL  string
	manualClock bool
	logLevel    slog.Level
	version     bool
	// store names the store: the files, or a postgres:// database
	// (--store, --store-key-file).
	store storeopen.Spec
}

// usageText is the help of the server; %s is the command as typed
// ("stdio-server" or "acctpool serve").
const usageText = `Usage: %s [flags]

acctpool's JSON-RPC 2.0 server. A host spawns it and speaks JSON-RPC on its
stdin and stdout; logs go to stderr. Every flag has an environment
equivalent, which the flag overrides.

Flags:
  --config PATH       anthropic-auth.json (ACCTPOOL_CONFIG; default as upstream:
                      $OPENCODE_ANTHROPIC_AUTH_FILE, else
                      ${OPENCODE_CONFIG_DIR:-${XDG_CONFIG_HOME:-~/.config}/opencode}/anthropic-auth.json)
  --state PATH        anthropic-auth-state.json (ACCTPOOL_STATE; else $OPENCODE_ANTHROPIC_AUTH_STATE_FILE; else beside the config)
  --host NAME         opencode (default) or pi: whose file locations to use (ACCTPOOL_HOST;
                      pi: $PI_ANTHROPIC_AUTH_FILE, else ${PI_AGENT_DIR:-~/.pi/agent}/anthropic-auth.json)
  --framing MODE      lsp (Content-Length, default) or ndjson (ACCTPOOL_FRAMING)
  --plugin PATH       plugin manifest; repeatable (ACCTPOOL_PLUGINS, a path list)
  --store STORE       files (default: the upstream files above) or postgres://…, a
                      PostgreSQL database shared by several machines (ACCTPOOL_STORE)
  --store-key-file PATH
                      key file encrypting the tokens in the postgres store; mode 0600,
                      required with it (ACCTPOOL_STORE_KEY_FILE)
  --store-host NAME   this machine's name in the postgres store, under which its main
                      account is kept (ACCTPOOL_STORE_HOST; default: the host name)
  --token-url URL     OAuth token endpoint (ACCTPOOL_TOKEN_URL)
  --usage-url URL     usage endpoint (ACCTPOOL_USAGE_URL)
  --profile-url URL   profile endpoint (ACCTPOOL_PROFILE_URL)
  --clock manual      test clock moved by test/clock/*; no background timers, observations
                      written at once (ACCTPOOL_CLOCK)
  --log-level LEVEL   debug, info, warn or error (ACCTPOOL_LOG_LEVEL; default info)
  --version           print the version and exit
  --help              print this help and exit
`

func printUsage(w io.Writer, name string) { fmt.Fprintf(w, usageText, name) }

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, string(os.PathListSeparator)) }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// parseFlags reads args over the ACCTPOOL_* environment.
func parseFlags(name string, args []string) (*config, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	env := os.Getenv
	var c config
	var framing, clock, level, host string
	var plugins stringList
	fs.StringVar(&c.paths.Config, "config", env("ACCTPOOL_CONFIG"), "")
	fs.StringVar(&c.paths.State, "state", env("ACCTPOOL_STATE"), "")
	fs.StringVar(&host, "host", env("ACCTPOOL_HOST"), "")
	fs.StringVar(&framing, "framing", envOr("ACCTPOOL_FRAMING", "lsp"), "")
	fs.Var(&plugins, "plugin", "")
	fs.StringVar(&c.tokenURL, "token-url", env("ACCTPOOL_TOKEN_URL"), "")
	fs.StringVar(&c.usageURL, "usage-url", env("ACCTPOOL_USAGE_URL"), "")
	fs.StringVar(&c.profileURL, "profile-url", env("ACCTPOOL_PROFILE_URL"), "")
	fs.StringVar(&clock, "clock", env("ACCTPOOL_CLOCK"), "")
	fs.StringVar(&level, "log-level", envOr("ACCTPOOL_LOG_LEVEL", "info"), "")
	var store, storeKeyFile, storeHost string
	fs.StringVar(&store, "store", env("ACCTPOOL_STORE"), "")
	fs.StringVar(&storeKeyFile, "store-key-file", env("ACCTPOOL_STORE_KEY_FILE"), "")
	fs.StringVar(&storeHost, "store-host", env("ACCTPOOL_STORE_HOST"), "")
	fs.BoolVar(&c.version, "version", false, "")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if c.host, err = core.ParseHost(host); err != nil {
		return nil, fmt.Errorf("--host: %w", err)
	}
	if c.framing, err = rpc.ParseFraming(framing); err != nil {
		return nil, fmt.Errorf("--framing: %w", err)
	}
	switch clock {
	case "", "system":
	case "manual":
		c.manualClock = true
	default:
		return nil, fmt.Errorf("--clock: unknown clock %q (want manual)", clock)
	}
	if err := c.logLevel.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: unknown level %q (want debug, info, warn or error)", level)
	}
	if c.store, err = storeopen.Parse(store, storeKeyFile, storeHost); err != nil {
		return nil, err
	}
	c.plugins = plugins
	if len(c.plugins) == 0 && env("ACCTPOOL_PLUGINS") != "" {
		c.plugins = filepath.SplitList(env("ACCTPOOL_PLUGINS"))
	}
	if c.paths, err = resolvePaths(c.host, c.paths); err != nil {
		return nil, err
	}
	return &c, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// resolvePaths fills in the paths not given by flags with the upstream
// rules of host (core.ResolvePaths): flags win over the environment, and a
// --config without --state gets the state file upstream would use beside it.
func resolvePaths(host core.Host, p core.Paths) (core.Paths, error) {
	home := ""
	needHome := p.Config == ""
	for _, k := range core.PathVariables(host) {
		if strings.TrimSpace(os.Getenv(k)) != "" {
			needHome = false
		}
	}
	if needHome {
		h, err := os.UserHomeDir()
		if err != nil {
			return p, fmt.Errorf("find the config file: %w (set --config)", err)
		}
		home = h
	}
	flag := map[string]string{
		"OPENCODE_ANTHROPIC_AUTH_FILE":               p.Config,
		"OPENCODE_ANTHROPIC_AUTH_STATE_FILE":         p.State,
		"OPENCODE_ANTHROPIC_AUTH_ROUTING_STATE_FILE": p.RoutingState,
	}
	if host == core.HostPi {
		flag["PI_ANTHROPIC_AUTH_FILE"], flag["PI_ANTHROPIC_AUTH_ROUTING_STATE_FILE"] = p.Config, p.RoutingState
	}
	return core.ResolvePaths(host, func(k string) string {
		if v := flag[k]; v != "" {
			return v
		}
		return os.Getenv(k)
	}, home), nil
}

// stamp is the release version, set by scripts/release with
// -ldflags "-X github.com/acctpool/acctpool/internal/serve.stamp=v1.2.3".
var stamp string

// Version is the version this binary reports (--version, the initialize
// result): the release stamp when scripts/release built it, else the module
// version from the build info ("(devel)" for a local build, "v1.2.3" for
// go install ...@v1.2.3), with the VCS revision when it was recorded.
func Version() string {
	if stamp != "" {
		return stamp
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v
}
