package core

// MergeHeaderQuota folds a snapshot harvested from response headers into
// the existing one, by the rules of upstream-core.md 3.6: headers may
// replace only the 5h and 7d windows (the later checkedAt wins; on a tie a
// poll beats headers), fallbackAdvised, and a bindingWindow that did not
// come from a poll. Scoped windows and extra usage are poll-owned and
// always kept. The result's source is "headers" and fieldSources records
// who owns each field. Neither argument is modified.
//
// It is [MergeQuota] for a header observation; it exists so that the state
// merge (see [MergeAccountState]) and the quota code name the same rule.
func MergeHeaderQuota(existing, headers *QuotaSnapshot) *QuotaSnapshot {
	if headers == nil {
		return cloneQuota(existing)
	}
	h := *headers
	h.Source = QuotaSourceHeaders
	return cloneQuota(MergeQuota(existing, &h))
}
