// Command rpcload measures the stdio server the way a host uses it and
// compares it with a bare sourcegraph/jsonrpc2 echo server in the same run:
// round trips of ping and route/select (p50, p99, throughput with 1 and 64
// requests in flight), the time from spawn to the initialize result, and
// idle RSS.
//
//	go run ./cmd/stdio-server/internal/rpcload            # builds both servers
//	go run ./cmd/stdio-server/internal/rpcload -n 50000 -framing ndjson
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/acctpool/acctpool/cmd/stdio-server/internal/stdioclient"
)

func main() {
	n := flag.Int("n", 20000, "requests per measurement")
	warm := flag.Int("warm", 2000, "warm-up requests before each measurement")
	rounds := flag.Int("rounds", 3, "alternating rounds; the median round is reported")
	framing := flag.String("framing", "lsp", "lsp or ndjson")
	spawns := flag.Int("spawns", 30, "spawns measured for spawn→initialize")
	methods := flag.String("methods", "ping,route/select", "comma-separated methods to measure (params for route/select and errors/classify are built in)")
	flag.Parse()
	if err := mainErr(*n, *warm, *rounds, *spawns, *framing, strings.Split(*methods, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "rpcload:", err)
		os.Exit(1)
	}
}

type server struct {
	name string
	argv []string
}

func mainErr(n, warm, rounds, spawns int, framing string, methods []string) error {
	dir, err := os.MkdirTemp("", "rpcload")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bins := map[string]string{"acctpool": "./cmd/stdio-server", "bare_echo": "./cmd/stdio-server/internal/echoserver"}
	for name, pkg := range bins {
		out := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build %s (run from the module root): %w", pkg, err)
		}
		bins[name] = out
	}
	cfg := filepath.Join(dir, "anthropic-auth.json")
	servers := []server{
		{"bare_echo", []string{bins["bare_echo"], "--framing", framing}},
		{"acctpool", []string{bins["acctpool"], "--framing", framing, "--config", cfg, "--state", filepath.Join(dir, "state.json"), "--log-level", "error",
			// Never reach the real Anthropic from a benchmark: a closed local port.
			"--token-url", "http://127.0.0.1:9/v1/oauth/token", "--usage-url", "http://127.0.0.1:9/api/oauth/usage", "--profile-url", "http://127.0.0.1:9/api/oauth/profile"}},
	}
	fmt.Printf("rpcload: %d requests per run, %d rounds, framing %s, GOMAXPROCS of host %s\n\n", n, rounds, framing, os.Getenv("GOMAXPROCS"))

	sessions := map[string]*session{}
	for _, s := range servers {
		ses, err := start(s, framing)
		if err != nil {
			return err
		}
		defer ses.close()
		sessions[s.name] = ses
	}
	note, err := sessions["acctpool"].setUpAccounts()
	if err != nil {
		return err
	}
	fmt.Println("route/select fixture:", note)
	fmt.Println()

	paramsFor := map[string]any{
		"route/select":    map[string]any{"sessionId": "bench-session", "model": "claude-sonnet-4-5", "promptBytes": 2048},
		"errors/classify": map[string]any{"source": "messages", "status": 429, "headers": map[string]string{"retry-after": "3"}},
	}
	type key struct {
		method   string
		inflight int
		server   string
	}
	results := map[key][]stats{}
	for r := 0; r < rounds; r++ {
		for _, method := range methods {
			params := paramsFor[method]
			for _, inflight := range []int{1, 64} {
				for _, s := range servers {
					ses := sessions[s.name]
					ses.load(method, params, warm, inflight)
					st := ses.load(method, params, n, inflight)
					results[key{method, inflight, s.name}] = append(results[key{method, inflight, s.name}], st)
				}
			}
		}
	}
	fmt.Printf("%-13s %-9s %-10s %10s %10s %12s\n", "method", "in flight", "server", "p50", "p99", "req/s")
	for _, method := range methods {
		for _, inflight := range []int{1, 64} {
			var base, ours stats
			for _, s := range servers {
				st := median(results[key{method, inflight, s.name}])
				fmt.Printf("%-13s %-9d %-10s %10s %10s %12.0f\n", method, inflight, s.name, us(st.p50), us(st.p99), st.rps)
				if s.name == "bare_echo" {
					base = st
				} else {
					ours = st
				}
			}
			fmt.Printf("%-13s %-9d %-10s %10.2fx %9.2fx %11.2fx\n", method, inflight, "ratio", ratio(ours.p50, base.p50), ratio(ours.p99, base.p99), base.rps/ours.rps)
		}
	}

	fmt.Printf("\nspawn → initialize result (%d spawns each):\n", spawns)
	for _, s := range servers {
		d, err := spawnToInit(s, framing, spawns)
		if err != nil {
			return err
		}
		slices.Sort(d)
		fmt.Printf("  %-10s p50 %s  p90 %s  max %s\n", s.name, ms(d[len(d)/2]), ms(d[len(d)*9/10]), ms(d[len(d)-1]))
	}
	fmt.Println("\nidle RSS after the load above and 1 s idle:")
	time.Sleep(time.Second)
	for _, s := range servers {
		fmt.Printf("  %-10s %s\n", s.name, sessions[s.name].rss())
	}
	fresh, err := start(servers[1], framing)
	if err != nil {
		return err
	}
	defer fresh.close()
	time.Sleep(time.Second)
	fmt.Printf("  %-10s %s (fresh, initialized, 1 s idle)\n", "acctpool", fresh.rss())
	return nil
}

