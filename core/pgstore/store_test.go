package pgstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
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

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		runChild()
		return
	}
	pgtest.Main(m)
}

const (
	plantedRefresh = "sk-ant-ort01-PLANTEDrefreshTOKEN0123456789abcdef"
	plantedAccess  = "sk-ant-oat01-PLANTEDaccessTOKEN0123456789abcdef"
	plantedAPIKey  = "sk-ant-api03-PLANTEDapiKEY0123456789abcdef"
)

// testKeys returns a fixed key set.
func testKeys(t testing.TB) *Keys {
	t.Helper()
	ks, err := ParseKeys([]byte(NewKeyLine()))
	require.NoError(t, err)
	return ks
}

func openStore(t testing.TB, conn string, keys *Keys, host string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Open(ctx, Options{ConnString: conn, Keys: keys, Host: host})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// seed adds an OAuth and an API-key account with planted tokens and a
// settings section, through fn-style edits that both stores accept.
func seedConfig(cfg *record.ConfigFile, st *record.StateFile) error {
	cfg.Accounts = append(cfg.Accounts,
		record.AccountConfig{ID: "acct-1", Label: "work", Type: record.AccountOAuth, AddedAt: 1700000000000},
		record.AccountConfig{ID: "key-1", Label: "gateway", Type: record.AccountAPI, BaseURL: "https://gw.example.test"},
	)
	cfg.Extra = record.Extra{"routing": json.RawMessage(`{"strategy":"sticky-balanced"}`), "futureKey": json.RawMessage(`{"n":[1,2.5,"x"]}`)}
	cfg.MainAccountID = "acct-1"
	st.Accounts["acct-1"] = &record.AccountState{Access: plantedAccess, Refresh: plantedRefresh, Expires: 1700000360000,
		Extra: record.Extra{"newerField": json.RawMessage(`true`)}}
	st.Accounts["key-1"] = &record.AccountState{APIKey: plantedAPIKey}
	return nil
}

func seedState(st *record.StateFile) error {
	a := st.Accounts["acct-1"]
	a.LastUsed = 1700000100000
	a.Quota = &record.QuotaSnapshot{FiveHour: &record.QuotaWindow{UsedPercent: 12.5, RemainingPercent: 87.5, CheckedAt: 1700000100000}, Source: record.QuotaSourcePoll}
	st.Main = &record.MainState{QuotaToken: "0123456789abcdef"}
	st.Extra = record.Extra{"stateExtra": json.RawMessage(`"kept"`)}
	return nil
}

func fileStore(t testing.TB) *core.Store {
	dir := t.TempDir()
	s, err := core.NewStore(core.StoreOptions{Paths: core.Paths{Config: filepath.Join(dir, core.ConfigFileName), State: filepath.Join(dir, core.StateFileName)}})
	require.NoError(t, err)
	return s
}

// snapshotJSON is what a snapshot holds, in the files' encoding.
func snapshotJSON(t testing.TB, snap *core.Snapshot) (string, string) {
	c, err := json.Marshal(snap.Config)
	require.NoError(t, err)
	s, err := json.Marshal(snap.State)
	require.NoError(t, err)
	return string(c), string(s)
}

// TestStore_sameAsFileStore runs the same edits on the file store and the
// postgres store and compares what Load returns after each.
func TestStore_sameAsFileStore(t *testing.T) {
	ctx := ctxT(t)
	pg := openStore(t, pgtest.DB(t), testKeys(t), "host-a")
	fs := fileStore(t)

	steps := []struct {
		name string
		run  func(ctx context.Context, s interface {
			UpdateState(context.Context, func(*record.StateFile) error) (*core.Snapshot, error)
			UpdateConfig(context.Context, func(*record.ConfigFile, *record.StateFile) error) (*core.Snapshot, error)
		}) (*core.Snapshot, error)
	}{
		{"add accounts", func(ctx context.Context, s interface {
			UpdateState(context.Context, func(*record.StateFile) error) (*core.Snapshot, error)
			UpdateConfig(context.Context, func(*record.ConfigFile, *record.StateFile) error) (*core.Snapshot, error)
		}) (*core.Snapshot, error) {
			return s.UpdateConfig(ctx, seedConfig)
		}},
		{"state write", func(ctx context.Context, s interface {
			UpdateState(context.Context, func(*record.StateFile) error) (*core.Snapshot, error)
			UpdateConfig(context.Context, func(*record.ConfigFile, *record.StateFile) error) (*core.Snapshot, error)
		}) (*core.Snapshot, error) {
			return s.UpdateState(ctx, seedState)
		}},
		{"state of an unlisted account is pruned", func(ctx context.Context, s interface {
			UpdateState(context.Context, func(*record.StateFile) error) (*core.Snapshot, error)
			UpdateConfig(context.Context, func(*record.ConfigFile, *record.StateFile) error) (*core.Snapshot, error)
		}) (*core.Snapshot, error) {
			return s.UpdateState(ctx, func(st *record.StateFile) error {
				st.Accounts["ghost"] = &record.AccountState{Refresh: "x"}
				return nil
			})
		}},
		{"reorder and remove", func(ctx context.Context, s interface {
			UpdateState(context.Context, func(*record.StateFile) error) (*core.Snapshot, error)
			UpdateConfig(context.Context, func(*record.ConfigFile, *record.StateFile) error) (*core.Snapshot, error)
		}) (*core.Snapshot, error) {
			return s.UpdateConfig(ctx, func(cfg *record.ConfigFile, st *record.StateFile) error {
				cfg.Accounts = append(cfg.Accounts, record.AccountConfig{ID: "acct-2", Type: record.AccountOAuth})
				st.Accounts["acct-2"] = &record.AccountState{Refresh: "r2"}
				cfg.Accounts = []record.AccountConfig{cfg.Accounts[2], cfg.Accounts[0]}
				return nil
			})
		}},
	}
	for _, step := range steps {
		fsSnap, err := step.run(ctx, fs)
		require.NoError(t, err, step.name)
		pgSnap, err := step.run(ctx, pg)
		require.NoError(t, err, step.name)
		wantC, wantS := snapshotJSON(t, fsSnap)
		gotC, gotS := snapshotJSON(t, pgSnap)
		assert.JSONEq(t, wantC, gotC, "%s: config returned by the write", step.name)
		assert.JSONEq(t, wantS, gotS, "%s: state returned by the write", step.name)

		fsLoad, err := fs.Load(ctx)
		require.NoError(t, err)
		pgLoad, err := pg.Load(ctx)
		require.NoError(t, err)
		wantC, wantS = snapshotJSON(t, fsLoad)
		gotC, gotS = snapshotJSON(t, pgLoad)
		assert.JSONEq(t, wantC, gotC, "%s: config after Load", step.name)
		assert.JSONEq(t, wantS, gotS, "%s: state after Load", step.name)
		assert.Equal(t, len(fsLoad.Accounts), len(pgLoad.Accounts), step.name)
	}
}

func TestStore_emptyDatabase(t *testing.T) {
	pg := openStore(t, pgtest.DB(t), testKeys(t), "h")
	snap, err := pg.Load(ctxT(t))
	require.NoError(t, err)
	assert.Nil(t, snap.Config)
	assert.Nil(t, snap.State)
	assert.Empty(t, snap.Accounts)
}

// TestStore_mainIsPerHost: each host keeps its own main account id and
// main section; fallbacks are shared.
func TestStore_mainIsPerHost(t *testing.T) {
	ctx := ctxT(t)
	conn := pgtest.DB(t)
	keys := testKeys(t)
	a := openStore(t, conn, keys, "laptop")
	b := openStore(t, conn, keys, "desktop")
	_, err := a.UpdateConfig(ctx, seedConfig)
	require.NoError(t, err)
	_, err = a.UpdateState(ctx, seedState)
	require.NoError(t, err)

	snap, err := b.Load(ctx)
	require.NoError(t, err)
	assert.Len(t, snap.Accounts, 2, "fallbacks are shared")
	assert.Empty(t, snap.Config.MainAccountID, "another host's main account is not ours")
	assert.Empty(t, snap.Main.QuotaToken, "another host's main section is not ours")

	snap, err = a.Load(ctx)
	require.NoError(t, err)
	assert.Equal(t, "acct-1", snap.Config.MainAccountID)
	assert.Equal(t, "0123456789abcdef", snap.Main.QuotaToken)
}

func TestOpen_schemaVersions(t *testing.T) {
	ctx := ctxT(t)
	conn := pgtest.DB(t)
	keys := testKeys(t)
	s := openStore(t, conn, keys, "h")
	_, err := s.UpdateConfig(ctx, seedConfig)
	require.NoError(t, err)

	// A second open (another server starting) finds the schema current and
	// the data intact.
	again := openStore(t, conn, keys, "h")
	snap, err := again.Load(ctx)
	require.NoError(t, err)
	assert.Len(t, snap.Accounts, 2)

	_, err = s.pool.Exec(ctx, "UPDATE acctpool_schema SET version = $1", SchemaVersion+1)
	require.NoError(t, err)
	_, err = Open(ctx, Options{ConnString: conn, Keys: keys, Host: "h"})
	require.ErrorIs(t, err, ErrSchemaTooNew)
	assert.Contains(t, err.Error(), fmt.Sprintf("schema version %d", SchemaVersion+1))
	assert.Contains(t, err.Error(), "upgrade acctpool")
}

// TestStore_concurrentWritersLoseNothing: writers on two "machines"
// (separate pools), several goroutines each, increment one counter; every
// increment survives.
func TestStore_concurrentWritersLoseNothing(t *testing.T) {
	ctx := ctxT(t)
	conn := pgtest.DB(t)
	keys := testKeys(t)
	stores := []*Store{openStore(t, conn, keys, "m1"), openStore(t, conn, keys, "m2")}
	_, err := stores[0].UpdateConfig(ctx, seedConfig)
	require.NoError(t, err)

	const goroutines, each = 4, 15
	var wg sync.WaitGroup
	errs := make(chan error, len(stores)*goroutines)
	for _, s := range stores {
		for g := 0; g < goroutines; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					if _, err := s.UpdateState(ctx, func(st *record.StateFile) error {
						st.Accounts["acct-1"].LastUsed++
						return nil
					}); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	snap, err := stores[1].Load(ctx)
	require.NoError(t, err)
	a, ok := snap.Account("acct-1")
	require.True(t, ok)
	assert.Equal(t, int64(len(stores)*goroutines*each), a.State.LastUsed)
	assert.Equal(t, secret.Secret(plantedRefresh), a.State.Refresh, "tokens untouched by the counter writes")
}

func TestLockAccount_diesWithTerminatedSession(t *testing.T) {
	ctx := ctxT(t)
	conn := pgtest.DB(t)
	keys := testKeys(t)
	holder := openStore(t, conn, keys, "m1")
	other := openStore(t, conn, keys, "m2")

	l, err := holder.LockAccount(ctx, "acct-1", time.Second)
	require.NoError(t, err)
	_, err = other.LockAccount(ctx, "acct-1", 50*time.Millisecond)
	var te *LockTimeoutError
	require.ErrorAs(t, err, &te)
	assert.ErrorIs(t, err, core.ErrLockTimeout)
	assert.Contains(t, te.Holder, "acctpool m1 pid", "the holder is named")

	// Another account's lock is independent.
	l2, err := other.LockAccount(ctx, "acct-2", time.Second)
	require.NoError(t, err)
	l2.Release()

	pid := l.tx.Conn().PgConn().PID()
	var ok bool
	require.NoError(t, other.pool.QueryRow(ctx, "SELECT pg_terminate_backend($1)", pid).Scan(&ok))
	require.True(t, ok)

	got, err := other.LockAccount(ctx, "acct-1", 30*time.Second)
	require.NoError(t, err, "the lock died with its session")
	got.Release()

	_, err = l.UpdateState(ctx, func(st *record.StateFile) error { return nil })
	assert.ErrorIs(t, err, ErrLockLost, "a holder whose session ended cannot save")
}

// TestLockAccount_saveCommitsWithRelease: the waiter gets the lock only
// after the rotated tokens are committed, and sees them on re-read.
func TestLockAccount_saveCommitsWithRelease(t *testing.T) {
	ctx := ctxT(t)
	conn := pgtest.DB(t)
	keys := testKeys(t)
	a := openStore(t, conn, keys, "m1")
	b := openStore(t, conn, keys, "m2")
	_, err := a.UpdateConfig(ctx, seedConfig)
	require.NoError(t, err)

	l, err := a.LockAccount(ctx, "acct-1", time.Second)
	require.NoError(t, err)
	got := make(chan secret.Secret, 1)
	go func() {
		lb, err := b.LockAccount(ctx, "acct-1", time.Minute)
		if err != nil {
			got <- secret.Secret("error: " + err.Error())
			return
		}
		defer lb.Release()
		snap, err := b.Load(ctx)
		if err != nil {
			got <- secret.Secret("error: " + err.Error())
			return
		}
		acct, _ := snap.Account("acct-1")
		got <- acct.State.Refresh
	}()
	_, err = l.UpdateState(ctx, func(st *record.StateFile) error {
		st.Accounts["acct-1"].Refresh = "rotated-refresh"
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, secret.Secret("rotated-refresh"), <-got)
	l.Release() // after the save: harmless
}

// The child process of TestLockAccount_diesWithKilledProcess.
const childEnv = "ACCTPOOL_PGSTORE_TEST_CHILD"

func runChild() {
	var args struct{ Mode, Conn, Key, Account, Server, Dir string }
	if err := json.Unmarshal([]byte(os.Getenv(childEnv)), &args); err != nil {
		fmt.Println("bad args")
		os.Exit(2)
	}
	ks, err := ParseKeys([]byte(args.Key))
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	ctx := context.Background()
	s, err := Open(ctx, Options{ConnString: args.Conn, Keys: ks, Host: "child", NoFollow: true})
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	if args.Mode == "refresh" {
		refreshOnce(ctx, s, args.Dir, args.Account, args.Server)
		os.Exit(0)
	}
	if args.Mode == "rotate" {
		fmt.Println("ready")
		rotateForever(ctx, s, args.Server)
		s.Close()
		os.Exit(0)
	}
	if _, err := s.LockAccount(ctx, args.Account, 10*time.Second); err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	fmt.Println("locked")
	select {} // hold the lock until killed
}

func TestLockAccount_diesWithKilledProcess(t *testing.T) {
	ctx := ctxT(t)
	conn := pgtest.DB(t)
	keyLine := NewKeyLine()
	ks, err := ParseKeys([]byte(keyLine))
	require.NoError(t, err)
	s := openStore(t, conn, ks, "parent")

	args, _ := json.Marshal(map[string]string{"Conn": conn, "Key": keyLine, "Account": "acct-1"})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(args))
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "locked\n", line)

	_, err = s.LockAccount(ctx, "acct-1", 50*time.Millisecond)
	require.ErrorIs(t, err, core.ErrLockTimeout, "the child holds the lock")

	require.NoError(t, cmd.Process.Kill()) // SIGKILL: no cleanup in the child
	_ = cmd.Wait()
	l, err := s.LockAccount(ctx, "acct-1", time.Minute)
	require.NoError(t, err, "the lock died with the killed process's connection")
	l.Release()
}

// TestWatch_seesOtherMachinesWrites measures the time from a commit on one
// store to its notification on another (logged, not asserted).
func TestWatch_seesOtherMachinesWrites(t *testing.T) {
	ctx := ctxT(t)
	conn := pgtest.DB(t)
	keys := testKeys(t)
	writer := openStore(t, conn, keys, "m1")
	watcher := openStore(t, conn, keys, "m2")
	_, err := writer.UpdateConfig(ctx, seedConfig)
	require.NoError(t, err)

	wctx, stop := context.WithCancel(ctx)
	defer stop()
	ready := make(chan struct{})
	got := make(chan Change, 100)
	go func() {
		_ = watcher.Watch(wctx, func() { close(ready) }, func(c Change) { got <- c })
	}()
	<-ready

	const n = 40
	// The notification can arrive before UpdateState returns, so latency
	// is measured from the start of the write (an upper bound that
	// includes the write itself, whose own duration is logged too).
	lat := make([]time.Duration, 0, n)
	writes := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		_, err := writer.UpdateState(ctx, func(st *record.StateFile) error {
			st.Accounts["acct-1"].LastUsed = int64(i + 1)
			return nil
		})
		require.NoError(t, err)
		writes = append(writes, time.Since(start))
		select {
		case c := <-got:
			lat = append(lat, time.Since(start))
			assert.Equal(t, ChangeState, c.Kind)
			assert.Equal(t, writer.Origin(), c.Origin)
			assert.Equal(t, []string{"acct-1"}, c.Accounts)
		case <-time.After(time.Minute):
			t.Fatalf("no notification for write %d", i)
		}
	}
	// A write that changes nothing commits nothing and notifies nobody:
	// the next notification is the next real write's.
	_, err = writer.UpdateState(ctx, func(st *record.StateFile) error { return nil })
	require.NoError(t, err)
	_, err = writer.UpdateConfig(ctx, func(cfg *record.ConfigFile, st *record.StateFile) error {
		cfg.Accounts[0].Label = "renamed"
		return nil
	})
	require.NoError(t, err)
	c := <-got
	assert.Equal(t, ChangeConfig, c.Kind)

	for _, d := range [][]time.Duration{lat, writes} {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	}
	t.Logf("write start to notification on another store, %d commits: p50 %v, p99 %v, max %v; the UpdateState alone: p50 %v, p99 %v",
		n, lat[n/2], lat[n*99/100], lat[n-1], writes[n/2], writes[n*99/100])
}

