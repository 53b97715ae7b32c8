// Package openbao checks that the OpenBao paths an ExternalSecret reads exist (design.md 4.4),
// through the OpenBao API client: KV v2 metadata reads, logged in with the Kubernetes auth
// method or a token, with a cache of hits and misses and one request per path at a time.
package openbao

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/openbao/openbao/api/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/iss-platform/iss-webhook/internal/promreg"
	"github.com/iss-platform/iss-webhook/policy"
)

// Credentials are the files the webhook logs in to OpenBao with. They are the Deployment's, set
// by flags, not the policy's: whoever may edit the ISSPolicy must not be able to make the webhook
// send a file of its choice to an address of its choice.
type Credentials struct {
	// ServiceAccountTokenFile holds the JWT of the Kubernetes auth method.
	ServiceAccountTokenFile string
	// TokenFile holds the token of the token auth method.
	TokenFile string
}

// Verifier answers whether KV v2 paths exist in OpenBao.
type Verifier struct {
	client  *api.Client
	cfg     policy.OpenBaoPolicy
	creds   Credentials
	metrics *metrics
	now     func() time.Time

	group singleflight.Group

	mu    sync.Mutex
	cache map[string]cached

	// loginMu serialises logins; tokenValidUntil (under mu) is when the current token stops
	// being usable, zero before the first login.
	loginMu         sync.Mutex
	tokenValidUntil time.Time
}

// maxCacheEntries bounds the cache; past it, expired entries are swept.
const maxCacheEntries = 10000

type cached struct {
	exists  bool
	expires time.Time
}

// New returns a verifier for the policy's OpenBao, registering its metrics with reg.
func New(cfg policy.OpenBaoPolicy, creds Credentials, reg prometheus.Registerer) (*Verifier, error) {
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return newVerifier(cfg, creds, m)
}

func newVerifier(cfg policy.OpenBaoPolicy, creds Credentials, m *metrics) (*Verifier, error) {
	conf := api.DefaultConfig()
	if conf.Error != nil {
		return nil, conf.Error
	}
	conf.Address = cfg.Address
	// The webhook's own deadline bounds each check; the client must not retry past it.
	conf.MaxRetries = 0
	conf.Timeout = cfg.Timeout
	client, err := api.NewClient(conf)
	if err != nil {
		return nil, fmt.Errorf("creating the OpenBao client for %s: %w", cfg.Address, err)
	}
	client.ClearToken()
	return &Verifier{client: client, cfg: cfg, creds: creds, metrics: m, now: time.Now, cache: map[string]cached{}}, nil
}

// Pool answers with the verifier of the OpenBao settings in force: the same one while the
// policy keeps them, and a new one, with an empty cache and a new login, once the policy changes
// them. It implements webhook.PathVerifier.
type Pool struct {
	metrics *metrics
	creds   Credentials

	mu      sync.Mutex
	cfg     policy.OpenBaoPolicy
	current *Verifier
}

// NewPool returns an empty pool whose verifiers log in with creds, registering their metrics
// with reg.
func NewPool(creds Credentials, reg prometheus.Registerer) (*Pool, error) {
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Pool{metrics: m, creds: creds}, nil
}

// Exists tells whether path exists in the KV v2 mount of the OpenBao that cfg describes (see
// Verifier.Exists).
func (p *Pool) Exists(ctx context.Context, cfg policy.OpenBaoPolicy, mount, path string) (bool, error) {
	p.mu.Lock()
	if p.current == nil || p.cfg != cfg {
		v, err := newVerifier(cfg, p.creds, p.metrics)
		if err != nil {
			p.mu.Unlock()
			return false, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		p.cfg, p.current = cfg, v
	}
	v := p.current
	p.mu.Unlock()
	return v.Exists(ctx, mount, path)
}

// ErrUnavailable wraps every failure to get an answer from OpenBao: unreachable, too slow,
// refusing the login, or answering with an error.
var ErrUnavailable = errors.New("OpenBao was unreachable")

// Exists tells whether path exists in the KV v2 mount. Answers are cached (found for HitTTL,
// missing for MissTTL), and concurrent checks of one path share one request. An error wraps
// ErrUnavailable.
func (v *Verifier) Exists(ctx context.Context, mount, path string) (bool, error) {
	key := mount + "/" + strings.TrimPrefix(path, "/")
	v.mu.Lock()
	c, ok := v.cache[key]
	v.mu.Unlock()
	if ok && v.now().Before(c.expires) {
		v.metrics.cacheHits.Inc()
		return c.exists, nil
	}
	// The shared request runs on a context of its own, bounded by the policy's timeout, so that
	// one caller giving up does not fail the others waiting for the same answer.
	results := v.group.DoChan(key, func() (any, error) {
		shared, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.cfg.Timeout)
		defer cancel()
		exists, err := v.lookup(shared, mount, strings.TrimPrefix(path, "/"))
		if err != nil {
			return false, err
		}
		ttl := v.cfg.MissTTL
		if exists {
			ttl = v.cfg.HitTTL
		}
		v.remember(key, cached{exists: exists, expires: v.now().Add(ttl)})
		return exists, nil
	})
	select {
	case r := <-results:
		if r.Err != nil {
			return false, r.Err
		}
		return r.Val.(bool), nil
	case <-ctx.Done():
		return false, fmt.Errorf("%w: no answer in time: %v", ErrUnavailable, ctx.Err())
	}
}

// remember caches an answer, sweeping expired entries when the cache is full.
func (v *Verifier) remember(key string, c cached) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.cache) >= maxCacheEntries {
		now := v.now()
		for k, e := range v.cache {
			if now.After(e.expires) {
				delete(v.cache, k)
			}
		}
		if len(v.cache) >= maxCacheEntries {
			clear(v.cache)
		}
	}
	v.cache[key] = c
}

