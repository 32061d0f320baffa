// Command rpcload measures the stdio server the way a host uses it and
// compares it with a bare sourcegraph/jsonrpc2 echo server in the same run:
// round trips of ping, route/select and route/report (p50, p99,
// throughput with 1 and 64 requests in flight), the time from spawn to the
// initialize result, and idle RSS.
//
//	go run ./cmd/stdio-server/internal/rpcload            # builds both servers
//	go run ./cmd/stdio-server/internal/rpcload -n 50000 -framing ndjson
//	go run ./cmd/stdio-server/internal/rpcload -rounds 5 -strace \
//	    -methods ping,route/select,route/report,route/report:fallback,route/select:new-session
//
// Measurements (the echo server gets the same method and params):
//
//   - route/select: main-first over main and three API-key accounts.
//   - route/report: a served response with rate-limit headers on main.
//   - route/report:fallback: the same on an OAuth fallback (header quota
//     and lastUsed).
//   - route/select:new-session: sticky-balanced, a session id never seen
//     before on each call, against a routing state already at its cap of
//     4,096 sessions (a second acctpool server with its own files).
//
// -strace counts the file system calls (renames, fsyncs, opens) the server
// makes during each measured run and prints them per call. A traced server
// stops at every system call, so the timings of such a run are not the
// server's: take the table from a run without it.
package main

import (
	"context"
	"encoding/json"
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

	"github.com/acctpool/acctpool/internal/stdioclient"
)

