package verdict

import "time"

// The backoff schedule constants of BEHAVIOUR.md §2.5 and §3.5.
const (
	refreshNetworkDelay  = 5 * time.Minute
	refreshTransientBase = 5 * time.Minute
	refreshTransientMax  = 60 * time.Minute
	refreshLongDelay     = 24 * time.Hour
	quotaTransientBase   = 60 * time.Second
	quotaTransientMax    = 15 * time.Minute
	quotaFlatDelay       = 5 * time.Minute
	maxDoublings         = 6
)

// RefreshBackoffDelay is the one refresh backoff schedule: how long after a
// token-endpoint failure the account's refresh is latched. retryCount is 1
// for the first failure of a series.
//
//	Retry-After given                     exactly that
//	transient, network (no status)        5 min
//	transient, 429 or 5xx                 5, 10, 20, 40, 60, 60... min
//	anything else (long or permanent)     24 h
func RefreshBackoffDelay(kind RefreshBackoffKind, retryAfter time.Duration, network bool, retryCount int) time.Duration {
	if kind == RefreshBackoffNone {
		return 0
	}
	if retryAfter > 0 {
		return retryAfter
	}
	if kind != RefreshBackoffTransient {
		return refreshLongDelay
	}
	if network {
		return refreshNetworkDelay
	}
	return doubling(refreshTransientBase, refreshTransientMax, retryCount)
}

// QuotaBackoffDelay is the one quota backoff schedule: 60 s doubling to
// 15 min for transient failures, 5 min flat for the rest. Retry-After is
// deliberately not used, as upstream.
func QuotaBackoffDelay(kind QuotaBackoffKind, retryCount int) time.Duration {
	switch kind {
	case QuotaBackoffTransient:
		return doubling(quotaTransientBase, quotaTransientMax, retryCount)
	case QuotaBackoffFlat:
		return quotaFlatDelay
	default:
		return 0
	}
}

func doubling(base, max time.Duration, retryCount int) time.Duration {
	n := retryCount - 1
	if n < 0 {
		n = 0
	}
	if n > maxDoublings {
		n = maxDoublings
	}
	d := base << n
	if d > max {
		d = max
	}
	return d
}
