package rpc

import (
	"context"
	"sync"

	"github.com/sourcegraph/jsonrpc2"
)

// inflight tracks the requests running off the read goroutine, by id, so
// that $/cancelRequest can reach them and so that each gets exactly one
// answer: whichever of "the handler returned" and "the host cancelled"
// comes first claims the reply.
type inflight struct {
	mu   sync.Mutex
	reqs map[jsonrpc2.ID]*pending
	wg   sync.WaitGroup
}

type pending struct {
	cancel   context.CancelFunc
	answered bool
}

// start registers id and returns the request's context; ok is false when
// a request with the same id is still running.
func (f *inflight) start(parent context.Context, id jsonrpc2.ID) (ctx context.Context, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, dup := f.reqs[id]; dup {
		return nil, false
	}
	if f.reqs == nil {
		f.reqs = map[jsonrpc2.ID]*pending{}
	}
	ctx, cancel := context.WithCancel(parent)
	f.reqs[id] = &pending{cancel: cancel}
	f.wg.Add(1)
	return ctx, true
}

// running reports whether a request with id is still running.
func (f *inflight) running(id jsonrpc2.ID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.reqs[id]
	return ok
}

// finish unregisters id and reports whether the handler still owes the
// reply (false when a cancel has answered already). The caller sends that
// reply, then calls done.
func (f *inflight) finish(id jsonrpc2.ID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.reqs[id]
	delete(f.reqs, id)
	if p == nil {
		return false
	}
	p.cancel()
	owed := !p.answered
	p.answered = true
	return owed
}

// done marks one started request as answered; wait returns once every
// started request is done.
func (f *inflight) done() { f.wg.Done() }

// cancel cancels id's context and reports whether the caller must now send
// the -32800 answer (false for unknown or already answered ids).
func (f *inflight) cancel(id jsonrpc2.ID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.reqs[id]
	if p == nil || p.answered {
		return false
	}
	p.answered = true
	p.cancel()
	return true
}

// cancelAll cancels every running request without answering it; used when
// the connection ends.
func (f *inflight) cancelAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.reqs {
		p.cancel()
	}
}

// wait blocks until every started request has finished and its answer
// has been written.
func (f *inflight) wait() { f.wg.Wait() }

// cancelParams are the params of $/cancelRequest (LSP) and of
// notifications/cancelled (MCP, requestId).
type cancelParams struct {
	ID        *jsonrpc2.ID `json:"id"`
	RequestID *jsonrpc2.ID `json:"requestId"`
	Reason    string       `json:"reason,omitempty"`
}
