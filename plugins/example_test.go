package plugins_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/acctpool/acctpool/core/verdict"
	"github.com/acctpool/acctpool/plugins"
)

// A host with one plugin: its verdict wins where it has an opinion, and
// the built-in table decides everything else.
func ExampleNewHost() {
	ctx := context.Background()
	wasm, _ := os.ReadFile("testdata/ok.wasm")
	sum := sha256.Sum256(wasm)
	m, err := plugins.ParseManifest([]byte(`{"id":"ok","version":"1.0.0","abi":"errclass v1",
		"wasm":"testdata/ok.wasm","sha256":"` + hex.EncodeToString(sum[:]) + `","limits":{"callTimeoutMs":1000}}`))
	if err != nil {
		panic(err)
	}
	cache, _ := os.MkdirTemp("", "example-cache")
	defer os.RemoveAll(cache)
	host, err := plugins.NewHost(ctx, plugins.Options{Manifests: []plugins.Manifest{m}, CacheDir: cache})
	if err != nil {
		panic(err)
	}
	defer host.Close(ctx)

	v := host.Classify(ctx, verdict.Failure{Source: verdict.SourceUsage, Status: 403})
	fmt.Println(v.Class, v.DecidedBy)
	v = host.Classify(ctx, verdict.Failure{Source: verdict.SourceUsage, Status: 429})
	fmt.Println(v.Class, v.DecidedBy)
	s := host.Status()[0]
	fmt.Println(s.ID, s.State, s.Calls)
	// Output:
	// invalid_grant plugin:ok
	// rate_limited builtin
	// ok active 2
}
