// Package pgtest starts a throwaway PostgreSQL cluster for tests: initdb
// and pg_ctl in a temporary directory, listening on a Unix socket only,
// run as an unprivileged user when the tests run as root (PostgreSQL
// refuses to run as root). Each test gets a database of its own.
//
// The binaries are looked up on PATH, in /usr/local/bin and in
// /usr/lib/postgresql/<version>/bin (Debian's place). When they are absent,
// [DB] skips the test with a message that says how to install them.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"

	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoBinaries means initdb or pg_ctl could not be found.
var ErrNoBinaries = errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH, in /usr/local/bin or in /usr/lib/postgresql/*/bin; install them (Debian: apt-get install postgresql) to run the PostgreSQL store tests")

// unprivilegedUser is created when the tests run as root and no "nobody"
// account exists.
const unprivilegedUser = "acctpool-pg"

// Cluster is a running throwaway PostgreSQL server.
type Cluster struct {
	dir    string // owns data/, the socket and the log
	pgctl  string
	cred   *syscall.Credential // nil: run as ourselves
	port   int
	dbSeq  atomic.Int64
	stopMu sync.Mutex
	done   bool
}

// Find returns the paths of initdb and pg_ctl, or ErrNoBinaries.
func Find() (initdb, pgctl string, err error) {
	dirs := []string{}
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	dirs = append(dirs, "/usr/local/bin")
	versions, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(versions, func(i, j int) bool { return pgVersion(versions[i]) > pgVersion(versions[j]) })
	dirs = append(dirs, versions...)
	for _, d := range dirs {
		i, c := filepath.Join(d, "initdb"), filepath.Join(d, "pg_ctl")
		if isExecutable(i) && isExecutable(c) {
			return i, c, nil
		}
	}
	return "", "", ErrNoBinaries
}

func pgVersion(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// Tool returns the path of another PostgreSQL program (pg_dump, psql)
// beside initdb, symbolic links resolved.
func Tool(name string) (string, error) {
	initdb, _, err := Find()
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(initdb)
	if err != nil {
		return "", err
	}
	p := filepath.Join(filepath.Dir(real), name)
	if !isExecutable(p) {
		return "", fmt.Errorf("%s not found beside %s", name, real)
	}
	return p, nil
}

// Start initializes and starts a cluster. Stop it with [Cluster.Stop].
func Start() (*Cluster, error) {
	initdb, pgctl, err := Find()
	if err != nil {
		return nil, err
	}
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	// Short path: the socket path must fit in 107 bytes.
	dir, err := os.MkdirTemp("", "acpg")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, pgctl: pgctl, cred: cred, port: 5432}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("hand the cluster directory to uid %d: %w", cred.Uid, err)
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := c.run(initdb, "-D", data, "-U", "acctpool", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	if err := c.start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start() error {
	opts := fmt.Sprintf("-k %s -c listen_addresses= -p %d -F -c max_connections=200 -c shared_buffers=16MB", c.dir, c.port)
	if out, err := c.run(c.pgctl, "start", "-w", "-t", "120", "-D", filepath.Join(c.dir, "data"), "-l", filepath.Join(c.dir, "log"), "-o", opts); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		return fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, log)
	}
	return nil
}

// credential is who runs the server: nil (ourselves) unless we are root.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		u, err = user.Lookup(unprivilegedUser)
	}
	if err != nil {
		if out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", unprivilegedUser).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("tests run as root and PostgreSQL refuses root; no user nobody, and useradd %s failed: %w: %s", unprivilegedUser, err, out)
		}
		if u, err = user.Lookup(unprivilegedUser); err != nil {
			return nil, err
		}
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (c *Cluster) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = c.dir
	cmd.Env = []string{"LC_ALL=C", "PATH=" + os.Getenv("PATH")}
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// ConnString returns a postgres:// URL for database db on the cluster.
func (c *Cluster) ConnString(db string) string {
	q := url.Values{"host": {c.dir}, "port": {strconv.Itoa(c.port)}, "user": {"acctpool"}, "sslmode": {"disable"}}
	return "postgres:///" + url.PathEscape(db) + "?" + q.Encode()
}

// CreateDatabase creates a fresh database and returns its connection
// string.
func (c *Cluster) CreateDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("t%d_%d", os.Getpid(), c.dbSeq.Add(1))
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", err
	}
	return c.ConnString(name), nil
}

// Pause stops the server at once (as a crash would), keeping its data;
// [Cluster.Resume] starts it again.
func (c *Cluster) Pause() error {
	out, err := c.run(c.pgctl, "stop", "-m", "immediate", "-w", "-D", filepath.Join(c.dir, "data"))
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// Resume starts a paused server again.
func (c *Cluster) Resume() error { return c.start() }

// Stop stops the server at once and removes its directory.
func (c *Cluster) Stop() error {
	c.stopMu.Lock()
	defer c.stopMu.Unlock()
	if c.done {
		return nil
	}
	c.done = true
	out, err := c.run(c.pgctl, "stop", "-m", "immediate", "-w", "-D", filepath.Join(c.dir, "data"))
	os.RemoveAll(c.dir)
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

var (
	shared     *Cluster
	sharedErr  error
	sharedOnce sync.Once
)

// DB returns the connection string of a new database on the cluster
// shared by the test binary, starting it on first use. It skips the test
// when the binaries are absent and fails it when the cluster cannot
// start. Call [Main] from TestMain so the cluster is stopped at the end.
func DB(t testing.TB) string {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = Start() })
	if errors.Is(sharedErr, ErrNoBinaries) {
		t.Skip("skipped: " + sharedErr.Error())
	}
	if sharedErr != nil {
		t.Fatalf("start a throwaway PostgreSQL cluster: %v", sharedErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs, err := shared.CreateDatabase(ctx)
	if err != nil {
		t.Fatalf("create a test database: %v", err)
	}
	return cs
}

// AdminConn returns the connection string of the shared cluster's
// postgres database (to create databases), starting the cluster on first
// use; it skips the test when the binaries are absent.
func AdminConn(t testing.TB) string {
	t.Helper()
	DB(t)
	return shared.ConnString("postgres")
}

// Main runs the tests and stops the shared cluster, if one was started.
func Main(m *testing.M) {
	code := m.Run()
	if shared != nil {
		if err := shared.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	os.Exit(code)
}