// TestStore_tokensEncryptedAtRest greps a pg_dump and every row for the
// planted tokens.
func TestStore_tokensEncryptedAtRest(t *testing.T) {
	ctx := ctxT(t)
	conn := pgtest.DB(t)
	s := openStore(t, conn, testKeys(t), "h")
	_, err := s.UpdateConfig(ctx, seedConfig)
	require.NoError(t, err)
	_, err = s.UpdateState(ctx, seedState)
	require.NoError(t, err)
	snap, err := s.Load(ctx)
	require.NoError(t, err)
	a, _ := snap.Account("acct-1")
	require.Equal(t, secret.Secret(plantedRefresh), a.State.Refresh, "the store gives the tokens back")

	var rows []string
	for _, table := range []string{"acctpool_config", "acctpool_account", "acctpool_state", "acctpool_account_state", "acctpool_host", "acctpool_change"} {
		r, err := s.pool.Query(ctx, "SELECT row_to_json(t)::text FROM "+table+" t")
		require.NoError(t, err)
		texts, err := pgx.CollectRows(r, pgx.RowTo[string])
		require.NoError(t, err)
		rows = append(rows, texts...)
	}
	all := strings.Join(rows, "\n")
	require.Contains(t, all, "acct-1", "the rows were read")
	for _, tok := range []string{plantedRefresh, plantedAccess, plantedAPIKey, "PLANTED"} {
		assert.NotContains(t, all, tok)
	}

	pgDump, err := pgtest.Tool("pg_dump")
	require.NoError(t, err)
	dump, err := exec.Command(pgDump, "--dbname="+conn).Output()
	require.NoError(t, err)
	require.Contains(t, string(dump), "acctpool_account_state")
	assert.NotContains(t, string(dump), "PLANTED")
}

