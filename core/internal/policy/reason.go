package policy

// reason is why an account can or cannot serve a request. Decisions switch
// on the constant; its String (and the judgement's Text) is for people.
type Reason uint8

// The judgement's reasons.
const (
	// ReasonUsable: nothing stands in the way.
	ReasonUsable Reason = iota
	// ReasonEntryProblem: the stored entry cannot be used at all (no
	// refresh token, an unknown account type, a bad baseURL).
	ReasonEntryProblem
	// ReasonDisabled: the config says enabled: false.
	ReasonDisabled
	// ReasonNoCredentials: main's credentials were not handed over, or a
	// fallback has no access token where one is required.
	ReasonNoCredentials
	// ReasonAPIReserved: an API-key route spends paid credits and is used
	// only on evidence that main's OAuth quota is spent (BEHAVIOUR.md §5.1).
	ReasonAPIReserved
	// ReasonNotSticky: API-key routes take no part in sticky-balanced
	// assignment.
	ReasonNotSticky
	// ReasonNeedsRelogin: the refresh token was rejected for good.
	ReasonNeedsRelogin
	// ReasonRefreshBackoff: the token is due and its refresh is backed off.
	ReasonRefreshBackoff
	// ReasonRefreshFailed: the token refresh this request made failed.
	ReasonRefreshFailed
	// ReasonQuotaCheckFailed: the usage poll this request made failed and
	// nothing cached lets the account through.
	ReasonQuotaCheckFailed
	// ReasonQuotaUnknown: a standard window is unknown and
	// failClosedOnUnknownQuota is on.
	ReasonQuotaUnknown
	// ReasonBelowMinimum: a window is below quota.minimumRemaining.
	ReasonBelowMinimum
	// ReasonModelScope: the model's scoped weekly window is spent.
	ReasonModelScope
	// ReasonWindowSpent: the 5-hour or 7-day window is spent (0 %
	// remaining) until its reset, as a poll or a 429's headers said.
	ReasonWindowSpent
	// ReasonKillswitch: a window is below the killswitch threshold.
	ReasonKillswitch
	// ReasonMainQuotaBackedOff: no main quota is known, the main usage API
	// is backed off, and failClosedOnUnknownQuota is explicitly true.
	ReasonMainQuotaBackedOff
	// ReasonResetsShortly: a sticky session's 5-hour window is spent but
	// resets within 15 minutes; the session holds instead of migrating.
	ReasonResetsShortly
)

var reasonText = [...]string{
	ReasonUsable:             "usable",
	ReasonEntryProblem:       "entry cannot be used",
	ReasonDisabled:           "disabled",
	ReasonNoCredentials:      "no credentials",
	ReasonAPIReserved:        "API-key route: main quota not confirmed exhausted",
	ReasonNotSticky:          "API-key routes are not part of sticky-balanced assignment",
	ReasonNeedsRelogin:       "needs re-login",
	ReasonRefreshBackoff:     "refresh backoff",
	ReasonRefreshFailed:      "token refresh failed",
	ReasonQuotaCheckFailed:   "quota check failed",
	ReasonQuotaUnknown:       "quota unknown",
	ReasonBelowMinimum:       "quota below minimum",
	ReasonModelScope:         "weekly limit reached",
	ReasonWindowSpent:        "quota window spent",
	ReasonKillswitch:         "killswitch",
	ReasonMainQuotaBackedOff: "main quota API backed off and no quota known",
	ReasonResetsShortly:      "five-hour quota resets shortly",
}

// String names the reason for display.
func (r Reason) String() string {
	if int(r) < len(reasonText) {
		return reasonText[r]
	}
	return "unknown reason"
}

// Lasting reports whether the reason is about the account itself rather
// than this moment: such an account is not a route at all.
func (r Reason) Lasting() bool {
	switch r {
	case ReasonEntryProblem, ReasonDisabled, ReasonNoCredentials, ReasonNotSticky, ReasonNeedsRelogin:
		return true
	}
	return false
}