func main() {
	n := flag.Int("n", 20000, "requests per measurement")
	warm := flag.Int("warm", 2000, "warm-up requests before each measurement")
	rounds := flag.Int("rounds", 3, "alternating rounds; the median round is reported")
	framing := flag.String("framing", "lsp", "lsp or ndjson")
	spawns := flag.Int("spawns", 30, "spawns measured for spawn→initialize")
	methods := flag.String("methods", "ping,route/select,route/report,route/report:fallback,route/select:new-session", "comma-separated measurements (see the package doc; params are built in)")
	straced := flag.Bool("strace", false, "count the server's renames, fsyncs and opens per call with strace (slows the server: timings of that run are not comparable)")
	flag.Parse()
	useStrace = *straced
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
	acctpoolArgs := func(sub string) []string {
		d := filepath.Join(dir, sub)
		return []string{bins["acctpool"], "--framing", framing, "--config", filepath.Join(d, "anthropic-auth.json"), "--state", filepath.Join(d, "state.json"), "--log-level", "error",
			// Never reach the real Anthropic from a benchmark: a closed local port.
			"--token-url", "http://127.0.0.1:9/v1/oauth/token", "--usage-url", "http://127.0.0.1:9/api/oauth/usage", "--profile-url", "http://127.0.0.1:9/api/oauth/profile"}
	}
	servers := []server{
		{"bare_echo", []string{bins["bare_echo"], "--framing", framing}},
		{"acctpool", acctpoolArgs("ordered")},
	}
	stickyServer := server{"acctpool", acctpoolArgs("sticky")}
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
	fix, err := sessions["acctpool"].setUpAccounts()
	if err != nil {
		return err
	}
	fmt.Println("fixture:", fix.note)
	var sticky *session
	if slices.Contains(methods, "route/select:new-session") {
		if sticky, err = start(stickyServer, framing); err != nil {
			return err
		}
		defer sticky.close()
		note, err := sticky.setUpSticky()
		if err != nil {
			return err
		}
		fmt.Println("sticky fixture:", note)
	}
	fmt.Println()

	// paramsFor builds the k-th request of a measurement.
	newSession := 0
	paramsFor := map[string]func() any{
		"ping": func() any { return nil },
		"route/select": func() any {
			return map[string]any{"sessionId": "bench-session", "model": "claude-sonnet-4-5", "promptBytes": 2048}
		},
		"errors/classify": func() any {
			return map[string]any{"source": "messages", "status": 429, "headers": map[string]string{"retry-after": "3"}}
		},
		"route/report":          func() any { return reportParams(fix.mainRoute) },
		"route/report:fallback": func() any { return reportParams(fix.fallbackRoute) },
		"route/select:new-session": func() any {
			newSession++
			return map[string]any{"sessionId": fmt.Sprintf("new-session-%d", newSession), "model": "claude-opus-4-7", "promptBytes": 2048}
		},
	}
	for _, m := range methods {
		if paramsFor[m] == nil {
			return fmt.Errorf("unknown measurement %q (see -help)", m)
		}
	}
	type key struct {
		method   string
		inflight int
		server   string
	}
	results := map[key][]stats{}
	sys := map[key][]syscalls{}
	for r := 0; r < rounds; r++ {
		for _, method := range methods {
			for _, inflight := range []int{1, 64} {
				for _, s := range servers {
					ses := sessions[s.name]
					if s.name == "acctpool" && method == "route/select:new-session" {
						ses = sticky
					}
					ses.load(method, paramsFor[method], warm, inflight)
					var tr *tracer
					if s.name == "acctpool" && useStrace {
						tr = startTrace(ses.cmd.Process.Pid)
					}
					st := ses.load(method, paramsFor[method], n, inflight)
					if tr != nil {
						sys[key{method, inflight, s.name}] = append(sys[key{method, inflight, s.name}], tr.stop(n))
					}
					results[key{method, inflight, s.name}] = append(results[key{method, inflight, s.name}], st)
				}
			}
		}
	}
	fmt.Printf("%-25s %-9s %-10s %10s %10s %12s %8s\n", "measurement", "in flight", "server", "p50", "p99", "req/s", "errors")
	for _, method := range methods {
		for _, inflight := range []int{1, 64} {
			var base, ours stats
			for _, s := range servers {
				st := median(results[key{method, inflight, s.name}])
				fmt.Printf("%-25s %-9d %-10s %10s %10s %12.0f %8d\n", method, inflight, s.name, us(st.p50), us(st.p99), st.rps, st.errors)
				if s.name == "bare_echo" {
					base = st
				} else {
					ours = st
				}
			}
			fmt.Printf("%-25s %-9d %-10s %10.2fx %9.2fx %11.2fx\n", method, inflight, "ratio", ratio(ours.p50, base.p50), ratio(ours.p99, base.p99), base.rps/ours.rps)
			if runs := sys[key{method, inflight, "acctpool"}]; len(runs) > 0 {
				slices.SortFunc(runs, func(a, b syscalls) int { return int((a.renames - b.renames) * 1e6) })
				m := runs[len(runs)/2]
				fmt.Printf("%-25s %-9d %-10s renames %.4f  fsyncs %.4f  opens %.4f per call\n", method, inflight, "strace", m.renames, m.fsyncs, m.opens)
			}
		}
	}
	fmt.Println("\nratio: p50 and p99 of acctpool over the echo server's; the last column is time (echo req/s over ours).")

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
	// A host reads the server's notifications (quota/changed after each
	// report); the client stops reading answers once 256 pile up.
	go func() {
		for {
			select {
			case <-ses.c.Notifications():
			case <-ses.c.Done():
				return
			}
		}
	}()
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

// fixture is what setUpAccounts made: the routes the report measurements
// report on.
type fixture struct {
	note                     string
	mainRoute, fallbackRoute json.RawMessage
}

// setUpAccounts hands over main credentials and adds three API-key
// accounts and one OAuth fallback, so route/select has a realistic config
// to choose from, and takes a route to main and one to the fallback for
// the report measurements.
func (s *session) setUpAccounts() (fixture, error) {
	var problems []string
	try := func(method string, params any) json.RawMessage {
		m, err := s.call(method, params)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", method, err))
		} else if m.Error != nil {
			problems = append(problems, fmt.Sprintf("%s: %d %s", method, m.Error.Code, m.Error.Message))
		}
		return m.Result
	}
	try("accounts/setMain", map[string]any{"access": "bench-access", "refresh": "bench-refresh", "expires": time.Now().Add(24 * time.Hour).UnixMilli()})
	for i := 1; i <= 3; i++ {
		try("accounts/add", map[string]any{"id": "api" + strconv.Itoa(i), "type": "api", "apiKey": "bench-key-" + strconv.Itoa(i), "baseURL": "http://127.0.0.1:9"})
	}
	try("accounts/add", map[string]any{"id": "fb1", "type": "oauth", "access": "bench-fb-access", "refresh": "bench-fb-refresh", "expires": time.Now().Add(24 * time.Hour).UnixMilli()})
	// Quota from headers, as a host's first responses bring it: the usage
	// endpoint is a closed port here.
	try("route/report", reportParams(handRoute("main", "main")))
	try("route/report", reportParams(handRoute("fb1", "oauth")))
	var f fixture
	f.mainRoute = try("route/select", map[string]any{"sessionId": "bench-session", "model": "claude-sonnet-4-5", "promptBytes": 2048})
	f.fallbackRoute = try("route/select", map[string]any{"model": "claude-sonnet-4-5", "promptBytes": 2048, "exclude": []string{"main"}})
	if id := routeAccount(f.mainRoute); id != "main" {
		problems = append(problems, "route/select routes to "+strconv.Quote(id)+", not main")
	}
	if id := routeAccount(f.fallbackRoute); id != "fb1" {
		problems = append(problems, "route/select without main routes to "+strconv.Quote(id)+", not the OAuth fallback fb1")
	}
	if len(problems) > 0 {
		f.note = "main + 3 API + 1 OAuth accounts requested; NOTE the measurements are not the real paths: " + strings.Join(problems, "; ")
		return f, nil
	}
	f.note = "main + 3 API-key accounts + 1 OAuth fallback; route/select returns main, without main fb1"
	return f, nil
}

func routeAccount(raw json.RawMessage) string {
	var r struct {
		AccountID string `json:"accountId"`
	}
	_ = json.Unmarshal(raw, &r)
	return r.AccountID
}

