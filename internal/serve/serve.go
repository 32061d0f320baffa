// Package serve is acctpool's JSON-RPC stdio server as a command: flags,
// wiring of core → plugins → rpc, signals and stdout protection. Both
// cmd/acctpool (its serve subcommand) and cmd/stdio-server (the
// server-only binary) run it, so the two cannot drift apart.
package serve

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
	"github.com/acctpool/acctpool/internal/filecheck"
	"github.com/acctpool/acctpool/internal/storeopen"
	"github.com/acctpool/acctpool/rpc"
)

// Command is the server under one name.
type Command struct {
	// Name is the command as a user types it, for help and errors:
	// "stdio-server" or "acctpool serve".
	Name string
	// AfterStdoutClaimed, when set, runs right after stdout has been
	// claimed for the protocol (a test prints strays there).
	AfterStdoutClaimed func()
}

// Run is the whole server: parse flags, wire core → plugins → rpc, and
// serve on stdin and stdout until the host goes away. It returns the exit
// code: 0 after shutdown + exit, stdin EOF or a signal; 1 on exit without
// shutdown or a failed start; 2 for bad flags.
func (c Command) Run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(c.Name, args)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout, c.Name)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "acctpool: %v\nTry: %s --help\n", err, c.Name)
		return 2
	}
	if cfg.version {
		fmt.Fprintf(stdout, "acctpool %s\n", Version())
		return 0
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel}))

	protocol, err := claimStdout(stdout)
	if err != nil {
		log.Error("claim stdout", "err", err)
		return 1
	}
	if c.AfterStdoutClaimed != nil {
		c.AfterStdoutClaimed()
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
	// Where the files are is the first thing to know when a fresh machine
	// misbehaves, so it is logged at info before anything can fail.
	log.Info("starting", "version", Version(), "config", cfg.paths.Config, "state", cfg.paths.State, "routingState", cfg.paths.RoutingState)
	if !cfg.store.Shared() {
		// What `acctpool check` would report about the files, said once.
		// On the postgres store the files are not the pool: nothing to say.
		filecheck.Log(ctx, cfg.paths, log)
	}
	opts := core.StoreOptions{Paths: cfg.paths, Logger: log}
	if cfg.manualClock {
		// A manual clock runs no background timers: observations are
		// written at once, so a test reads them from the files at once
		// (BEHAVIOUR.md §1.9).
		opts.WriteBehind = -1
	}
	store, closeStore, err := storeopen.Open(ctx, cfg.store, opts, true)
	if err != nil {
		return nil, nil, err
	}
	log.Info("store", "store", store.String())
	var clock core.Clock = core.SystemClock{}
	var manual *core.ManualClock
	if cfg.manualClock {
		manual = core.NewManualClock(time.Now())
		clock = manual
	}
	notes := new(rpc.Notifier)
	secrets := new(engineSecrets)
	plugins, classifier, closePlugins, err := loadPlugins(ctx, cfg, store, log, secrets.known)
	if err != nil {
		closeStore()
		return nil, nil, err
	}
	closePlugins = andThen(closePlugins, closeStore)
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
	secrets.set(eng)
	notes.Alerts = core.NewAlertWatch(eng, core.AlertWatchOptions{Logger: log}).Check
	srv, err := rpc.New(rpc.Options{
		Engine:      eng,
		Notifier:    notes,
		Plugins:     plugins,
		ManualClock: manual,
		Framing:     cfg.framing,
		Logger:      log,
		Version:     Version(),
	})
	if err != nil {
		closePlugins()
		return nil, nil, err
	}
	log.Debug("ready", "framing", cfg.framing, "plugins", len(cfg.plugins))
	return srv, func() {
		// Whatever ended Serve (EOF, exit, a signal, parent death), let
		// rotations in flight save their tokens first; Drain logs them.
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = eng.Drain(dctx)
		closePlugins()
	}, nil
}
