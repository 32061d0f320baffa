package plugincheck

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Shared by the tests: a compilation cache and the Go example plugin
// built for wasip1 (goExample, or goExampleErr saying why not).
var (
	testDir      string
	testCache    string
	goExample    string
	goExampleErr error
)

// repoRoot is the module root, from this package's directory.
const repoRoot = "../../../.."

// TestMain builds the Go example plugin once, as plugins' tests do. With
// PLUGINCHECK_MAIN=1 the test binary is the command instead: it runs
// Main(os.Args[1:]) and exits, which lets scripts/ci-checks run
// "plugin check" before cmd/acctpool wires it:
//
//	go test -c -o /tmp/plugincheck ./cmd/acctpool/internal/plugincheck
//	PLUGINCHECK_MAIN=1 /tmp/plugincheck check MANIFEST
func TestMain(m *testing.M) {
	if os.Getenv("PLUGINCHECK_MAIN") == "1" {
		os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	dir, err := os.MkdirTemp("", "acctpool-plugincheck-")
	if err != nil {
		panic(err)
	}
	testDir = dir
	testCache = filepath.Join(dir, "cache")
	goExample, goExampleErr = buildGoExample(filepath.Join(dir, "go-org403.wasm"))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func buildGoExample(out string) (string, error) {
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-ldflags=-s -w", "-trimpath", "-o", out, "./plugins/examples/go-org403")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build go example: %v: %s", err, b)
	}
	return out, nil
}

// writeManifest writes a manifest for wasm into dir and returns its path.
// limits is the manifest's "limits" JSON ("" for none).
func writeManifest(t testing.TB, dir, id, wasm, limits string) string {
	t.Helper()
	data, err := os.ReadFile(wasm)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	abs, err := filepath.Abs(wasm)
	if err != nil {
		t.Fatal(err)
	}
	m := fmt.Sprintf(`{"id": %q, "version": "1.0.0", "abi": "errclass v1", "wasm": %q, "sha256": %q`, id, abs, hex.EncodeToString(sum[:]))
	if limits != "" {
		m += `, "limits": ` + limits
	}
	path := filepath.Join(dir, id+".json")
	if err := os.WriteFile(path, []byte(m+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
