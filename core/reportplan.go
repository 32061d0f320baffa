package core

import (
	"errors"
	"fmt"

	"github.com/acctpool/acctpool/core/internal/policy"
	"github.com/acctpool/acctpool/core/verdict"
)

// planStep is one thing Report does after a failed response.
type planStep uint8

// The steps of a report plan.
const (
	// planReturn hands the failing response to the caller.
	planReturn planStep = iota
	// planRefreshHere refreshes the route's token and retries on it.
	planRefreshHere
	// planProbeQuota polls the account's quota, then plans again.
	planProbeQuota
	// planMoveOn selects the next account, excluding those tried.
	planMoveOn
	// planHold answers 429 with Retry-After; the session keeps its account.
	planHold
)

// reportFacts are what the server knows about the route that failed: its
// kind from the snapshot, whether a sticky session lives on it, and what
// the route's ticket (or, without one, the echoed route) says happened.
type reportFacts struct {
	kind        RouteKind
	sticky      bool
	authRetried bool
	replayable  bool
	// apiWaiting is set when API-key routes exist but main's OAuth quota
	// is not yet known to be spent.
	apiWaiting bool
	// status names the failure for messages ("429", "network error").
	status string
}

// reportOutcome is what the I/O of earlier steps found.
type reportOutcome struct {
	// refreshFailed is the error of the route's token refresh.
	refreshFailed error
	// probed is set after the quota probe; probeFailed is its error and
	// probe the sticky decision on the fresh snapshot.
	probed      bool
	probeFailed error
	probe       policy.Judgement
	// noneCanServe is set when the move found no account.
	noneCanServe bool
}

// reportPlan is the next step and what it needs.
type reportPlan struct {
	step planStep
	// confirmMain polls main before the move: a spent main opens API-key
	// routes.
	confirmMain bool
	// migrate moves a sticky session to a new account.
	migrate bool
	// apiIfNone lets a migrating session's rate limit go to an API-key
	// route when no OAuth account is left and main is confirmed spent.
	apiIfNone bool
	// why is the plan's explanation: the result's reason for a return or
	// a hold, the cause a move names in the next route's reason.
	why string
	// hold is the sticky policy.Judgement the hold answers with.
	hold policy.Judgement
}

// planReport is the one decision of what a failed response leads to
// (BEHAVIOUR.md §5.2, §5.4): a pure function of the settings-shaped
// effect, the facts about the route and the outcome of the I/O done so
// far. Report carries the plan out and, after each I/O, asks again.
func planReport(rf reportFacts, v verdict.Verdict, eff verdict.Effect, out reportOutcome) reportPlan {
	if !rf.replayable {
		return reportPlan{step: planReturn, why: "request body cannot be replayed; response returned"}
	}
	if rf.sticky {
		return planSticky(rf, v, eff, out)
	}
	canRefresh := eff.RefreshAndRetry && (rf.kind == KindMain || rf.kind == KindOAuth) && !rf.authRetried
	note := ""
	if out.noneCanServe {
		note = " and no other account can serve"
	}
	switch {
	case out.refreshFailed != nil:
		return reportPlan{step: planReturn, why: fmt.Sprintf("%s is %s%s; token refresh failed: %s: response returned", rf.status, v.Class, note, shorten(out.refreshFailed.Error(), 200))}
	case !eff.Fallback && canRefresh:
		return reportPlan{step: planRefreshHere}
	case !eff.Fallback:
		return reportPlan{step: planReturn, why: fmt.Sprintf("%s is %s: response returned", rf.status, v.Class)}
	case out.noneCanServe && canRefresh:
		// Ordered modes move first (a 401 such as "OAuth not allowed for
		// this organization" is not cured by a refresh); only when no
		// account can take the request is the route's token refreshed.
		return reportPlan{step: planRefreshHere}
	case out.noneCanServe:
		return reportPlan{step: planReturn, why: fmt.Sprintf("%s is %s and no other account can serve: response returned", rf.status, v.Class)}
	}
	return reportPlan{step: planMoveOn, confirmMain: eff.ProbeQuota && rf.kind == KindMain && rf.apiWaiting, why: rf.status}
}

// planSticky is planReport for a sticky session: a 401 refreshes and
// retries once on the same account, a second 401 or a refresh token that
// needs a re-login migrates; a rate limit probes the quota and holds,
// keeps or migrates as the fresh snapshot says; any other failure in
// fallbackOn migrates, and everything else keeps the affinity.
func planSticky(rf reportFacts, v verdict.Verdict, eff verdict.Effect, out reportOutcome) reportPlan {
	oauth := rf.kind == KindMain || rf.kind == KindOAuth
	migrate := func(why string, api bool) reportPlan {
		return reportPlan{step: planMoveOn, migrate: true, apiIfNone: api, why: why}
	}
	switch {
	case out.noneCanServe:
		return reportPlan{step: planReturn, why: fmt.Sprintf("%s is %s and no other account can serve: response returned", rf.status, v.Class)}
	case out.refreshFailed != nil && errors.Is(out.refreshFailed, ErrInvalidGrant):
		return migrate("401 and the refresh token needs a re-login", false)
	case out.refreshFailed != nil:
		return reportPlan{step: planReturn, why: "401 and token refresh failed; affinity kept: " + shorten(out.refreshFailed.Error(), 200)}
	case eff.RefreshAndRetry && oauth && !rf.authRetried:
		return reportPlan{step: planRefreshHere}
	case eff.RefreshAndRetry && oauth:
		return migrate("second 401 after a token refresh", false)
	case !eff.Fallback:
		return reportPlan{step: planReturn, why: fmt.Sprintf("%s is %s: affinity kept, response returned", rf.status, v.Class)}
	case !eff.ProbeQuota:
		return migrate(fmt.Sprintf("%s is %s", rf.status, v.Class), false)
	case !out.probed:
		return reportPlan{step: planProbeQuota}
	case out.probeFailed != nil:
		return reportPlan{step: planReturn, why: "rate limited; quota check failed, so affinity kept: " + shorten(out.probeFailed.Error(), 200)}
	case out.probe.Hold:
		return reportPlan{step: planHold, hold: out.probe, why: "rate limited; " + out.probe.Text() + ": holding the session on its account"}
	case out.probe.Usable:
		return reportPlan{step: planReturn, why: "rate limited but quota not exhausted: affinity kept, response returned"}
	}
	return migrate("rate limited: "+out.probe.Text(), true)
}
