// Command fakeanthropic runs the conformance suite's fake Anthropic on its
// own, for end-to-end tests of real hosts (OpenCode, Pi) through acctpool:
//
//	fakeanthropic [--addr 127.0.0.1:0] [--script script.json]
//
// It prints its base URL on the first line of stdout and serves until stdin
// closes or it gets SIGTERM/SIGINT. The script is the fake's per-endpoint
// list of exchanges, as in a conformance case's "fake" member: a JSON object
// whose keys are token, usage, profile, messages and api_messages. A
// messages response body {"$messages": {"text": "..."}} answers in the
// Messages API's own format (an event stream when the request asks for one).
//
// Beside the fake's paths it serves, for the test driving it:
//
//	PUT /_fake/script    start over with a new script (body: the script JSON);
//	                     the requests recorded so far are dropped
//	GET /_fake/requests  every request received so far, as JSON
//	GET /_fake/problems  wire-contract problems and unscripted requests
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/acctpool/acctpool/conformance"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fakeanthropic", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "address to listen on")
	scriptPath := fs.String("script", "", "script file (JSON: endpoint -> exchanges)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	script := map[string][]conformance.Exchange{}
	if *scriptPath != "" {
		b, err := os.ReadFile(*scriptPath)
		if err == nil {
			err = json.Unmarshal(b, &script)
		}
		if err != nil {
			fmt.Fprintf(stderr, "fakeanthropic: read script %s: %v\n", *scriptPath, err)
			return 2
		}
	}
	var cur atomic.Pointer[conformance.Fake]
	cur.Store(conformance.NewFake(script))
	defer func() { cur.Load().Close() }()
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			target, _ := url.Parse(cur.Load().URL())
			r.SetURL(target)
		},
		FlushInterval: -1, // event streams reach the client as written
	}

	mux := http.NewServeMux()
	mux.HandleFunc("PUT /_fake/script", func(w http.ResponseWriter, r *http.Request) {
		var s map[string][]conformance.Exchange
		if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
			http.Error(w, "script: "+err.Error(), http.StatusBadRequest)
			return
		}
		cur.Swap(conformance.NewFake(s)).Close()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_fake/requests", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(cur.Load().Requests())
	})
	mux.HandleFunc("GET /_fake/problems", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(cur.Load().Problems())
	})
	mux.Handle("/", proxy)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "fakeanthropic: listen %s: %v\n", *addr, err)
		return 1
	}
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	fmt.Fprintf(stdout, "http://%s\n", ln.Addr())

	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		close(done)
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	select {
	case <-done:
	case <-sig:
	}
	return 0
}
