package pgstore

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// ClaimPoll claims the background usage poll of account id from now for
// interval: it returns true when no other Store holds an unexpired claim
// (this Store's own claims it may always renew), false when another
// machine polls the account in this interval. Times are the engines'
// clocks, so a test clock moves claims as it moves everything else;
// machines whose clocks disagree overlap by the difference at most.
func (s *Store) ClaimPoll(ctx context.Context, id string, now time.Time, interval time.Duration) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `INSERT INTO acctpool_poll_claim (account_id, claimed_until, claimed_by)
		VALUES ($1, $2, $3)
		ON CONFLICT (account_id) DO UPDATE SET claimed_until = EXCLUDED.claimed_until, claimed_by = EXCLUDED.claimed_by
		WHERE acctpool_poll_claim.claimed_until <= $4 OR acctpool_poll_claim.claimed_by = EXCLUDED.claimed_by
		RETURNING true`, id, now.Add(interval).UnixMilli(), s.origin, now.UnixMilli()).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, s.connErr("claim the usage poll of "+id, err)
	}
	return ok, nil
}