func TestStore_wrongKeyIsAnError(t *testing.T) {
	ctx := ctxT(t)
	conn := pgtest.DB(t)
	s := openStore(t, conn, testKeys(t), "h")
	_, err := s.UpdateConfig(ctx, seedConfig)
	require.NoError(t, err)
	// A server started with another key file is refused at start.
	_, err = Open(ctx, Options{ConnString: conn, Keys: testKeys(t), Host: "h"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cannot be decrypted")
	assert.NotContains(t, err.Error(), "PLANTED")
}

// TestRekey follows the documented rotation: new key second, then first
// (re-encrypting at open), then the old key removed.
func TestRekey(t *testing.T) {
	ctx := ctxT(t)
	conn := pgtest.DB(t)
	oldKey, newKey := NewKeyLine(), NewKeyLine()
	parse := func(s string) *Keys {
		ks, err := ParseKeys([]byte(s))
		require.NoError(t, err)
		return ks
	}
	s := openStore(t, conn, parse(oldKey), "h")
	_, err := s.UpdateConfig(ctx, seedConfig)
	require.NoError(t, err)

	openStore(t, conn, parse(oldKey+newKey), "h") // step 1: nothing to re-encrypt
	step2 := openStore(t, conn, parse("# rotated\n"+newKey+oldKey), "h")
	n, err := step2.Rekey(ctx)
	require.NoError(t, err)
	assert.Zero(t, n, "Open already re-encrypted everything")

	step3 := openStore(t, conn, parse(newKey), "h")
	snap, err := step3.Load(ctx)
	require.NoError(t, err)
	a, _ := snap.Account("acct-1")
	assert.Equal(t, secret.Secret(plantedRefresh), a.State.Refresh)
	k, _ := snap.Account("key-1")
	assert.Equal(t, secret.Secret(plantedAPIKey), k.State.APIKey)
}

func TestLoadKeyFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	require.NoError(t, WriteKeyFile(good))
	_, err := LoadKeyFile(good)
	require.NoError(t, err)
	assert.Error(t, WriteKeyFile(good), "an existing key file is never overwritten")

	cases := []struct {
		name, content string
		mode          os.FileMode
		want          string
	}{
		{"group readable", NewKeyLine(), 0o640, "chmod 600"},
		{"other readable", NewKeyLine(), 0o604, "chmod 600"},
		{"not base64", "zzzzNOTAKEYzzzz\n", 0o600, "line 1"},
		{"short key", "AAAA\n", 0o600, "32-byte"},
		{"only comments", "# nothing\n\n", 0o600, "no key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-"))
			require.NoError(t, os.WriteFile(p, []byte(c.content), 0o600))
			require.NoError(t, os.Chmod(p, c.mode))
			_, err := LoadKeyFile(p)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			assert.NotContains(t, err.Error(), strings.TrimSpace(c.content), "the content is never quoted")
		})
	}
	_, err = LoadKeyFile("")
	assert.ErrorContains(t, err, "--store-key-file")
}

