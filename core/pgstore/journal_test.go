package pgstore

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/internal/pgtest"
)

// machinePaths are the files of a machine whose store is the database:
// only the journals of its rotations are ever written there.
func machinePaths(dir string) core.Paths {
	return core.Paths{Config: filepath.Join(dir, core.ConfigFileName), State: filepath.Join(dir, core.StateFileName), RoutingState: filepath.Join(dir, "routing.json")}
}

// refreshOnce is the child of TestJournal_killBeforeCommit: one engine
// on the database, with its files in dir, refreshes account id once.
func refreshOnce(ctx context.Context, s *Store, dir, id, tokenURL string) {
	store, err := core.NewStore(core.StoreOptions{Paths: machinePaths(dir), Backend: s.Backend()})
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	eng, err := core.New(core.Options{Store: store, Endpoints: core.Endpoints{Token: tokenURL, Usage: "http://127.0.0.1:1/usage", Profile: "http://127.0.0.1:1/profile"}})
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	_, err = eng.RefreshAccount(ctx, id)
	fmt.Println("refreshed", err)
}

// TestJournal_killBeforeCommit: a process killed after the token endpoint
// answered and before its commit leaves the rotated pair in a journal on
// its own disk. A survivor posting the consumed token gets invalid_grant
// once and then judges the account (no second post); the killed machine's
// next start replays the journal into the database, which heals the
// account. A journal whose token was replaced meanwhile (a new login) is
// never applied.
func TestJournal_killBeforeCommit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		relogin bool // a new login replaces the consumed token before the restart
	}{
		{name: "replayed on restart"},
		{name: "stale after a new login", relogin: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			conn := pgtest.DB(t)
			keyLine := NewKeyLine()
			keys, err := ParseKeys([]byte(keyLine))
			require.NoError(t, err)
			ep := &oauthEndpoint{valid: map[string]bool{"rt-seed": true}}
			answered := make(chan struct{}, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ep.ServeHTTP(w, r)
				select {
				case answered <- struct{}{}:
				default:
				}
			}))
			defer srv.Close()
			survivor := newMachine(t, conn, keys, "survivor", srv.URL)
			_, err = survivor.eng.AddAccount(ctx, core.AccountSpec{ID: "fb", Type: record.AccountOAuth, Refresh: "rt-seed"})
			require.NoError(t, err)
			pg := openStore(t, conn, keys, "parent")

			// Hold the state's write lock, so the child's commit waits
			// after its journal is written.
			tx, err := pg.pool.BeginTx(ctx, pgx.TxOptions{})
			require.NoError(t, err)
			defer tx.Rollback(context.Background())
			_, err = tx.Exec(ctx, "SELECT name FROM acctpool_write_lock WHERE name = 'state' FOR UPDATE")
			require.NoError(t, err)

			dir := t.TempDir()
			args, _ := json.Marshal(map[string]string{"Mode": "refresh", "Conn": conn, "Key": keyLine, "Account": "fb", "Server": srv.URL, "Dir": dir})
			child := exec.Command(os.Args[0], "-test.run=^$")
			child.Env = append(os.Environ(), childEnv+"="+string(args))
			out := new(strings.Builder)
			child.Stdout, child.Stderr = out, out
			require.NoError(t, child.Start())
			select {
			case <-answered:
			case <-time.After(time.Minute):
				_ = child.Process.Kill()
				t.Fatalf("the child never called the token endpoint: %s", out)
			}
			// The child's commit waits for our lock: its journal is on disk.
			require.Eventually(t, func() bool {
				var waiting bool
				err := pg.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock')`,
					fmt.Sprintf("acctpool child pid %d", child.Process.Pid)).Scan(&waiting)
				return err == nil && waiting
			}, time.Minute, 2*time.Millisecond, "the child's save waits for the state lock")
			require.NoError(t, child.Process.Kill())
			_ = child.Wait()
			require.NoError(t, tx.Rollback(ctx))
			journals, err := filepath.Glob(filepath.Join(dir, "acctpool-store-journal.json.acctpool.*.tmp"))
			require.NoError(t, err)
			require.Len(t, journals, 1, "the killed child left its journal")
			fi, err := os.Stat(journals[0])
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
			issued := fmt.Sprintf("rt-%d", ep.n)
			// A file store on the same machine (acctpool check, a server
			// on the files) leaves the database's journal alone.
			_, err = core.NewStore(core.StoreOptions{Paths: machinePaths(dir)})
			require.NoError(t, err)
			assert.NoFileExists(t, filepath.Join(dir, core.StateFileName), "the journal is not adopted into local files")
			still, err := filepath.Glob(filepath.Join(dir, "acctpool-store-journal.json.acctpool.*.tmp"))
			require.NoError(t, err)
			require.Len(t, still, 1, "the journal waits for the database store")

			// A survivor posts the consumed token: invalid_grant, once.
			_, err = survivor.eng.RefreshAccount(ctx, "fb")
			require.ErrorIs(t, err, core.ErrInvalidGrant)
			_, err = survivor.eng.RefreshAccount(ctx, "fb")
			require.Error(t, err, "the account is judged: no second post")
			ep.mu.Lock()
			assert.Equal(t, 1, ep.reuse, "the consumed token was posted once")
			ep.mu.Unlock()
			if tc.relogin {
				_, err := pg.UpdateState(ctx, func(st *record.StateFile) error {
					st.Accounts["fb"].Refresh, st.Accounts["fb"].Access = "rt-login", "at-login"
					st.Accounts["fb"].LastRefreshError = nil
					return nil
				})
				require.NoError(t, err)
				ep.mu.Lock()
				ep.valid["rt-login"] = true
				ep.mu.Unlock()
			}

			// The killed machine starts again with its files.
			restarted, err := core.NewStore(core.StoreOptions{Paths: machinePaths(dir), Backend: openStore(t, conn, keys, "child").Backend()})
			require.NoError(t, err)
			snap, err := restarted.Load(ctx)
			require.NoError(t, err)
			a, ok := snap.Account("fb")
			require.True(t, ok)
			if tc.relogin {
				assert.Equal(t, secret.Secret("rt-login"), a.State.Refresh, "a journal bound to a replaced token is not applied")
			} else {
				assert.Equal(t, secret.Secret(issued), a.State.Refresh, "the journal's pair is in the database")
				assert.Nil(t, a.State.LastRefreshError, "the invalid_grant for the consumed token is healed")
			}
			left, err := filepath.Glob(filepath.Join(dir, "acctpool-store-journal.json.acctpool.*.tmp"))
			require.NoError(t, err)
			assert.Empty(t, left, "the journal is removed once replayed or found stale")

			_, err = survivor.eng.RefreshAccount(ctx, "fb")
			require.NoError(t, err, "the account refreshes again")
			ep.mu.Lock()
			defer ep.mu.Unlock()
			assert.Equal(t, 1, ep.reuse, "no other token was ever posted twice")
		})
	}
}
