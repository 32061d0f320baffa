package policy

import (
	"fmt"
	"slices"

	"github.com/acctpool/acctpool/core/verdict"
)

// PlanStep is one thing Report does after a failed response.
type PlanStep uint8

// The steps of a report plan.
const (
	// PlanReturn hands the failing response to the caller.
	PlanReturn PlanStep = iota
	// PlanRefreshHere refreshes the route's token and retries on it.
	PlanRefreshHere
	// PlanProbeQuota polls the account's quota, then plans again.
	PlanProbeQuota
	// PlanMoveOn selects the next account, excluding those tried.
	PlanMoveOn
	// PlanHold answers 429 with Retry-After; the session keeps its account.
	PlanHold
)

// ReportFacts are what the server knows about the route that failed: its
// kind from the snapshot, whether a sticky session lives on it, and what
// the route's ticket (or, without one, the echoed route) says happened.
type ReportFacts struct {
	Kind        RouteKind
	Sticky      bool
	AuthRetried bool
	Replayable  bool
	// APIWaiting is set when API-key routes exist but main's OAuth quota
	// is not yet known to be spent.
	APIWaiting bool
	// Status names the failure for messages ("429", "network error").
	Status string
}

// ReportOutcome is what the I/O of earlier steps found.
type ReportOutcome struct {
	// RefreshFailed is what core read from the failure of the route's token
	// refresh (failed, message, needs re-login).
	RefreshFailed IOFailure
	// Probed is set after the quota probe; ProbeFailed is its failure and
	// Probe the sticky decision on the fresh snapshot.
	Probed      bool
	ProbeFailed IOFailure
	Probe       Judgement
	// NoneCanServe is set when the move found no account.
	NoneCanServe bool
}

// ReportPlan is the next step and what it needs.
type ReportPlan struct {
	Step PlanStep
	// ConfirmMain polls main before the move: a spent main opens API-key
	// routes.
	ConfirmMain bool
	// Migrate moves a sticky session to a new account.
	Migrate bool
	// APIIfNone lets a migrating session's rate limit go to an API-key
	// route when no OAuth account is left and main is confirmed spent.
	APIIfNone bool
	// Why is the plan's explanation: the result's reason for a return or
	// a hold, the cause a move names in the next route's reason.
	Why string
	// Hold is the sticky judgement the hold answers with.
	Hold Judgement
}

// PlanReport is the one decision of what a failed response leads to
// (BEHAVIOUR.md §5.2, §5.4): a pure function of the settings-shaped
// effect, the facts about the route and the outcome of the I/O done so
// far. Report carries the plan out and, after each I/O, asks again.
func PlanReport(rf ReportFacts, v verdict.Verdict, eff verdict.Effect, out ReportOutcome) ReportPlan {
	if !rf.Replayable {
		return ReportPlan{Step: PlanReturn, Why: "request body cannot be replayed; response returned"}
	}
	if rf.Sticky {
		return planSticky(rf, v, eff, out)
	}
	canRefresh := eff.RefreshAndRetry && (rf.Kind == KindMain || rf.Kind == KindOAuth) && !rf.AuthRetried
	note := ""
	if out.NoneCanServe {
		note = " and no other account can serve"
	}
	switch {
	case out.RefreshFailed.Failed:
		return ReportPlan{Step: PlanReturn, Why: fmt.Sprintf("%s is %s%s; token refresh failed: %s: response returned", rf.Status, v.Class, note, Shorten(out.RefreshFailed.Message, 200))}
	case !eff.Fallback && canRefresh:
		return ReportPlan{Step: PlanRefreshHere}
	case !eff.Fallback:
		return ReportPlan{Step: PlanReturn, Why: fmt.Sprintf("%s is %s: response returned", rf.Status, v.Class)}
	case out.NoneCanServe && canRefresh:
		// Ordered modes move first (a 401 such as "OAuth not allowed for
		// this organization" is not cured by a refresh); only when no
		// account can take the request is the route's token refreshed.
		return ReportPlan{Step: PlanRefreshHere}
	case out.NoneCanServe:
		return ReportPlan{Step: PlanReturn, Why: fmt.Sprintf("%s is %s and no other account can serve: response returned", rf.Status, v.Class)}
	}
	return ReportPlan{Step: PlanMoveOn, ConfirmMain: eff.ProbeQuota && rf.Kind == KindMain && rf.APIWaiting, Why: rf.Status}
}

// planSticky is PlanReport for a sticky session: a 401 refreshes and
// retries once on the same account, a second 401 or a refresh token that
// needs a re-login migrates; a rate limit probes the quota and holds,
// keeps or migrates as the fresh snapshot says; any other failure in
// fallbackOn migrates, and everything else keeps the affinity.
func planSticky(rf ReportFacts, v verdict.Verdict, eff verdict.Effect, out ReportOutcome) ReportPlan {
	oauth := rf.Kind == KindMain || rf.Kind == KindOAuth
	migrate := func(why string, api bool) ReportPlan {
		return ReportPlan{Step: PlanMoveOn, Migrate: true, APIIfNone: api, Why: why}
	}
	switch {
	case out.NoneCanServe:
		return ReportPlan{Step: PlanReturn, Why: fmt.Sprintf("%s is %s and no other account can serve: response returned", rf.Status, v.Class)}
	case out.RefreshFailed.NeedsRelogin:
		return migrate("401 and the refresh token needs a re-login", false)
	case out.RefreshFailed.Failed:
		return ReportPlan{Step: PlanReturn, Why: "401 and token refresh failed; affinity kept: " + Shorten(out.RefreshFailed.Message, 200)}
	case eff.RefreshAndRetry && oauth && !rf.AuthRetried:
		return ReportPlan{Step: PlanRefreshHere}
	case eff.RefreshAndRetry && oauth:
		return migrate("second 401 after a token refresh", false)
	case !eff.Fallback:
		return ReportPlan{Step: PlanReturn, Why: fmt.Sprintf("%s is %s: affinity kept, response returned", rf.Status, v.Class)}
	case !eff.ProbeQuota:
		return migrate(fmt.Sprintf("%s is %s", rf.Status, v.Class), false)
	case !out.Probed:
		return ReportPlan{Step: PlanProbeQuota}
	case out.ProbeFailed.Failed:
		return ReportPlan{Step: PlanReturn, Why: "rate limited; quota check failed, so affinity kept: " + Shorten(out.ProbeFailed.Message, 200)}
	case out.Probe.Hold:
		return ReportPlan{Step: PlanHold, Hold: out.Probe, Why: "rate limited; " + out.Probe.Text() + ": holding the session on its account"}
	case out.Probe.Usable:
		return ReportPlan{Step: PlanReturn, Why: "rate limited but quota not exhausted: affinity kept, response returned"}
	}
	return migrate("rate limited: "+out.Probe.Text(), true)
}

// EffectFor is the row for a failure under the user's settings: a messages
// failure moves a request only when its row says so and its status is in
// fallbackOn (or the stream opened with rate_limit_error); a status the
// user added beyond the defaults always moves, since that is what they
// asked for (upstream moves on any listed status). This is the one place
// where a status code meets the effects (BEHAVIOUR.md §4.2).
func EffectFor(s Settings, f verdict.Failure, v verdict.Verdict) verdict.Effect {
	eff := verdict.EffectOf(f.Source, v)
	if f.Source != verdict.SourceMessages {
		return eff
	}
	listed := slices.Contains(s.FallbackOn, f.Status)
	eff.Fallback = (eff.Fallback && (listed || f.StreamRateLimit)) || (listed && !slices.Contains(DefaultFallbackOn, f.Status))
	return eff
}
