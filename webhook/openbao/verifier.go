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

	"github.com/iss-platform/iss-webhook/policy"
)

// Verifier answers whether KV v2 paths exist in OpenBao.
type Verifier struct {
	client  *api.Client
	cfg     policy.OpenBaoPolicy
	metrics *metrics
	now     func() time.Time

	group singleflight.Group

	mu    sync.Mutex
	cache map[string]cached
	// loggedIn is when the current token stops being usable; zero before the first login.
	tokenValidUntil time.Time
}

type cached struct {
	exists  bool
	expires time.Time
}

// New returns a verifier for the policy's OpenBao, registering its metrics with reg.
func New(cfg policy.OpenBaoPolicy, reg prometheus.Registerer) (*Verifier, error) {
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
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Verifier{client: client, cfg: cfg, metrics: m, now: time.Now, cache: map[string]cached{}}, nil
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
	result, err, _ := v.group.Do(key, func() (any, error) {
		exists, err := v.lookup(ctx, mount, strings.TrimPrefix(path, "/"))
		if err != nil {
			return false, err
		}
		ttl := v.cfg.MissTTL
		if exists {
			ttl = v.cfg.HitTTL
		}
		v.mu.Lock()
		v.cache[key] = cached{exists: exists, expires: v.now().Add(ttl)}
		v.mu.Unlock()
		return exists, nil
	})
	if err != nil {
		return false, err
	}
	return result.(bool), nil
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

func (v *Verifier) read(ctx context.Context, mount, path string) (bool, error) {
	if err := v.login(ctx); err != nil {
		return false, err
	}
	_, err := v.client.KVv2(mount).GetMetadata(ctx, path)
	if errors.Is(err, api.ErrSecretNotFound) {
		return false, nil
	}
	return err == nil, err
}

// login makes sure the client holds a usable token.
func (v *Verifier) login(ctx context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.tokenValidUntil.IsZero() && v.now().Before(v.tokenValidUntil) {
		return nil
	}
	switch v.cfg.AuthMethod {
	case policy.AuthToken:
		token, err := os.ReadFile(v.cfg.TokenFile)
		if err != nil {
			return fmt.Errorf("reading the OpenBao token file: %w", err)
		}
		v.client.SetToken(strings.TrimSpace(string(token)))
		// A token file can be rotated: read it again now and then.
		v.tokenValidUntil = v.now().Add(time.Minute)
		return nil
	case policy.AuthKubernetes:
		jwt, err := os.ReadFile(v.cfg.ServiceAccountTokenFile)
		if err != nil {
			return fmt.Errorf("reading the service account token: %w", err)
		}
		v.client.ClearToken()
		secret, err := v.client.Logical().WriteWithContext(ctx, "auth/"+v.cfg.KubernetesMount+"/login",
			map[string]any{"role": v.cfg.KubernetesRole, "jwt": strings.TrimSpace(string(jwt))})
		if err != nil {
			return fmt.Errorf("logging in to OpenBao with the Kubernetes auth method (role %q): %w", v.cfg.KubernetesRole, err)
		}
		if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
			return fmt.Errorf("logging in to OpenBao with the Kubernetes auth method (role %q): no token in the answer", v.cfg.KubernetesRole)
		}
		v.client.SetToken(secret.Auth.ClientToken)
		// Log in again at two thirds of the lease, before the token expires.
		lease := time.Duration(secret.Auth.LeaseDuration) * time.Second
		if lease <= 0 {
			lease = time.Hour
		}
		v.tokenValidUntil = v.now().Add(lease * 2 / 3)
		return nil
	default:
		return fmt.Errorf("unknown OpenBao auth method %q: use %q or %q", v.cfg.AuthMethod, policy.AuthKubernetes, policy.AuthToken)
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
	for _, c := range []prometheus.Collector{m.calls, m.latency, m.cacheHits} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
