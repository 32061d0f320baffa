package plugins

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tetratelabs/wazero/sys"

	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/core/verdict"
	"github.com/acctpool/acctpool/hostfuncs"
	"github.com/acctpool/acctpool/plugins/internal/abi"
)

// errNoOpinion is not a fault: the guest returned len 0.
var errNoOpinion = errors.New("no opinion")

// errCanceled is not a fault either: the caller's context ended the call.
var errCanceled = errors.New("caller canceled")

// classify asks p about f. It returns the plugin's verdict, errNoOpinion,
// errCanceled, or a fault already recorded in p's status.
func (p *plugin) classify(ctx context.Context, rc *redactedCall, builtin verdict.Verdict) (verdict.Verdict, error) {
	if !p.allow() {
		return verdict.Verdict{}, errNoOpinion
	}
	p.calls.Add(1)
	cctx, cancel := context.WithTimeout(ctx, p.limits.CallTimeout)
	defer cancel()
	in, kind, err := p.acquire(cctx)
	if err != nil {
		if ctx.Err() != nil {
			return verdict.Verdict{}, errCanceled
		}
		p.fail(kind, err, rc.known)
		return verdict.Verdict{}, err
	}
	out, kind, err := p.callInput(cctx, in, rc)
	p.release(ctx, in, err == nil || errors.Is(err, errNoOpinion))
	switch {
	case err == nil || errors.Is(err, errNoOpinion):
		p.succeed()
		if err != nil {
			return verdict.Verdict{}, err
		}
	case kind == FaultTimeout && ctx.Err() != nil:
		return verdict.Verdict{}, errCanceled
	default:
		p.fail(kind, err, rc.known)
		return verdict.Verdict{}, err
	}
	// The reason reaches RPC results and the state file: it is plugin
	// output like any other, so it is redacted.
	v := verdict.Verdict{Class: out.Class, RetryAfter: builtin.RetryAfter, Reason: secret.Redact(out.Reason, rc.known...), DecidedBy: "plugin:" + p.m.ID}
	if out.RetryAfter != nil {
		v.RetryAfter = *out.RetryAfter
	}
	if v.Reason == "" {
		v.Reason = builtin.Reason
	}
	return v, nil
}

// callInput runs one classification of rc on in: encode, write (calling
// errclass_alloc only when the input outgrew the guest buffer), one
// errclass_classify call, then copy and decode the output.
func (p *plugin) callInput(ctx context.Context, in *instance, rc *redactedCall) (abi.Output, FaultKind, error) {
	in.calls++
	in.log.Reset()
	in.red.known = rc.known
	defer func() { in.red.known = nil }()
	defer p.reportDropped(in)
	ctx = hostfuncs.WithCallLog(ctx, &in.log)
	var err error
	if in.input, err = encodeInput(in.input[:0], &rc.in, p.limits.MaxInputBytes); err != nil {
		return abi.Output{}, FaultInputTooLarge, err
	}
	n := uint32(len(in.input))
	if n > in.bufCap {
		in.stack[0] = uint64(n)
		if err := in.alloc.CallWithStack(ctx, in.stack[:]); err != nil {
			kind := p.callFault(ctx, in, err)
			return abi.Output{}, kind, p.callErr(in, kind, "errclass_alloc", err)
		}
		ptr := uint32(in.stack[0])
		if ptr == 0 || uint64(ptr)+uint64(n) > uint64(in.mem.Size()) {
			return abi.Output{}, FaultAlloc, fmt.Errorf("errclass_alloc(%d) returned %#x, outside memory of %d bytes", n, ptr, in.mem.Size())
		}
		in.bufPtr, in.bufCap = ptr, n
	}
	if !in.mem.Write(in.bufPtr, in.input) {
		return abi.Output{}, FaultAlloc, fmt.Errorf("guest buffer %#x+%d is outside memory", in.bufPtr, n)
	}
	in.stack[0], in.stack[1] = uint64(in.bufPtr), uint64(n)
	if err := in.classify.CallWithStack(ctx, in.stack[:]); err != nil {
		kind := p.callFault(ctx, in, err)
		return abi.Output{}, kind, p.callErr(in, kind, "errclass_classify", err)
	}
	if size := in.mem.Size(); size > memoryGrowthFactor*in.baseSize {
		return abi.Output{}, FaultMemory, fmt.Errorf("linear memory grew to %d KiB, over %dx its %d KiB after initialisation", size>>10, memoryGrowthFactor, in.baseSize>>10)
	}
	packed := in.stack[0]
	outPtr, outLen := uint32(packed>>32), uint32(packed)
	if outLen == 0 {
		return abi.Output{}, "", errNoOpinion
	}
	if outLen > uint32(p.limits.MaxOutputBytes) {
		return abi.Output{}, FaultBadOutput, fmt.Errorf("output of %d bytes exceeds the %d-byte cap", outLen, p.limits.MaxOutputBytes)
	}
	raw, ok := in.mem.Read(outPtr, outLen)
	if !ok {
		return abi.Output{}, FaultBadOutput, fmt.Errorf("output %#x+%d is outside memory of %d bytes", outPtr, outLen, in.mem.Size())
	}
	// Read is a view of guest memory; DecodeOutput copies what it keeps.
	out, err := abi.DecodeOutput(raw)
	if err != nil {
		return abi.Output{}, FaultBadOutput, err
	}
	return out, "", nil
}

