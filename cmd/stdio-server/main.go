// Command stdio-server is acctpool's JSON-RPC 2.0 server on stdin and
// stdout. Hosts spawn it as a subprocess; see `stdio-server --help`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/acctpool/acctpool/core"
	"github.com/acctpool/acctpool/rpc"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// testHookStdoutClaimed, when set by a test, runs right after stdout has
// been claimed for the protocol; the test prints strays there.
var testHookStdoutClaimed func()

// run is the whole program: parse flags, wire core → plugins → rpc, and
// serve until the host goes away. It returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "acctpool: %v\nTry: stdio-server --help\n", err)
		return 2
	}
	if cfg.version {
		fmt.Fprintf(stdout, "acctpool %s\n", version())
		return 0
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel}))

	protocol, err := claimStdout(stdout)
	if err != nil {
		log.Error("claim stdout", "err", err)
		return 1
	}
	if testHookStdoutClaimed != nil {
		testHookStdoutClaimed()
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	srv, closeAll, err := wire(ctx, cfg, log)
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	defer closeAll()
	code := srv.Serve(ctx, stdin, protocol)
	log.Debug("exiting", "code", code)
	return code
}

// wire builds the store, the engine, the plugin host and the server.
func wire(ctx context.Context, cfg *config, log *slog.Logger) (*rpc.Server, func(), error) {
	store, err := core.NewStore(core.StoreOptions{Paths: cfg.paths, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	var clock core.Clock = core.SystemClock{}
	var manual *core.ManualClock
	if cfg.manualClock {
		manual = core.NewManualClock(time.Now())
		clock = manual
	}
	notes := new(rpc.Notifier)
	plugins, classifier, closePlugins, err := loadPlugins(ctx, cfg, store, log)
	if err != nil {
		return nil, nil, err
	}
	eng, err := core.New(core.Options{
		Store:      store,
		Clock:      clock,
		Endpoints:  core.Endpoints{Token: cfg.tokenURL, Usage: cfg.usageURL, Profile: cfg.profileURL},
		Classifier: classifier,
		Logger:     log,
		OnEvent:    notes.Event,
	})
	if err != nil {
		closePlugins()
		return nil, nil, err
	}
	notes.Alerts = core.NewAlertWatch(eng, core.AlertWatchOptions{Logger: log}).Check
	srv, err := rpc.New(rpc.Options{
		Engine:      eng,
		Notifier:    notes,
		Plugins:     plugins,
		ManualClock: manual,
		Framing:     cfg.framing,
		Logger:      log,
		Version:     version(),
	})
	if err != nil {
		closePlugins()
		return nil, nil, err
	}
	log.Debug("ready", "config", cfg.paths.Config, "state", cfg.paths.State, "framing", cfg.framing, "plugins", len(cfg.plugins))
	return srv, closePlugins, nil
}