// lookup reads the path's KV v2 metadata, logging in first when needed, and once more when
// OpenBao says the token is no longer good.
func (v *Verifier) lookup(ctx context.Context, mount, path string) (bool, error) {
	start := v.now()
	exists, err := v.read(ctx, mount, path)
	var respErr *api.ResponseError
	if errors.As(err, &respErr) && respErr.StatusCode == 403 {
		v.mu.Lock()
		v.tokenValidUntil = time.Time{}
		v.mu.Unlock()
		exists, err = v.read(ctx, mount, path)
	}
	v.metrics.latency.Observe(v.now().Sub(start).Seconds())
	switch {
	case err != nil:
		v.metrics.calls.WithLabelValues("unavailable").Inc()
		return false, fmt.Errorf("%w: %v", ErrUnavailable, err)
	case exists:
		v.metrics.calls.WithLabelValues("found").Inc()
	default:
		v.metrics.calls.WithLabelValues("missing").Inc()
	}
	return exists, nil
}

// read asks for the path's KV v2 metadata. Only a 404 without errors is a missing path: a 404
// that says why (no handler for the route: the mount does not exist or is not KV v2) means the
// check cannot answer, and is not the user's fault.
func (v *Verifier) read(ctx context.Context, mount, path string) (bool, error) {
	if err := v.login(ctx); err != nil {
		return false, err
	}
	resp, err := v.client.Logical().ReadRawWithContext(ctx, mount+"/metadata/"+path)
	if resp != nil {
		defer resp.Body.Close()
	}
	var respErr *api.ResponseError
	if errors.As(err, &respErr) && respErr.StatusCode == 404 {
		if len(respErr.Errors) == 0 {
			return false, nil
		}
		return false, fmt.Errorf("KV v2 mount %q: %w", mount, err)
	}
	return err == nil, err
}

// login makes sure the client holds a usable token. Logging in uses a clone of the client, so
// that reads in flight keep the current token until the new one is there.
func (v *Verifier) login(ctx context.Context) error {
	v.loginMu.Lock()
	defer v.loginMu.Unlock()
	v.mu.Lock()
	valid := !v.tokenValidUntil.IsZero() && v.now().Before(v.tokenValidUntil)
	v.mu.Unlock()
	if valid {
		return nil
	}
	token, validFor, err := v.newToken(ctx)
	if err != nil {
		return err
	}
	v.client.SetToken(token)
	v.mu.Lock()
	v.tokenValidUntil = v.now().Add(validFor)
	v.mu.Unlock()
	return nil
}

// newToken gets a token and how long to use it before getting another.
func (v *Verifier) newToken(ctx context.Context) (string, time.Duration, error) {
	switch v.cfg.AuthMethod {
	case policy.AuthToken:
		if v.creds.TokenFile == "" {
			return "", 0, errors.New("the policy's OpenBao auth method is token, but iss-webhook runs without --openbao-token-file")
		}
		token, err := os.ReadFile(v.creds.TokenFile)
		if err != nil {
			return "", 0, fmt.Errorf("reading the OpenBao token file: %w", err)
		}
		// A token file can be rotated: read it again every minute.
		return strings.TrimSpace(string(token)), time.Minute, nil
	case policy.AuthKubernetes:
		jwt, err := os.ReadFile(v.creds.ServiceAccountTokenFile)
		if err != nil {
			return "", 0, fmt.Errorf("reading the service account token: %w", err)
		}
		loginClient, err := v.client.Clone()
		if err != nil {
			return "", 0, err
		}
		loginClient.ClearToken()
		secret, err := loginClient.Logical().WriteWithContext(ctx, "auth/"+v.cfg.KubernetesMount+"/login",
			map[string]any{"role": v.cfg.KubernetesRole, "jwt": strings.TrimSpace(string(jwt))})
		if err != nil {
			return "", 0, fmt.Errorf("logging in to OpenBao with the Kubernetes auth method (role %q): %w", v.cfg.KubernetesRole, err)
		}
		if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
			return "", 0, fmt.Errorf("logging in to OpenBao with the Kubernetes auth method (role %q): no token in the answer", v.cfg.KubernetesRole)
		}
		// Log in again at two thirds of the lease, before the token expires.
		lease := time.Duration(secret.Auth.LeaseDuration) * time.Second
		if lease <= 0 {
			lease = time.Hour
		}
		return secret.Auth.ClientToken, lease * 2 / 3, nil
	default:
		return "", 0, fmt.Errorf("unknown OpenBao auth method %q: use %q or %q", v.cfg.AuthMethod, policy.AuthKubernetes, policy.AuthToken)
	}
}

// metrics are the verifier's Prometheus metrics.
type metrics struct {
	calls     *prometheus.CounterVec
	latency   prometheus.Histogram
	cacheHits prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iss_openbao_requests_total", Help: "OpenBao path checks that reached OpenBao, by result: found, missing, unavailable.",
		}, []string{"result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "iss_openbao_request_duration_seconds", Help: "Duration of OpenBao path checks that reached OpenBao.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "iss_openbao_cache_hits_total", Help: "OpenBao path checks answered from the cache.",
		}),
	}
	var err error
	if m.calls, err = promreg.Register(reg, m.calls); err != nil {
		return nil, err
	}
	if m.latency, err = promreg.Register(reg, m.latency); err != nil {
		return nil, err
	}
	if m.cacheHits, err = promreg.Register(reg, m.cacheHits); err != nil {
		return nil, err
	}
	return m, nil
}
