package policy

import (
	"testing"
	"time"

	"github.com/acctpool/acctpool/core/verdict"
	"github.com/stretchr/testify/assert"
)

func TestPlanReport(t *testing.T) {
	rl := verdict.Verdict{Class: verdict.ClassRateLimited}
	auth := verdict.Verdict{Class: verdict.ClassAuthExpired}
	org := verdict.Verdict{Class: verdict.ClassOrgPolicy}
	down := verdict.Verdict{Class: verdict.ClassTransient}
	messages := func(v verdict.Verdict, status int, fallbackOn ...int) verdict.Effect {
		s := Defaults()
		if len(fallbackOn) > 0 {
			s.FallbackOn = fallbackOn
		}
		return EffectFor(s, verdict.Failure{Source: verdict.SourceMessages, Status: status}, v)
	}
	main := ReportFacts{Kind: KindMain, Replayable: true, Status: "429"}
	oauth := ReportFacts{Kind: KindOAuth, Replayable: true, Status: "401"}
	api := ReportFacts{Kind: KindAPI, Replayable: true, Status: "401"}
	sticky := ReportFacts{Kind: KindOAuth, Sticky: true, Replayable: true, Status: "429"}
	retried := oauth
	retried.AuthRetried = true
	stickyRetried := sticky
	stickyRetried.AuthRetried = true
	waiting := main
	waiting.APIWaiting = true
	streamed := main
	streamed.Replayable = false
	// What core reads from a token-endpoint 503 and from an invalid_grant
	// (core's failureOf).
	refreshErr := IOFailure{Failed: true, Message: "token endpoint 503"}
	relogin := IOFailure{Failed: true, Message: "refresh: invalid_grant", NeedsRelogin: true}
	hold := Judgement{Usable: true, Hold: true, Reason: ReasonResetsShortly, Until: policyNow.Add(10 * time.Minute)}
	migrate := Judgement{Reason: ReasonWindowSpent, Detail: "seven-day quota exhausted"}

	tests := []struct {
		name    string
		rf      ReportFacts
		v       verdict.Verdict
		eff     verdict.Effect
		out     ReportOutcome
		step    PlanStep
		confirm bool
		migrate bool
		api     bool
	}{
		{"a request that cannot be replayed returns", streamed, rl, messages(rl, 429), ReportOutcome{}, PlanReturn, false, false, false},
		{"ordered 429 moves on", main, rl, messages(rl, 429), ReportOutcome{}, PlanMoveOn, false, false, false},
		{"main 429 with API-key routes waiting confirms main first", waiting, rl, messages(rl, 429), ReportOutcome{}, PlanMoveOn, true, false, false},
		{"ordered 5xx returns", main, down, messages(down, 503), ReportOutcome{}, PlanReturn, false, false, false},
		{"a status outside fallbackOn returns", main, rl, messages(rl, 429, 403), ReportOutcome{}, PlanReturn, false, false, false},
		{"a status added to fallbackOn moves", main, down, messages(down, 529, 401, 403, 429, 529), ReportOutcome{}, PlanMoveOn, false, false, false},
		{"ordered 401 moves on first", oauth, auth, messages(auth, 401), ReportOutcome{}, PlanMoveOn, false, false, false},
		{"ordered 401 with no other account refreshes here", oauth, auth, messages(auth, 401), ReportOutcome{NoneCanServe: true}, PlanRefreshHere, false, false, false},
		{"ordered 401 outside fallbackOn refreshes here", oauth, auth, messages(auth, 401, 429), ReportOutcome{}, PlanRefreshHere, false, false, false},
		{"ordered 401 after a refresh with no other account returns", retried, auth, messages(auth, 401), ReportOutcome{NoneCanServe: true}, PlanReturn, false, false, false},
		{"ordered refresh failure returns", oauth, auth, messages(auth, 401), ReportOutcome{NoneCanServe: true, RefreshFailed: refreshErr}, PlanReturn, false, false, false},
		{"an API-key route's 401 never refreshes", api, auth, messages(auth, 401), ReportOutcome{NoneCanServe: true}, PlanReturn, false, false, false},
		{"sticky 401 refreshes here", sticky, auth, messages(auth, 401), ReportOutcome{}, PlanRefreshHere, false, false, false},
		{"sticky second 401 migrates", stickyRetried, auth, messages(auth, 401), ReportOutcome{}, PlanMoveOn, false, true, false},
		{"sticky refresh that needs a re-login migrates", sticky, auth, messages(auth, 401), ReportOutcome{RefreshFailed: relogin}, PlanMoveOn, false, true, false},
		{"sticky refresh failure keeps the affinity", sticky, auth, messages(auth, 401), ReportOutcome{RefreshFailed: refreshErr}, PlanReturn, false, false, false},
		{"sticky 403 migrates", sticky, org, messages(org, 403), ReportOutcome{}, PlanMoveOn, false, true, false},
		{"sticky 5xx keeps the affinity", sticky, down, messages(down, 503), ReportOutcome{}, PlanReturn, false, false, false},
		{"sticky 429 probes the quota", sticky, rl, messages(rl, 429), ReportOutcome{}, PlanProbeQuota, false, false, false},
		{"sticky 429 whose probe failed keeps the affinity", sticky, rl, messages(rl, 429), ReportOutcome{Probed: true, ProbeFailed: refreshErr}, PlanReturn, false, false, false},
		{"sticky 429 with a reset within 15 minutes holds", sticky, rl, messages(rl, 429), ReportOutcome{Probed: true, Probe: hold}, PlanHold, false, false, false},
		{"sticky 429 not exhausted keeps the affinity", sticky, rl, messages(rl, 429), ReportOutcome{Probed: true, Probe: Judgement{Usable: true}}, PlanReturn, false, false, false},
		{"sticky 429 spent migrates, API-key routes allowed", sticky, rl, messages(rl, 429), ReportOutcome{Probed: true, Probe: migrate}, PlanMoveOn, false, true, true},
		{"sticky move with no account left returns", sticky, org, messages(org, 403), ReportOutcome{NoneCanServe: true}, PlanReturn, false, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := PlanReport(tc.rf, tc.v, tc.eff, tc.out)
			assert.Equal(t, tc.step, p.Step)
			assert.Equal(t, tc.confirm, p.ConfirmMain, "confirmMain")
			assert.Equal(t, tc.migrate, p.Migrate, "migrate")
			assert.Equal(t, tc.api, p.APIIfNone, "apiIfNone")
			if p.Step == PlanReturn || p.Step == PlanHold || p.Step == PlanMoveOn {
				assert.NotEmpty(t, p.Why)
			}
		})
	}
}
