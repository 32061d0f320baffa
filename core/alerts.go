package core

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/acctpool/acctpool/core/internal/policy"
	json "github.com/goccy/go-json"
)

// Alert is the news that an account has just entered needs-re-login: its
// refresh token was rejected for good, and only the user can bring it back.
// It carries no credential, so it may go to logs, hosts and webhooks.
type Alert struct {
	AccountID string `json:"accountId"`
	Label     string `json:"label,omitempty"`
	// Reason is policy.ReasonNeedsRelogin.
	Reason string `json:"reason"`
	// Since is when the rejection was recorded, epoch ms; 0 if unknown.
	Since int64 `json:"since,omitempty"`
	// Fix is what the user runs to bring the account back.
	Fix string `json:"fix"`
}

// reloginChanges compares the views before and after a change. It returns
// an alert for every account that needs a re-login after it and did not
// before (an account absent before counts as not needing one), and the ids
// of the accounts that needed one before and no longer do (a new login, or
// the journal of a rotation a killed process had not saved, replayed:
// BEHAVIOUR.md §1.8), both in the order of after. It is the one definition
// of entering and leaving needs-re-login.
func reloginChanges(before, after []AccountView) (entered []Alert, left []string) {
	was := map[string]bool{}
	for _, v := range before {
		was[v.ID] = v.NeedsRelogin
	}
	for _, v := range after {
		switch {
		case was[v.ID] && !v.NeedsRelogin:
			left = append(left, v.ID)
		case v.NeedsRelogin && !was[v.ID]:
			a := Alert{AccountID: v.ID, Label: v.Label, Reason: policy.ReasonNeedsRelogin.String(), Fix: "acctpool login --replace " + v.ID}
			if v.Main {
				a.Fix = "log in to the host again (opencode: opencode auth login)"
			}
			if v.LastRefreshError != nil {
				a.Since = v.LastRefreshError.CheckedAt
			}
			entered = append(entered, a)
		}
	}
	return entered, left
}

// AlertWatchOptions configure an AlertWatch.
type AlertWatchOptions struct {
	// Logger receives one warning per alert; nil discards.
	Logger *slog.Logger
	// HTTP posts to the webhook; nil means a client with a 10 s timeout
	// that does not follow redirects.
	HTTP Doer
}

// AlertWatch turns changes of the pool into alerts, each once: it
// remembers the views it saw last, logs every new alert at warn level with
// the account's label and the fix, and posts it to the config's
// alerts.webhook URL, if set. An account that leaves needs-re-login is
// logged once at info level, so a log that said an account was dead also
// says when it came back.
type AlertWatch struct {
	eng  *Engine
	log  *slog.Logger
	http Doer

	mu   sync.Mutex
	last []AccountView
	wg   sync.WaitGroup
}

// NewAlertWatch returns a watch over eng's accounts. Its first Check
// reports every account that needs a re-login at that moment.
func NewAlertWatch(eng *Engine, opts AlertWatchOptions) *AlertWatch {
	w := &AlertWatch{eng: eng, log: opts.Logger, http: opts.HTTP}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.http == nil {
		w.http = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return w
}

// Check reads the accounts, returns the alerts since the last Check, logs
// them and starts their webhook deliveries (see Wait). A read failure is
// logged and yields no alerts; the next Check compares with the last views
// it could read.
func (w *AlertWatch) Check(ctx context.Context) []Alert {
	views, err := w.eng.ListAccounts(ctx)
	if err != nil {
		w.log.Warn("alerts: read accounts", "err", err)
		return nil
	}
	w.mu.Lock()
	alerts, recovered := reloginChanges(w.last, views)
	w.last = views
	w.mu.Unlock()
	for _, id := range recovered {
		w.log.Info("account no longer needs re-login; it is routed again", "account", id)
	}
	if len(alerts) == 0 {
		return nil
	}
	for _, a := range alerts {
		attrs := []any{"account", a.AccountID, "label", a.Label, "fix", a.Fix}
		if a.Since > 0 {
			attrs = append(attrs, "since", time.UnixMilli(a.Since).UTC())
		}
		w.log.Warn("account needs re-login", attrs...)
	}
	if hook := w.webhook(ctx); hook != "" {
		for _, a := range alerts {
			w.wg.Add(1)
			go func() {
				defer w.wg.Done()
				if err := postAlert(ctx, w.http, w.eng.Clock(), hook, a); err != nil {
					w.log.Warn("alerts: webhook", "account", a.AccountID, "err", err)
				}
			}()
		}
	}
	return alerts
}

// Wait blocks until the webhook deliveries started so far have ended.
func (w *AlertWatch) Wait() { w.wg.Wait() }

// webhook is the config's alerts.webhook, "" when unset or unusable.
func (w *AlertWatch) webhook(ctx context.Context) string {
	snap, err := w.eng.Store().Load(ctx)
	if err != nil || snap.Config == nil {
		return ""
	}
	var alerts struct {
		Webhook string `json:"webhook"`
	}
	if raw, ok := snap.Config.Extra["alerts"]; !ok || json.Unmarshal(raw, &alerts) != nil {
		return ""
	}
	hook := strings.TrimSpace(alerts.Webhook)
	if hook == "" {
		return ""
	}
	u, err := url.Parse(hook)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		// The URL itself may hold a secret (many webhooks do), so it is
		// not logged.
		w.log.Warn("alerts: alerts.webhook is not an http(s) URL without credentials; no webhook is called")
		return ""
	}
	return hook
}

// Webhook delivery is bounded: three attempts, 1 s and 2 s apart on the
// engine's clock; only network failures, 429 and 5xx are retried.
const (
	alertAttempts   = 3
	alertRetryDelay = time.Second
)

// postAlert delivers one alert as a JSON POST.
func postAlert(ctx context.Context, doer Doer, clock Clock, hook string, a Alert) error {
	body, err := json.Marshal(struct {
		Event string `json:"event"`
		Alert
	}{"accounts/alert", a})
	if err != nil {
		return err
	}
	var last error
	for attempt := 1; attempt <= alertAttempts; attempt++ {
		if attempt > 1 {
			if err := clock.Sleep(ctx, alertRetryDelay<<(attempt-2)); err != nil {
				return err
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook, bytes.NewReader(body))
		if err != nil {
			return errors.New("cannot build the webhook request")
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := doer.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			last = errors.New("webhook unreachable")
			continue
		}
		resp.Body.Close()
		switch {
		case resp.StatusCode >= 200 && resp.StatusCode < 300:
			return nil
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
			last = fmt.Errorf("webhook answered %d", resp.StatusCode)
		default:
			return fmt.Errorf("webhook answered %d", resp.StatusCode)
		}
	}
	return fmt.Errorf("%w after %d attempts", last, alertAttempts)
}
