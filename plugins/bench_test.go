package plugins

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/acctpool/acctpool/core/verdict"
)

// Run: go test ./plugins -run '^$' -bench . -benchtime 2s
//
// BenchmarkClassify reports p50 and p99 next to ns/op; the design
// targets are p50 ≤ 10 µs for the WAT guest and ≤ 20 µs for the
// Go guest through the pool. The plugins run with their default 50 ms
// deadline, as deployed; calls that miss it on a busy machine fall back to
// the built-in verdict and are reported as the "fallbacks" metric (their
// count over the run), not failed.
func BenchmarkClassify(b *testing.B) {
	ctx := context.Background()
	f := orgFailure("org-acme-0001")
	builtin := verdict.ClassifyBuiltin(f)
	run := func(b *testing.B, c verdict.Classifier, want string) {
		lat := make([]time.Duration, 0, 1<<16)
		fallbacks := 0
		b.ReportAllocs()
		for b.Loop() {
			start := time.Now()
			v := c.Classify(ctx, f)
			if len(lat) < cap(lat) {
				lat = append(lat, time.Since(start))
			}
			switch {
			case v.DecidedBy == want:
			case v == builtin:
				fallbacks++
			default:
				b.Fatalf("verdict %+v, want one decided by %q or the built-in %+v", v, want, builtin)
			}
		}
		reportPercentiles(b, lat)
		b.ReportMetric(float64(fallbacks), "fallbacks")
	}
	b.Run("builtin", func(b *testing.B) { run(b, verdict.Builtin, "builtin") })
	b.Run("plugin_wat", func(b *testing.B) {
		h := newHostAsConfigured(b, nil, fixture(b, "ok"))
		run(b, h, "plugin:ok")
	})
	b.Run("plugin_go", func(b *testing.B) {
		h := newHostAsConfigured(b, nil, goManifest(b))
		run(b, h, "plugin:go-org403")
	})
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
}

// BenchmarkHostOverhead is the host's own cost of one classification on a
// warm instance of the WAT guest, whose classify is a few hundred ns:
// encode, write, one wasm call (with CloseOnContextDone), read, decode.
func BenchmarkHostOverhead(b *testing.B) {
	h := newHostAsConfigured(b, nil, fixture(b, "ok"))
	p := h.cur.Load().entries[0].p
	ctx := context.Background()
	in, _, err := p.acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer p.release(ctx, in, true)
	f := failure(403)
	builtin := verdict.ClassifyBuiltin(f)
	b.ReportAllocs()
	for b.Loop() {
		in.calls = 0
		if _, _, err := p.call(ctx, in, f, builtin); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompile compiles the Go example cold (fresh cache directory)
// and from a warm file cache in a fresh Runtime, as a new process would.
func BenchmarkCompile(b *testing.B) {
	m := goManifest(b)
	data, err := os.ReadFile(m.Wasm)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	compileIn := func(b *testing.B, dir string) {
		cache, err := wazero.NewCompilationCacheWithDir(dir)
		if err != nil {
			b.Fatal(err)
		}
		defer cache.Close(ctx)
		r := newRuntime(ctx, MaxMemoryPages, cache)
		defer r.Close(ctx)
		if _, err := compile(ctx, r, data); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("go_cold", func(b *testing.B) {
		for b.Loop() {
			compileIn(b, b.TempDir())
		}
	})
	b.Run("go_cache", func(b *testing.B) {
		dir := b.TempDir()
		compileIn(b, dir)
		for b.Loop() {
			compileIn(b, dir)
		}
	})
	b.Run("wat_cold", func(b *testing.B) {
		wat, err := os.ReadFile("testdata/ok.wasm")
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			r := newRuntime(ctx, MaxMemoryPages, nil)
			if _, err := compile(ctx, r, wat); err != nil {
				b.Fatal(err)
			}
			r.Close(ctx)
		}
	})
}

// BenchmarkInstantiate measures one new pooled instance, _initialize
// included.
func BenchmarkInstantiate(b *testing.B) {
	for _, tc := range []struct {
		name string
		m    func(testing.TB) Manifest
	}{
		{"wat", func(t testing.TB) Manifest { return fixture(t, "ok") }},
		{"go", goManifest},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := newHostAsConfigured(b, nil, tc.m(b))
			p := h.cur.Load().entries[0].p
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				in, err := p.instantiate(ctx)
				if err != nil {
					b.Fatal(err)
				}
				in.mod.Close(ctx)
			}
		})
	}
}
