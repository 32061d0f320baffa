// Package storecmd is `acctpool store`: moving a pool between the upstream
// files and the PostgreSQL store, and creating the store's key file.
//
//	acctpool store import  [--config F] [--state F] [--routing-state F] --store URL --store-key-file K
//	acctpool store export  [--config F] [--state F] [--routing-state F] --store URL --store-key-file K [--force]
//	acctpool store keygen  FILE
//
// import copies the files into the database (running it again with the
// same files changes nothing); export writes the database back to files
// (this host's main account with it), refusing to replace existing files
// without --force. --store and --store-key-file default to ACCTPOOL_STORE
// and ACCTPOOL_STORE_KEY_FILE; the file paths default as the server's.
package storecmd

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	json "github.com/goccy/go-json"

	"github.com/acctpool/acctpool/core"
	"github.com/acctpool/acctpool/core/pgstore"
	"github.com/acctpool/acctpool/core/record"
)

const usage = `Usage:
  acctpool store import [flags]   copy the upstream files into the postgres store
  acctpool store export [flags]   write the postgres store back to the files
  acctpool store keygen FILE      create a key file (mode 0600) for --store-key-file

Flags of import and export:
  --store URL             postgres://… (ACCTPOOL_STORE)
  --store-key-file PATH   the key file encrypting the tokens (ACCTPOOL_STORE_KEY_FILE)
  --config PATH           anthropic-auth.json (default as the server's)
  --state PATH            anthropic-auth-state.json (default beside the config)
  --routing-state PATH    the sticky routing file (default beside the config)
  --force                 export: replace files that exist
`

