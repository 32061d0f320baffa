package core

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/acctpool/acctpool/core/internal/anthropic"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/core/verdict"
)

// Endpoints are the upstream URLs. Zero values mean Anthropic's.
type Endpoints struct {
	Token     string
	Usage     string
	Profile   string
	Authorize string
	// Redirect is the OAuth redirect URI used by login.
	Redirect string
}

// Default upstream endpoints (BEHAVIOUR.md §2.1 and §3.1).
const (
	defaultTokenURL     = "https://platform.claude.com/v1/oauth/token"
	defaultUsageURL     = "https://api.anthropic.com/api/oauth/usage"
	defaultProfileURL   = "https://api.anthropic.com/api/oauth/profile"
	defaultAuthorizeURL = "https://claude.com/cai/oauth/authorize"
	defaultRedirectURL  = "https://platform.claude.com/oauth/code/callback"
)

func (e Endpoints) withDefaults() Endpoints {
	def := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	return Endpoints{
		Token:     def(e.Token, defaultTokenURL),
		Usage:     def(e.Usage, defaultUsageURL),
		Profile:   def(e.Profile, defaultProfileURL),
		Authorize: def(e.Authorize, defaultAuthorizeURL),
		Redirect:  def(e.Redirect, defaultRedirectURL),
	}
}

// Doer sends HTTP requests; *http.Client implements it.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// EventKind names a change the host may want to hear about.
type EventKind string

// The events an Engine emits; the server forwards them as notifications.
const (
	EventAccountsChanged EventKind = "accounts/changed"
	EventQuotaChanged    EventKind = "quota/changed"
	EventMainRefreshed   EventKind = "accounts/mainRefreshed"
)

// Event is one change. Main is set only for EventMainRefreshed: it carries
// the new main tokens, which the host must store (it owns them).
type Event struct {
	Kind     EventKind
	Accounts []string
	Main     *MainCredentials
}

// Options configure an [Engine]. Zero values mean the defaults.
type Options struct {
	// Store is required.
	Store *Store
	// Clock defaults to SystemClock.
	Clock Clock
	// HTTP defaults to a client that refuses redirects, with a 30 s timeout.
	HTTP Doer
	// Endpoints default to Anthropic's.
	Endpoints Endpoints
	// Classifier defaults to Builtin.
	Classifier verdict.Classifier
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Rand is the source of PKCE verifiers, states and ids; crypto/rand by
	// default.
	Rand io.Reader
	// OnEvent receives change events; nil drops them. It must not block.
	OnEvent func(Event)
}

// Engine is the account-and-quota engine the server drives: token refresh,
// quota checks, background passes, routing and classification over the
// files of a [Store].
type Engine struct {
	store      *Store
	clock      Clock
	api        *anthropic.Client
	ep         Endpoints
	classifier verdict.Classifier
	log        *slog.Logger
	rand       io.Reader
	onEvent    func(Event)

	mainMu sync.Mutex
	main   *MainCredentials

	flightMu sync.Mutex
	flights  map[string]*flight

	// detached tracks rotations that outlive their callers; Drain waits.
	detached detached

	quotaGate quotaGate

	// profileMiss is the last failed profile fetch (see bindMainQuota).
	profileMiss profileMiss

	loginMu sync.Mutex
	logins  map[string]pendingLogin

	routing router
}

// New returns an engine over opts.Store.
func New(opts Options) (*Engine, error) {
	if opts.Store == nil {
		return nil, errorf(ErrConfigInvalid, "engine needs a store")
	}
	e := &Engine{
		store:      opts.Store,
		clock:      opts.Clock,
		ep:         opts.Endpoints.withDefaults(),
		classifier: opts.Classifier,
		log:        opts.Logger,
		rand:       opts.Rand,
		onEvent:    opts.OnEvent,
		flights:    map[string]*flight{},
		logins:     map[string]pendingLogin{},
	}
	if e.clock == nil {
		e.clock = SystemClock{}
	}
	httpDoer := opts.HTTP
	if httpDoer == nil {
		httpDoer = &http.Client{
			Timeout:       30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if e.classifier == nil {
		e.classifier = verdict.Builtin
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.rand == nil {
		e.rand = rand.Reader
	}
	e.api = &anthropic.Client{
		HTTP: httpDoer, TokenURL: e.ep.Token, UsageURL: e.ep.Usage, ProfileURL: e.ep.Profile,
		Now: e.now, Sleep: e.clock.Sleep, Log: e.log, HostSecrets: e.hostSecrets,
	}
	e.followBackend()
	return e, nil
}

// hostSecrets are the host's main tokens, scrubbed from every failure
// message whichever account the failure belongs to.
func (e *Engine) hostSecrets() []secret.Secret {
	if c, ok := e.mainCredentials(); ok {
		return []secret.Secret{c.Access, c.Refresh}
	}
	return nil
}

// Store returns the engine's store.
func (e *Engine) Store() *Store { return e.store }

// Clock returns the engine's clock.
func (e *Engine) Clock() Clock { return e.clock }

// Classify returns the verdict for one failure: plugins first (when the
// configured classifier is a plugin host), the built-in table otherwise.
func (e *Engine) Classify(ctx context.Context, f verdict.Failure) verdict.Verdict {
	if f.At.IsZero() {
		f.At = e.clock.Now()
	}
	v := e.classifier.Classify(ctx, f)
	if !v.Class.Valid() {
		v = verdict.ClassifyBuiltin(f)
	}
	return v
}

func (e *Engine) emit(ev Event) {
	if e.onEvent != nil {
		e.onEvent(ev)
	}
}

func (e *Engine) now() time.Time { return e.clock.Now() }