func TestRedactConnString(t *testing.T) {
	cases := []struct{ in, want string }{
		{"postgres://u:hunter2@db.example:5432/pool?sslmode=require", "postgres://u:[redacted]@db.example:5432/pool?sslmode=require"},
		{"postgresql://u@db/pool?password=hunter2&sslmode=disable", "postgresql://u@db/pool?password=[redacted]&sslmode=disable"},
		{"postgres://u@db/pool", "postgres://u@db/pool"},
		{"host=db user=u password=hunter2 dbname=pool", "host=db user=u password=[redacted] dbname=pool"},
		{"host=db password='hun ter2' dbname=pool", "host=db password=[redacted] dbname=pool"},
		{"postgres://u:hun%ter2@db/pool", "postgres://u:[redacted]@db/pool"},
	}
	for _, c := range cases {
		got := RedactConnString(c.in)
		assert.Equal(t, c.want, got, c.in)
		assert.NotContains(t, got, "hunter2")
		assert.NotContains(t, got, "ter2")
	}
}

func TestOpen_unreachableIsClear(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := "postgres://u:hunter2@/pool?host=" + t.TempDir() + "&connect_timeout=5"
	_, err := Open(ctx, Options{ConnString: conn, Keys: testKeys(t)})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cannot reach the postgres store")
	assert.NotContains(t, err.Error(), "hunter2")

	_, err = Open(ctx, Options{ConnString: conn})
	assert.ErrorContains(t, err, "key file")
}

