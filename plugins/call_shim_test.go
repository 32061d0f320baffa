package plugins

import (
	"context"

	"github.com/acctpool/acctpool/core/verdict"
	"github.com/acctpool/acctpool/plugins/internal/abi"
)

// call drives one instance directly, as benchmarks and soak tests do: it
// builds the redacted input of f (no known secrets) and runs callInput.
func (p *plugin) call(ctx context.Context, in *instance, f verdict.Failure, builtin verdict.Verdict) (abi.Output, FaultKind, error) {
	rc := redactedCall{in: abi.NewInput(f, builtin, nil)}
	return p.callInput(ctx, in, &rc)
}