// Run is `acctpool store`; args are the arguments after "store". It
// returns the exit code: 0 done, 1 failed, 2 usage.
func Run(args []string, _ io.Reader, stdout, stderr io.Writer, env func(string) string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		w := stderr
		if len(args) > 0 {
			w = stdout
		}
		fmt.Fprint(w, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	switch args[0] {
	case "keygen":
		if len(args) != 2 {
			fmt.Fprint(stderr, "acctpool store keygen: want one argument, the key file to create\n")
			return 2
		}
		if err := pgstore.WriteKeyFile(args[1]); err != nil {
			fmt.Fprintf(stderr, "acctpool store keygen: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "wrote a new key to %s (mode 0600); pass it as --store-key-file on every machine sharing the store\n", args[1])
		return 0
	case "import", "export":
	default:
		fmt.Fprintf(stderr, "acctpool store: unknown subcommand %q (want import, export or keygen)\n", args[0])
		return 2
	}
	fs := flag.NewFlagSet("acctpool store "+args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o options
	fs.StringVar(&o.store, "store", env("ACCTPOOL_STORE"), "")
	fs.StringVar(&o.keyFile, "store-key-file", env("ACCTPOOL_STORE_KEY_FILE"), "")
	fs.StringVar(&o.paths.Config, "config", "", "")
	fs.StringVar(&o.paths.State, "state", "", "")
	fs.StringVar(&o.paths.RoutingState, "routing-state", "", "")
	fs.BoolVar(&o.force, "force", false, "")
	if err := fs.Parse(args[1:]); err != nil {
		fmt.Fprintf(stderr, "acctpool store %s: %v\n%s", args[0], err, usage)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "acctpool store %s: unexpected argument %q\n", args[0], fs.Arg(0))
		return 2
	}
	if !strings.HasPrefix(o.store, "postgres://") && !strings.HasPrefix(o.store, "postgresql://") {
		fmt.Fprintf(stderr, "acctpool store %s: --store (or ACCTPOOL_STORE) must be a postgres:// URL\n", args[0])
		return 2
	}
	paths, err := resolve(o.paths, env)
	if err != nil {
		fmt.Fprintf(stderr, "acctpool store %s: %v\n", args[0], err)
		return 1
	}
	o.paths = paths
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if args[0] == "import" {
		err = importFiles(ctx, o, stdout)
	} else {
		err = exportFiles(ctx, o, stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "acctpool store %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

type options struct {
	store, keyFile string
	paths          core.Paths
	force          bool
}

func resolve(p core.Paths, env func(string) string) (core.Paths, error) {
	home, err := os.UserHomeDir()
	if err != nil && p.Config == "" {
		return p, fmt.Errorf("find the config file: %w (set --config)", err)
	}
	def := core.ResolvePaths(core.HostOpenCode, env, home)
	if p.Config == "" {
		p.Config = def.Config
	} else if p.State == "" || p.RoutingState == "" {
		beside := core.ResolvePaths(core.HostOpenCode, func(k string) string {
			if k == "OPENCODE_ANTHROPIC_AUTH_FILE" {
				return p.Config
			}
			return ""
		}, home)
		def.State, def.RoutingState = beside.State, beside.RoutingState
	}
	if p.State == "" {
		p.State = def.State
	}
	if p.RoutingState == "" {
		p.RoutingState = def.RoutingState
	}
	return p, nil
}

func open(ctx context.Context, o options) (*pgstore.Store, error) {
	keys, err := pgstore.LoadKeyFile(o.keyFile)
	if err != nil {
		return nil, err
	}
	return pgstore.Open(ctx, pgstore.Options{ConnString: o.store, Keys: keys, NoFollow: true})
}

func importFiles(ctx context.Context, o options, stdout io.Writer) error {
	var cfg *record.ConfigFile
	var st *record.StateFile
	if err := readJSON(o.paths.Config, &cfg); err != nil {
		return err
	}
	if err := readJSON(o.paths.State, &st); err != nil {
		return err
	}
	var routing []byte
	var probe map[string]json.RawMessage
	if err := readJSON(o.paths.RoutingState, &probe); err != nil {
		return err
	}
	if probe != nil {
		routing, _ = os.ReadFile(o.paths.RoutingState)
	}
	if cfg == nil && st == nil {
		return fmt.Errorf("neither %s nor %s exists: nothing to import", o.paths.Config, o.paths.State)
	}
	pg, err := open(ctx, o)
	if err != nil {
		return err
	}
	defer pg.Close()
	if err := pg.Import(ctx, cfg, st, routing); err != nil {
		return err
	}
	n := 0
	if cfg != nil {
		n = len(cfg.Accounts)
	}
	fmt.Fprintf(stdout, "imported %d accounts from %s into %s\n", n, o.paths.Config, pg)
	return nil
}

func exportFiles(ctx context.Context, o options, stdout io.Writer) error {
	pg, err := open(ctx, o)
	if err != nil {
		return err
	}
	defer pg.Close()
	cfg, st, routing, err := pg.Export(ctx)
	if err != nil {
		return err
	}
	if cfg == nil && st == nil {
		return fmt.Errorf("%s holds no accounts yet: nothing to export", pg)
	}
	type out struct {
		path string
		data []byte
	}
	var files []out
	for _, f := range []struct {
		path string
		v    any
		has  bool
	}{{o.paths.Config, cfg, cfg != nil}, {o.paths.State, st, st != nil}} {
		if !f.has {
			continue
		}
		data, err := json.MarshalIndent(f.v, "", "  ")
		if err != nil {
			return err
		}
		files = append(files, out{f.path, append(data, '\n')})
	}
	if routing != nil {
		var buf bytes.Buffer
		if err := json.Indent(&buf, routing, "", "  "); err == nil {
			files = append(files, out{o.paths.RoutingState, append(buf.Bytes(), '\n')})
		}
	}
	if !o.force {
		for _, f := range files {
			if _, err := os.Stat(f.path); err == nil {
				return fmt.Errorf("%s exists; pass --force to replace it", f.path)
			}
		}
	}
	for _, f := range files {
		if err := writeAtomic(f.path, f.data); err != nil {
			return err
		}
	}
	n := 0
	if cfg != nil {
		n = len(cfg.Accounts)
	}
	fmt.Fprintf(stdout, "exported %d accounts from %s to %s\n", n, pg, o.paths.Config)
	return nil
}

// readJSON decodes path into v; a missing file leaves v nil. A file that is
// not JSON is an error naming the path, never quoting it.
func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s is not valid JSON; fix it first (acctpool check)", path)
	}
	return nil
}

// writeAtomic writes data to path through a synced temporary file in the
// same directory (mode 0600) and a rename.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".export-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