func TestRouting_roundTripAndPrune(t *testing.T) {
	ctx := ctxT(t)
	s := openStore(t, pgtest.DB(t), testKeys(t), "h")
	doc, err := s.LoadRouting(ctx)
	require.NoError(t, err)
	assert.Nil(t, doc)

	now := time.UnixMilli(1800000000000)
	fresh := now.Add(-time.Hour).UnixMilli()
	stale := now.Add(-core.StickyAssignmentTTL - time.Minute).UnixMilli()
	in := fmt.Sprintf(`{"version":1,"updatedAt":%d,"assignments":{
		"aa":{"accountId":"acct-1","family":"opus","assignedAt":1,"lastSeenAt":%d,"initialInputBytes":10,"quotaCheckedAt":2},
		"bb":{"accountId":"acct-2","family":"opus","assignedAt":1,"lastSeenAt":%d,"initialInputBytes":10,"quotaCheckedAt":2}}}`,
		now.UnixMilli(), fresh, stale)
	require.NoError(t, s.UpdateRouting(ctx, now, func(old []byte) ([]byte, error) {
		assert.Nil(t, old)
		return []byte(in), nil
	}))
	doc, err = s.LoadRouting(ctx)
	require.NoError(t, err)
	var got struct {
		Version     int                        `json:"version"`
		UpdatedAt   int64                      `json:"updatedAt"`
		Assignments map[string]json.RawMessage `json:"assignments"`
	}
	require.NoError(t, json.Unmarshal(doc, &got))
	assert.Equal(t, 1, got.Version)
	assert.Equal(t, now.UnixMilli(), got.UpdatedAt)
	require.Contains(t, got.Assignments, "aa")
	assert.NotContains(t, got.Assignments, "bb", "idle past the TTL")
	assert.JSONEq(t, fmt.Sprintf(`{"accountId":"acct-1","family":"opus","assignedAt":1,"lastSeenAt":%d,"initialInputBytes":10,"quotaCheckedAt":2}`, fresh), string(got.Assignments["aa"]))

	// fn returning nil writes nothing.
	require.NoError(t, s.UpdateRouting(ctx, now, func(old []byte) ([]byte, error) {
		assert.JSONEq(t, string(doc), string(old))
		return nil, nil
	}))
}

