// Command pgshim runs an acctpool server on the PostgreSQL store in place
// of the files, for the conformance suite, whose runner hands the server
// upstream files and reads them back. pgshim creates a fresh database,
// imports the given files, starts the server with --store, and after each
// message the server sends (and at exit) exports the database back to the
// files, so the runner sees what the server stored.
//
// Environment: PGSHIM_SERVER (the server binary), PGSHIM_ADMIN (a
// connection string to the cluster's postgres database) and
// PGSHIM_KEY_FILE (the store key file). Test use only.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	json "github.com/goccy/go-json"
	"github.com/jackc/pgx/v5"

	"github.com/acctpool/acctpool/core/pgstore"
	"github.com/acctpool/acctpool/core/record"
)

func main() { os.Exit(run()) }

func run() int {
	server := os.Getenv("PGSHIM_SERVER")
	args := os.Args[1:]
	for _, a := range args {
		if a == "--version" {
			cmd := exec.Command(server, args...)
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			if err := cmd.Run(); err != nil {
				return 1
			}
			return 0
		}
	}
	ctx := context.Background()
	configPath, statePath := flagValue(args, "--config"), flagValue(args, "--state")
	conn, err := createDatabase(ctx, os.Getenv("PGSHIM_ADMIN"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgshim:", err)
		return 1
	}
	keys, err := pgstore.LoadKeyFile(os.Getenv("PGSHIM_KEY_FILE"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgshim:", err)
		return 1
	}
	pg, err := pgstore.Open(ctx, pgstore.Options{ConnString: conn, Keys: keys, NoFollow: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgshim:", err)
		return 1
	}
	defer pg.Close()
	var cfg *record.ConfigFile
	var st *record.StateFile
	if err := readJSON(configPath, &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "pgshim: import:", err)
	}
	if err := readJSON(statePath, &st); err != nil {
		fmt.Fprintln(os.Stderr, "pgshim: import:", err)
	}
	if err := pg.Import(ctx, cfg, st, nil); err != nil {
		fmt.Fprintln(os.Stderr, "pgshim: import:", err)
	}
	export := func() {
		cfg, st, _, err := pg.Export(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, "pgshim: export:", err)
			return
		}
		if cfg != nil && cfgWasGiven(configPath, cfg) {
			writeJSON(configPath, cfg)
		}
		if st != nil {
			writeJSON(statePath, st)
		}
	}
	export()

	cmd := exec.Command(server, append(args, "--store", conn, "--store-key-file", os.Getenv("PGSHIM_KEY_FILE"))...)
	cmd.Stdin, cmd.Stderr = os.Stdin, os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 1
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "pgshim:", err)
		return 1
	}
	r := bufio.NewReader(out)
	for {
		frame, err := readFrame(r)
		if len(frame) > 0 {
			export()
			_, _ = os.Stdout.Write(frame)
		}
		if err != nil {
			break
		}
	}
	err = cmd.Wait()
	export()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return 1
	}
	return 0
}

// cfgWasGiven reports whether the config is worth writing: the file
// exists, or the stored config lists accounts (an empty synthesized config
// is not written where none was given).
func cfgWasGiven(path string, cfg *record.ConfigFile) bool {
	if _, err := os.Stat(path); err == nil {
		return true
	}
	return len(cfg.Accounts) > 0
}

// readFrame reads one Content-Length framed message, headers included.
func readFrame(r *bufio.Reader) ([]byte, error) {
	var buf bytes.Buffer
	n := -1
	for {
		line, err := r.ReadString('\n')
		buf.WriteString(line)
		if err != nil {
			return buf.Bytes(), err
		}
		t := strings.TrimSpace(line)
		if t == "" {
			break
		}
		if k, v, ok := strings.Cut(t, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "Content-Length") {
			n, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if n < 0 {
		return buf.Bytes(), nil
	}
	body := make([]byte, n)
	_, err := io.ReadFull(r, body)
	buf.Write(body)
	return buf.Bytes(), err
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) || path == "" {
		return nil
	}
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// writeJSON writes v as the file store does (2-space indent, newline),
// atomically, when it differs from the file.
func writeJSON(path string, v any) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return
	}
	data = append(data, '\n')
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".pgshim")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return
	}
	_ = os.Rename(tmp, path)
}

func createDatabase(ctx context.Context, admin string) (string, error) {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "shim_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", err
	}
	u, err := url.Parse(admin)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}