// benchHeaders are the rate-limit headers of a served response.
var benchHeaders = map[string]string{
	"anthropic-ratelimit-unified-5h-utilization": "0.4", "anthropic-ratelimit-unified-7d-utilization": "0.1",
	"anthropic-ratelimit-unified-5h-reset": strconv.FormatInt(time.Now().Add(3*time.Hour).Unix(), 10),
	"anthropic-ratelimit-unified-7d-reset": strconv.FormatInt(time.Now().Add(72*time.Hour).Unix(), 10),
}

// handRoute is a route a host reports without having selected it.
func handRoute(id, kind string) json.RawMessage {
	raw, _ := json.Marshal(map[string]any{"accountId": id, "kind": kind, "credential": map[string]any{"type": "bearer", "token": "x"}})
	return raw
}

func reportParams(route json.RawMessage) map[string]any {
	return map[string]any{"route": route, "status": 200, "replayable": true, "headers": benchHeaders}
}

// setUpSticky turns on sticky-balanced routing, gives main a fresh quota
// (a served report with headers) and fills the routing state to its cap
// of 4,096 sessions.
func (s *session) setUpSticky() (string, error) {
	for _, c := range []struct {
		method string
		params any
	}{
		{"accounts/setMain", map[string]any{"access": "bench-access", "refresh": "bench-refresh", "expires": time.Now().Add(24 * time.Hour).UnixMilli()}},
		{"config/update", map[string]any{"patch": map[string]any{"routing": map[string]any{"mode": "sticky-balanced"}}}},
	} {
		m, err := s.call(c.method, c.params)
		if err != nil {
			return "", err
		}
		if m.Error != nil {
			return "", fmt.Errorf("%s: %s", c.method, m.Error.Message)
		}
	}
	if m, err := s.call("route/report", reportParams(handRoute("main", "main"))); err != nil || m.Error != nil {
		return "", fmt.Errorf("route/report on the sticky server: %v %v", err, m.Error)
	}
	failed := 0
	for i := 0; i < 4096; i++ {
		m, err := s.call("route/select", map[string]any{"sessionId": fmt.Sprintf("fill-%d", i), "model": "claude-opus-4-7", "promptBytes": 2048})
		if err != nil {
			return "", err
		}
		if m.Error != nil {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Sprintf("NOTE %d of 4,096 fill selections failed: the measurement is not the real path", failed), nil
	}
	return "sticky-balanced, main + no fallbacks, 4,096 sessions assigned before the measurement", nil
}

type stats struct {
	p50, p99 time.Duration
	rps      float64
	errors   int // error answers
}

// load sends n requests with inflight of them outstanding at any time; a
// measurement name "method:variant" calls method.
func (s *session) load(name string, params func() any, n, inflight int) stats {
	method, _, _ := strings.Cut(name, ":")
	lat := make([]time.Duration, n)
	var next sync.Mutex
	i, errs := 0, 0
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
				p := params()
				next.Unlock()
				if k >= n {
					return
				}
				t0 := time.Now()
				m, err := s.call(method, p)
				if err != nil {
					fmt.Fprintln(os.Stderr, "rpcload:", method, err)
					os.Exit(1)
				}
				lat[k] = time.Since(t0)
				if m.Error != nil {
					next.Lock()
					errs++
					next.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	total := time.Since(begin)
	slices.Sort(lat)
	return stats{p50: lat[n/2], p99: lat[n*99/100], rps: float64(n) / total.Seconds(), errors: errs}
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

// useStrace is the -strace flag.
var useStrace bool

// syscalls are the file system calls of one measured run, per call.
type syscalls struct{ renames, fsyncs, opens float64 }

// tracer is strace -c attached to the server for one measured run.
type tracer struct {
	cmd *exec.Cmd
	out string
}

func startTrace(pid int) *tracer {
	f, err := os.CreateTemp("", "rpcload-strace")
	if err != nil {
		fmt.Fprintln(os.Stderr, "rpcload: strace:", err)
		return nil
	}
	f.Close()
	cmd := exec.Command("strace", "-f", "-c", "-o", f.Name(), "-e", "trace=rename,renameat,renameat2,fsync,fdatasync,openat", "-p", strconv.Itoa(pid))
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "rpcload: strace:", err)
		return nil
	}
	time.Sleep(300 * time.Millisecond) // strace attaches every thread
	return &tracer{cmd: cmd, out: f.Name()}
}

// stop detaches strace and returns its counts divided by n calls.
func (t *tracer) stop(n int) syscalls {
	_ = t.cmd.Process.Signal(os.Interrupt)
	_ = t.cmd.Wait()
	defer os.Remove(t.out)
	data, _ := os.ReadFile(t.out)
	var c syscalls
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		calls, err := strconv.ParseFloat(f[3], 64)
		if err != nil {
			continue
		}
		switch f[len(f)-1] {
		case "rename", "renameat", "renameat2":
			c.renames += calls / float64(n)
		case "fsync", "fdatasync":
			c.fsyncs += calls / float64(n)
		case "openat":
			c.opens += calls / float64(n)
		}
	}
	return c
}