// TestStore_followsOtherMachines: another machine's write changes the
// generation and reaches subscribers.
func TestStore_followsOtherMachines(t *testing.T) {
	ctx := ctxT(t)
	conn := pgtest.DB(t)
	keys := testKeys(t)
	a := openStore(t, conn, keys, "m1")
	b := openStore(t, conn, keys, "m2")
	got := make(chan Change, 10)
	defer b.Subscribe(func(c Change) { got <- c })()
	// Wait for b's watch to listen: until then its generation moves on
	// every call.
	require.Eventually(t, func() bool { return b.Generation() == b.Generation() }, time.Minute, time.Millisecond)
	before := b.Generation()

	_, err := a.UpdateConfig(ctx, seedConfig)
	require.NoError(t, err)
	select {
	case c := <-got:
		assert.Equal(t, ChangeConfig, c.Kind)
		assert.Equal(t, a.Origin(), c.Origin)
		assert.ElementsMatch(t, []string{"acct-1", "key-1"}, c.Accounts)
	case <-time.After(time.Minute):
		t.Fatal("no change reached the subscriber")
	}
	assert.NotEqual(t, before, b.Generation())
}

// TestStore_databaseLostWhileRunning: reads fall back to the last
// snapshot, writes fail, and both work again once the database is back.
func TestStore_databaseLostWhileRunning(t *testing.T) {
	ctx := ctxT(t)
	cl, err := pgtest.Start()
	if errors.Is(err, pgtest.ErrNoBinaries) {
		t.Skip("skipped: " + err.Error())
	}
	require.NoError(t, err)
	defer cl.Stop()
	conn, err := cl.CreateDatabase(ctx)
	require.NoError(t, err)
	s := openStore(t, conn+"&connect_timeout=5", testKeys(t), "h")
	_, err = s.UpdateConfig(ctx, seedConfig)
	require.NoError(t, err)

	require.NoError(t, cl.Pause())
	snap, err := s.Load(ctx)
	require.NoError(t, err, "the last snapshot is served")
	a, ok := snap.Account("acct-1")
	require.True(t, ok)
	assert.Equal(t, secret.Secret(plantedRefresh), a.State.Refresh)
	_, err = s.UpdateState(ctx, func(st *record.StateFile) error {
		st.Accounts["acct-1"].LastUsed = 5
		return nil
	})
	require.Error(t, err, "writes fail while the database is away")

	require.NoError(t, cl.Resume())
	require.Eventually(t, func() bool {
		_, err := s.UpdateState(ctx, func(st *record.StateFile) error {
			st.Accounts["acct-1"].LastUsed = 6
			return nil
		})
		return err == nil
	}, time.Minute, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		snap, err := s.Load(ctx)
		if err != nil {
			return false
		}
		a, _ := snap.Account("acct-1")
		return a.State.LastUsed == 6
	}, time.Minute, 20*time.Millisecond)
}

