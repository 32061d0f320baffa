package core

import (
	"slices"

	"github.com/acctpool/acctpool/core/internal/policy"
	"github.com/acctpool/acctpool/core/verdict"
)

// effectFor is the row for a failure under the user's settings: a messages
// failure moves a request only when its row says so and its status is in
// fallbackOn (or the stream opened with rate_limit_error); a status the
// user added beyond the defaults always moves, since that is what they
// asked for (upstream moves on any listed status). This is the one place
// where a status code meets the effects (BEHAVIOUR.md §4.2).
func effectFor(s policy.Settings, f verdict.Failure, v verdict.Verdict) verdict.Effect {
	eff := verdict.EffectOf(f.Source, v)
	if f.Source != verdict.SourceMessages {
		return eff
	}
	listed := slices.Contains(s.FallbackOn, f.Status)
	eff.Fallback = (eff.Fallback && (listed || f.StreamRateLimit)) || (listed && !slices.Contains(policy.DefaultFallbackOn, f.Status))
	return eff
}