// encodeInput encodes the input JSON within max bytes, cutting the body
// further when the whole does not fit.
func encodeInput(dst []byte, in *abi.Input, limit int) ([]byte, error) {
	dst = in.Append(dst, abi.MaxBody)
	if len(dst) <= limit {
		return dst, nil
	}
	body := len(in.Body) - (len(dst) - limit)
	dst = in.Append(dst[:0], max(body, 0))
	if len(dst) > limit {
		// Escaping can make the cut body longer than its bytes; drop it.
		dst = in.Append(dst[:0], 0)
	}
	if len(dst) > limit {
		return dst, fmt.Errorf("input of %d bytes exceeds the %d-byte cap without its body", len(dst), limit)
	}
	return dst, nil
}

// callFault classifies a failed guest call: our deadline (or the caller's
// cancellation), the stack bound, or another trap.
func (p *plugin) callFault(ctx context.Context, in *instance, err error) FaultKind {
	var exit *sys.ExitError
	if errors.As(err, &exit) && (exit.ExitCode() == sys.ExitCodeDeadlineExceeded || exit.ExitCode() == sys.ExitCodeContextCanceled) {
		return FaultTimeout
	}
	if stackOverflowed(in, err) {
		return FaultStackOverflow
	}
	if ctx.Err() != nil {
		return FaultTimeout
	}
	return FaultTrap
}

// stackOverflowed reports whether a trap was the stack bound: the guard's
// counter is past the budget (the guard fired), or wazero ran out of its
// own stack first (one enormous frame).
func stackOverflowed(in *instance, err error) bool {
	if in.stackBytes != nil && uint32(in.stackBytes.Get()) > MaxStackBytes {
		return true
	}
	return strings.Contains(firstLine(err.Error()), "wasm error: stack overflow")
}

// callErr makes a one-line error of a failed guest call, with the tail of
// the guest's output (a Go panic message) when there is one.
func (p *plugin) callErr(in *instance, kind FaultKind, fn string, err error) error {
	var exit *sys.ExitError
	if errors.As(err, &exit) && (exit.ExitCode() == sys.ExitCodeDeadlineExceeded) {
		return fmt.Errorf("%w: %s ran past its %v deadline", ErrPluginTimeout, fn, p.limits.CallTimeout)
	}
	if kind == FaultStackOverflow {
		return fmt.Errorf("%s: call depth exceeded the %d KiB stack bound (unbounded recursion?)%s", fn, MaxStackBytes>>10, in.out.suffix(in.red.redact))
	}
	return fmt.Errorf("%s: %s%s", fn, firstLine(err.Error()), in.out.suffix(in.red.redact))
}

// reportDropped logs, once per call, how many guest log lines the per-call
// limits dropped.
func (p *plugin) reportDropped(in *instance) {
	if d := in.log.Dropped(); d > 0 {
		p.log.Warn("plugin log lines dropped", "plugin", p.m.ID, "dropped", d)
	}
}
