package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// ClaimPoll claims the usage poll of account id for interval: it returns
// true when no machine holds an unexpired claim (this Store now does, until
// the database's now() + interval), false when another claim runs. The
// database's clock judges expiry, so machines with skewed clocks agree.
func (s *Store) ClaimPoll(ctx context.Context, id string, interval time.Duration) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `INSERT INTO acctpool_poll_claim (account_id, claimed_until, claimed_by)
		VALUES ($1, now() + make_interval(secs => $2), $3)
		ON CONFLICT (account_id) DO UPDATE SET claimed_until = EXCLUDED.claimed_until, claimed_by = EXCLUDED.claimed_by
		WHERE acctpool_poll_claim.claimed_until <= now()
		RETURNING true`, id, interval.Seconds(), s.origin).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, s.connErr("claim the usage poll of "+id, err)
	}
	return ok, nil
}