type session struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	c   *stdioclient.Client
}

func start(s server, framing string) (*session, error) {
	cmd := exec.Command(s.argv[0], s.argv[1:]...)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ses := &session{cmd: cmd, in: in, c: stdioclient.New(out, in, framing)}
	if _, err := ses.call("initialize", initParams()); err != nil {
		return nil, fmt.Errorf("%s: initialize: %w", s.name, err)
	}
	_ = ses.c.Notify("initialized", nil)
	return ses, nil
}

func initParams() map[string]any {
	return map[string]any{"protocolVersion": "1.0", "clientInfo": map[string]any{"name": "rpcload", "version": "1"}}
}

func (s *session) call(method string, params any) (stdioclient.Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.c.Call(ctx, method, params)
}

func (s *session) close() {
	s.in.Close()
	_ = s.cmd.Wait()
}

// setUpAccounts hands over main credentials and adds three API-key
// accounts, so route/select has a realistic config to choose from.
func (s *session) setUpAccounts() (string, error) {
	var problems []string
	try := func(method string, params any) {
		m, err := s.call(method, params)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", method, err))
		} else if m.Error != nil {
			problems = append(problems, fmt.Sprintf("%s: %d %s", method, m.Error.Code, m.Error.Message))
		}
	}
	try("accounts/setMain", map[string]any{"access": "bench-access", "refresh": "bench-refresh", "expires": time.Now().Add(24 * time.Hour).UnixMilli()})
	for i := 1; i <= 3; i++ {
		try("accounts/add", map[string]any{"id": "api" + strconv.Itoa(i), "type": "api", "apiKey": "bench-key-" + strconv.Itoa(i), "baseURL": "http://127.0.0.1:9"})
	}
	m, err := s.call("route/select", map[string]any{"sessionId": "bench-session", "model": "claude-sonnet-4-5", "promptBytes": 2048})
	switch {
	case err != nil:
		return "", err
	case m.Error != nil:
		problems = append(problems, fmt.Sprintf("route/select answers error %d %q", m.Error.Code, m.Error.Message))
	}
	if len(problems) > 0 {
		return "main + 3 API accounts requested; NOTE the measured route/select is not a real selection: " + strings.Join(problems, "; "), nil
	}
	return "main + 3 API-key accounts; route/select returns a route", nil
}

type stats struct {
	p50, p99 time.Duration
	rps      float64
}

// load sends n requests with inflight of them outstanding at any time.
func (s *session) load(method string, params any, n, inflight int) stats {
	lat := make([]time.Duration, n)
	var next sync.Mutex
	i := 0
	begin := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < inflight; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				next.Lock()
				k := i
				i++
				next.Unlock()
				if k >= n {
					return
				}
				t0 := time.Now()
				if _, err := s.call(method, params); err != nil {
					fmt.Fprintln(os.Stderr, "rpcload:", method, err)
					os.Exit(1)
				}
				lat[k] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	total := time.Since(begin)
	slices.Sort(lat)
	return stats{p50: lat[n/2], p99: lat[n*99/100], rps: float64(n) / total.Seconds()}
}

func median(runs []stats) stats {
	slices.SortFunc(runs, func(a, b stats) int { return int(a.p50 - b.p50) })
	return runs[len(runs)/2]
}

func spawnToInit(s server, framing string, times int) ([]time.Duration, error) {
	var out []time.Duration
	for i := 0; i < times; i++ {
		t0 := time.Now()
		ses, err := start(s, framing)
		if err != nil {
			return nil, err
		}
		out = append(out, time.Since(t0))
		ses.close()
	}
	return out, nil
}

func (s *session) rss() string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.Atoi(strings.Fields(line)[1])
			return fmt.Sprintf("%.1f MB", float64(kb)/1024)
		}
	}
	return "unknown"
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }
func us(d time.Duration) string        { return fmt.Sprintf("%.1f µs", float64(d)/1e3) }
func ms(d time.Duration) string        { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }
