package pgstore

import (
	"context"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/conformance"
	"github.com/acctpool/acctpool/internal/pgtest"
)

// TestConformance_postgresStore runs the conformance suite against the
// server on the PostgreSQL store: pgshim imports each case's files into a
// fresh database, runs the server with --store, and exports the database
// back to the files the runner reads.
func TestConformance_postgresStore(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: builds the server and runs the whole suite")
	}
	admin := pgtest.AdminConn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	dir := t.TempDir()
	server, err := conformance.BuildServer(ctx, dir)
	require.NoError(t, err)
	shim := filepath.Join(dir, "pgshim")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", shim, "../../internal/pgtest/pgshim").CombinedOutput()
	require.NoError(t, err, "%s", out)
	key := filepath.Join(dir, "store.key")
	require.NoError(t, WriteKeyFile(key))
	t.Setenv("PGSHIM_SERVER", server)
	t.Setenv("PGSHIM_ADMIN", admin)
	t.Setenv("PGSHIM_KEY_FILE", key)

	sub, err := fs.Sub(conformance.Cases, "cases")
	require.NoError(t, err)
	all, err := conformance.LoadCases(sub)
	require.NoError(t, err)
	// Cases given verbatim file text (corrupt files) test the file store's
	// reading; a database has no such files, and pgshim cannot import them.
	var cases []*conformance.Case
	var notApplicable []string
	for _, c := range all {
		if c.Given.ConfigText != "" || c.Given.StateText != "" {
			notApplicable = append(notApplicable, c.ID)
			continue
		}
		cases = append(cases, c)
	}
	rep := conformance.Run(ctx, conformance.Options{Server: []string{shim}, Cases: cases, CaseTimeout: 2 * time.Minute})

	var failed []string
	for _, r := range rep.Results {
		if r.Status == conformance.StatusFailed {
			failed = append(failed, r.ID+" ["+strings.Join(r.Tags, ",")+"]: "+strings.Join(r.Failures, "; "))
		}
	}
	t.Logf("conformance on the postgres store: %d passed, %d failed, %d pending of %d run; not run (file text given verbatim): %v",
		rep.Passed, rep.Failed, rep.Pending, len(rep.Results), notApplicable)
	for _, f := range failed {
		t.Log("FAIL " + f)
	}
	assert.Zero(t, rep.Failed)
}