func TestClaimPoll_onePollerPerInterval(t *testing.T) {
	ctx := ctxT(t)
	conn := pgtest.DB(t)
	keys := testKeys(t)
	stores := []*Store{openStore(t, conn, keys, "m1"), openStore(t, conn, keys, "m2"), openStore(t, conn, keys, "m3")}

	now := time.UnixMilli(1800000000000)
	won := 0
	for _, s := range stores {
		ok, err := s.ClaimPoll(ctx, "acct-1", now, time.Minute)
		require.NoError(t, err)
		if ok {
			won++
		}
	}
	assert.Equal(t, 1, won, "one machine polls per interval")
	ok, err := stores[1].ClaimPoll(ctx, "acct-2", now, time.Minute)
	require.NoError(t, err)
	assert.True(t, ok, "claims are per account")

	ok, err = stores[0].ClaimPoll(ctx, "acct-3", now, time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = stores[0].ClaimPoll(ctx, "acct-3", now.Add(time.Second), time.Minute)
	require.NoError(t, err)
	assert.True(t, ok, "the holder may renew its own claim")
	ok, err = stores[2].ClaimPoll(ctx, "acct-3", now.Add(30*time.Second), time.Minute)
	require.NoError(t, err)
	assert.False(t, ok, "another machine waits for the claim to run out")
	ok, err = stores[2].ClaimPoll(ctx, "acct-3", now.Add(time.Second+time.Minute), time.Minute)
	require.NoError(t, err)
	assert.True(t, ok, "an expired claim is taken over")
}
