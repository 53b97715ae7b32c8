// Package openbao checks what the OpenBao paths an ExternalSecret reads hold (design.md 4.4),
// through the OpenBao API client: KV v2 metadata reads, logged in with the Kubernetes auth
// method or a token, with a cache of answers and one request per path at a time.
package openbao

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/openbao/openbao/api/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/iss-platform/iss-webhook/internal/promreg"
	"github.com/iss-platform/iss-webhook/policy"
)

// Credentials are the files the webhook logs in to OpenBao with, and the CA it trusts OpenBao's
// certificate with. They are the Deployment's, set by flags, not the policy's: whoever may edit
// the ISSPolicy must not be able to make the webhook send a file of its choice to an address of
// its choice.
type Credentials struct {
	// ServiceAccountTokenFile holds the JWT of the Kubernetes auth method.
	ServiceAccountTokenFile string
	// TokenFile holds the token of the token auth method.
	TokenFile string
	// CACertFile, when set, holds the PEM certificates that OpenBao's serving certificate is
	// verified with, instead of the system's roots.
	CACertFile string
}

// Verifier answers what KV v2 paths hold in OpenBao.
type Verifier struct {
	client  *api.Client
	cfg     policy.OpenBaoPolicy
	creds   Credentials
	metrics *metrics
	now     func() time.Time

	group singleflight.Group

	mu     sync.Mutex
	cache  map[string]entry
	mounts map[string]mountEntry
	// tokenValidUntil is when the current token stops being usable (zero before the first
	// login and once OpenBao refused it); tokenCheckedUntil is until when a lookup-self said it
	// is good. streak counts the logins since OpenBao last accepted a token: the backoff
	// between logins grows with it. lastLogin and loginErr are the last login's time and failure.
	tokenValidUntil   time.Time
	tokenCheckedUntil time.Time
	streak            int
	lastLogin         time.Time
	loginErr          error

	// loginMu serialises logins; checkMu serialises lookups of the token.
	loginMu sync.Mutex
	checkMu sync.Mutex
}

// maxCacheEntries bounds the cache; past it, expired entries are swept.
const maxCacheEntries = 10000

// Logins back off from firstBackoff, doubling up to maxBackoff, while OpenBao keeps refusing
// the tokens they bring or the logins themselves.
const (
	firstBackoff = time.Second
	maxBackoff   = 5 * time.Minute
)

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
	if creds.CACertFile != "" {
		if err := conf.ConfigureTLS(&api.TLSConfig{CACert: creds.CACertFile}); err != nil {
			return nil, fmt.Errorf("reading the OpenBao CA certificates %s: %w", creds.CACertFile, err)
		}
	}
	client, err := api.NewClient(conf)
	if err != nil {
		return nil, fmt.Errorf("creating the OpenBao client for %s: %w", cfg.Address, err)
	}
	client.ClearToken()
	return &Verifier{client: client, cfg: cfg, creds: creds, metrics: m, now: time.Now, cache: map[string]entry{}, mounts: map[string]mountEntry{}}, nil
}

// Pool answers with the verifier of the OpenBao settings in force: the same one while the
// policy keeps them, and a new one, with an empty cache and a new login, once the policy changes
// them. It implements policy.PathVerifier.
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

// Check tells what the KV v2 mount of the OpenBao that cfg describes holds at path, for version
// (0: the current one); see Verifier.Check.
func (p *Pool) Check(ctx context.Context, cfg policy.OpenBaoPolicy, mount, path string, version int) (policy.PathAnswer, error) {
	p.mu.Lock()
	if p.current == nil || p.cfg != cfg {
		v, err := newVerifier(cfg, p.creds, p.metrics)
		if err != nil {
			p.mu.Unlock()
			return policy.PathAnswer{}, unavailablef("%v", err)
		}
		p.cfg, p.current = cfg, v
	}
	v := p.current
	p.mu.Unlock()
	return v.Check(ctx, mount, path, version)
}

// ErrUnavailable is what every failure to get an answer from OpenBao matches (errors.Is):
// unreachable, too slow, sealed, refusing the login or the read, or a mount that is not KV v2.
// Its own text is that of an OpenBao that could not be reached; the others say what is wrong.
var ErrUnavailable = errors.New("OpenBao was unreachable")

// unavailableError is a failure to get an answer that says why.
type unavailableError struct{ msg string }

func (e *unavailableError) Error() string        { return e.msg }
func (e *unavailableError) Is(target error) bool { return target == ErrUnavailable }

func unavailablef(format string, args ...any) error {
	return &unavailableError{msg: fmt.Sprintf(format, args...)}
}

// Check tells what the KV v2 mount holds at path for version (0: the current one): found, or
// missing, deleted, destroyed, or a pinned version the path does not have. It reads the path's
// metadata, which answers for every version at once. Answers are cached per path (those that
// let External Secrets read a value for HitTTL, the others, and a denied read, for MissTTL),
// and concurrent checks of one path share one request. An error matches ErrUnavailable.
func (v *Verifier) Check(ctx context.Context, mount, path string, version int) (policy.PathAnswer, error) {
	path = strings.TrimPrefix(path, "/")
	key := mount + "/" + path
	v.mu.Lock()
	c, ok := v.cache[key]
	v.mu.Unlock()
	if ok {
		if answer, err, fresh := c.answer(version, v.now(), v.cfg); fresh {
			v.metrics.cacheHits.Inc()
			return answer, err
		}
	}
	// The shared request runs on a context of its own, bounded by the policy's timeout, so that
	// one caller giving up does not fail the others waiting for the same answer.
	results := v.group.DoChan(key, func() (any, error) {
		shared, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.cfg.Timeout)
		defer cancel()
		e := v.lookup(shared, mount, path)
		if e.kind != entryFailed {
			v.remember(key, e)
		}
		return e, nil
	})
	select {
	case r := <-results:
		answer, err, _ := r.Val.(entry).answer(version, v.now(), v.cfg)
		return answer, err
	case <-ctx.Done():
		return policy.PathAnswer{}, fmt.Errorf("%w: no answer in time: %v", ErrUnavailable, ctx.Err())
	}
}

// entry is what OpenBao answered for a path.
type entry struct {
	kind    entryKind
	fetched time.Time
	meta    kvMetadata
	// caveat qualifies a missing path; err is the failure of entryRefused and entryFailed.
	caveat string
	err    error
}

type entryKind int

const (
	// entryMetadata is a path with KV v2 metadata.
	entryMetadata entryKind = iota
	// entryMissing is a path without metadata in a KV v2 mount.
	entryMissing
	// entryRefused is a read that OpenBao refused for reasons that a retry at once does not
	// change (the token may not read the path, the mount is not KV v2): cached for MissTTL.
	entryRefused
	// entryFailed is a failure that is not cached.
	entryFailed
)

// answer is the entry's answer for version, and whether the entry is fresh enough to give it.
func (e entry) answer(version int, now time.Time, cfg policy.OpenBaoPolicy) (policy.PathAnswer, error, bool) {
	age := now.Sub(e.fetched)
	switch e.kind {
	case entryMetadata:
		a := e.meta.answer(version, now)
		if a.State == policy.PathFound {
			return a, nil, age < cfg.HitTTL
		}
		return a, nil, age < cfg.MissTTL
	case entryMissing:
		return policy.PathAnswer{State: policy.PathMissing, Version: version, Caveat: e.caveat}, nil, age < cfg.MissTTL
	case entryRefused:
		return policy.PathAnswer{}, e.err, age < cfg.MissTTL
	default:
		return policy.PathAnswer{}, e.err, false
	}
}

// kvMetadata is what the checks need of a KV v2 metadata answer.
type kvMetadata struct {
	current  int
	versions map[int]kvVersion
}

type kvVersion struct {
	// deletion is when the version is (or was, or will be: delete_version_after) soft-deleted.
	deletion  time.Time
	destroyed bool
}

// answer tells the state of version (0: the current one) at now.
func (m kvMetadata) answer(version int, now time.Time) policy.PathAnswer {
	a := policy.PathAnswer{Version: version, Current: m.current}
	if version == 0 {
		if m.current == 0 {
			// Metadata written without a value (kv metadata put): nothing to read.
			a.State = policy.PathMissing
			return a
		}
		a.Version = m.current
	}
	ver, ok := m.versions[a.Version]
	switch {
	case !ok:
		a.State = policy.PathNoSuchVersion
	case ver.destroyed:
		a.State = policy.PathDestroyed
	case !ver.deletion.IsZero() && !now.Before(ver.deletion):
		a.State = policy.PathDeleted
	default:
		a.State = policy.PathFound
	}
	return a
}

// remember caches an answer, sweeping expired entries when the cache is full.
func (v *Verifier) remember(key string, e entry) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.cache) >= maxCacheEntries {
		longest := max(v.cfg.HitTTL, v.cfg.MissTTL)
		now := v.now()
		for k, c := range v.cache {
			if now.Sub(c.fetched) > longest {
				delete(v.cache, k)
			}
		}
		if len(v.cache) >= maxCacheEntries {
			clear(v.cache)
		}
	}
	v.cache[key] = e
}

// lookup reads the path's KV v2 metadata and tells what it says.
func (v *Verifier) lookup(ctx context.Context, mount, path string) entry {
	start := v.now()
	e := v.readMetadata(ctx, mount, path)
	e.fetched = v.now()
	v.metrics.latency.Observe(e.fetched.Sub(start).Seconds())
	switch e.kind {
	case entryMetadata:
		v.metrics.calls.WithLabelValues("found").Inc()
	case entryMissing:
		v.metrics.calls.WithLabelValues("missing").Inc()
	default:
		v.metrics.calls.WithLabelValues("unavailable").Inc()
	}
	return e
}

func (v *Verifier) readMetadata(ctx context.Context, mount, path string) entry {
	full := mount + "/metadata/" + path
	body, err := v.read(ctx, full)
	var respErr *api.ResponseError
	switch {
	case err == nil:
		meta, ok := parseMetadata(body)
		if ok {
			return entry{kind: entryMetadata, meta: meta}
		}
		// A KV v1 mount holding a key named metadata/...: not the answer of a KV v2 mount.
		_, fault := v.mountFault(ctx, mount)
		if fault != nil {
			return *fault
		}
		return entry{kind: entryFailed, err: unavailablef("OpenBao answered the read of %s with something that is not KV v2 metadata", full)}
	case errors.As(err, &respErr) && respErr.StatusCode == 404 && len(respErr.Errors) == 0:
		// What a KV v2 mount answers for a path without metadata, and a KV v1 mount for every
		// path: the mount's type tells them apart.
		kind, fault := v.mountFault(ctx, mount)
		if fault != nil {
			return *fault
		}
		e := entry{kind: entryMissing}
		if kind.typ == "" {
			e.caveat = fmt.Sprintf("the webhook could not confirm that %s is a KV v2 mount: OpenBao refused its read of sys/internal/ui/mounts/%s; were it a KV v1 mount, every path would read as missing", mount, mount)
		}
		return e
	case errors.As(err, &respErr) && respErr.StatusCode == 404 && strings.Contains(strings.Join(respErr.Errors, " "), "no handler for route"):
		// With a token that may read it, a mount that does not exist answers "no handler for
		// route"; with a least-privilege token it answers 403 instead (below).
		return entry{kind: entryRefused, err: unavailablef("OpenBao has no mount %s (it answered %q to the read of %s): mount KV v2 there (bao secrets enable -path=%s -version=2 kv), or name the environment's KV v2 mount in the ISSPolicy (spec.secrets.environments[].mount)", mount, strings.Join(respErr.Errors, "; "), full, mount)}
	case errors.As(err, &respErr) && respErr.StatusCode == 403:
		return entry{kind: entryRefused, err: unavailablef("the webhook's OpenBao token may not read %s (OpenBao answered 403 permission denied): grant its policy read there (path %q { capabilities = [\"read\"] }), and check that the mount %s exists", full, mount+"/metadata/"+topSegment(path)+"/*", mount)}
	case errors.As(err, &respErr):
		// Another secrets engine, with no metadata/ paths: it refuses the path or the
		// operation.
		_, fault := v.mountFault(ctx, mount)
		if fault != nil {
			return *fault
		}
		return entry{kind: entryFailed, err: describe(err, "the read of "+full)}
	default:
		return entry{kind: entryFailed, err: err}
	}
}

// mountFault reads the mount's type: the entry to answer with when it is not KV v2, or cannot
// be read; nil for a KV v2 mount, or one whose type the token may not read.
func (v *Verifier) mountFault(ctx context.Context, mount string) (mountKind, *entry) {
	kind, err := v.mountKind(ctx, mount)
	if err != nil {
		return kind, &entry{kind: entryFailed, err: err}
	}
	if err := kind.misconfigured(mount); err != nil {
		return kind, &entry{kind: entryRefused, err: err}
	}
	return kind, nil
}

// topSegment is a path's first segment, the artifacts root of ISS paths.
func topSegment(path string) string {
	first, _, _ := strings.Cut(path, "/")
	return first
}

// parseMetadata reads a KV v2 metadata answer; false when the body is not one.
func parseMetadata(body []byte) (kvMetadata, bool) {
	var doc struct {
		Data *struct {
			CurrentVersion *int `json:"current_version"`
			Versions       map[string]struct {
				DeletionTime string `json:"deletion_time"`
				Destroyed    bool   `json:"destroyed"`
			} `json:"versions"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.Data == nil || doc.Data.CurrentVersion == nil || doc.Data.Versions == nil {
		return kvMetadata{}, false
	}
	m := kvMetadata{current: *doc.Data.CurrentVersion, versions: map[int]kvVersion{}}
	for k, ver := range doc.Data.Versions {
		n, err := strconv.Atoi(k)
		if err != nil {
			return kvMetadata{}, false
		}
		kv := kvVersion{destroyed: ver.Destroyed}
		if ver.DeletionTime != "" {
			t, err := time.Parse(time.RFC3339Nano, ver.DeletionTime)
			if err != nil {
				return kvMetadata{}, false
			}
			kv.deletion = t
		}
		m.versions[n] = kv
	}
	return m, true
}

// mountEntry is the cached type of a mount.
type mountEntry struct {
	kind    mountKind
	fetched time.Time
}

// mountKind is a secrets engine's type and KV version; an empty type is a mount whose type the
// token may not read.
type mountKind struct {
	typ, version string
}

// misconfigured says why the mount cannot hold the environment's KV v2 tree; nil for a KV v2
// mount, or one of unknown type.
func (k mountKind) misconfigured(mount string) error {
	switch {
	case k.typ == "":
		return nil
	case k.typ == "kv" && k.version == "2":
		return nil
	case k.typ == "kv" || k.typ == "generic":
		return unavailablef("OpenBao mount %s is a KV version 1 mount, which has no versions or metadata for the existence check to read: mount KV v2 there (bao kv enable-versioning %s, or bao secrets enable -path=%s -version=2 kv), or name the environment's KV v2 mount in the ISSPolicy (spec.secrets.environments[].mount)", mount, mount, mount)
	default:
		return unavailablef("OpenBao mount %s is a %s secrets engine, not KV v2: mount KV v2 there (bao secrets enable -path=%s -version=2 kv), or name the environment's KV v2 mount in the ISSPolicy (spec.secrets.environments[].mount)", mount, k.typ, mount)
	}
}

// mountKind reads the mount's type from sys/internal/ui/mounts, which OpenBao answers for any
// token that may use some path of the mount, as the kv commands of its CLI do. A refusal is
// remembered for MissTTL as an unknown type, a type for HitTTL.
func (v *Verifier) mountKind(ctx context.Context, mount string) (mountKind, error) {
	v.mu.Lock()
	c, ok := v.mounts[mount]
	v.mu.Unlock()
	now := v.now()
	if ok && ((c.kind.typ != "" && now.Sub(c.fetched) < v.cfg.HitTTL) || now.Sub(c.fetched) < v.cfg.MissTTL) {
		return c.kind, nil
	}
	body, err := v.read(ctx, "sys/internal/ui/mounts/"+mount)
	var respErr *api.ResponseError
	var kind mountKind
	switch {
	case err == nil:
		var doc struct {
			Data struct {
				Type    string            `json:"type"`
				Options map[string]string `json:"options"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &doc); err != nil || doc.Data.Type == "" {
			return mountKind{}, unavailablef("OpenBao answered the read of sys/internal/ui/mounts/%s without the mount's type", mount)
		}
		kind = mountKind{typ: doc.Data.Type, version: doc.Data.Options["version"]}
		if kind.version == "" {
			kind.version = "1"
		}
	case errors.As(err, &respErr) && respErr.StatusCode == 403:
		// Unknown: the metadata answer stands.
	case errors.As(err, &respErr):
		return mountKind{}, describe(err, "the read of sys/internal/ui/mounts/"+mount)
	default:
		return mountKind{}, err
	}
	v.mu.Lock()
	v.mounts[mount] = mountEntry{kind: kind, fetched: v.now()}
	v.mu.Unlock()
	return kind, nil
}

// read GETs a path with the webhook's token and returns the body of a 200. A 403 is a refused
// token only if lookup-self says so: then the webhook logs in again, at once the first time
// and backing off after, and reads once more; otherwise the token may just not read the path,
// and logging in again would change nothing. Errors are *api.ResponseError for the answers the
// caller tells apart (4xx but 429), else they match ErrUnavailable.
func (v *Verifier) read(ctx context.Context, path string) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		if err := v.login(ctx); err != nil {
			return nil, err
		}
		token := v.client.Token()
		resp, err := v.client.Logical().ReadRawWithContext(ctx, path)
		var body []byte
		if resp != nil {
			var readErr error
			body, readErr = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && readErr != nil {
				err = readErr
			}
		}
		var respErr *api.ResponseError
		switch {
		case err == nil:
			v.tokenAccepted()
			return body, nil
		case errors.As(err, &respErr) && respErr.StatusCode >= 400 && respErr.StatusCode < 500 && respErr.StatusCode != 403 && respErr.StatusCode != 429:
			// The token got past OpenBao's token check: what the path answers is the
			// caller's to tell apart.
			v.tokenAccepted()
			return nil, err
		case errors.As(err, &respErr) && respErr.StatusCode == 403:
			// A bare "permission denied" is a token OpenBao does not know: a check of the
			// token made before it was revoked does not hold.
			valid, checkErr := v.tokenValid(ctx, token, unknownToken(respErr))
			switch {
			case checkErr != nil:
				return nil, checkErr
			case valid:
				return nil, err
			case attempt > 0:
				return nil, unavailablef("OpenBao refused the token that the webhook has just logged in with (403 %q to the read of %s, and to its lookup-self): check the token's policies and TTL (the token file, or the role's token_policies and token_ttl)", strings.Join(respErr.Errors, "; "), path)
			}
			v.dropToken(token)
		default:
			return nil, describe(err, "the read of "+path)
		}
	}
}

// describe turns a failed request into an error that says what to do.
func describe(err error, what string) error {
	var respErr *api.ResponseError
	if !errors.As(err, &respErr) {
		return fmt.Errorf("%w: %s: %v", ErrUnavailable, what, err)
	}
	text := strings.Join(respErr.Errors, "; ")
	switch {
	case respErr.StatusCode == 503 && strings.Contains(text, "sealed"):
		return unavailablef("OpenBao at %s is sealed (it answered 503 %q to %s): unseal it (bao operator unseal)", hostOf(respErr.URL), text, what)
	case respErr.StatusCode == 503:
		return unavailablef("OpenBao answered 503 %q to %s: it is not ready to serve (starting, or a standby): retry, and check its status (bao status)", text, what)
	case respErr.StatusCode == 429:
		return unavailablef("OpenBao rate-limited %s (429 %q): raise the webhook's rate limit quota, or retry later", what, text)
	default:
		return unavailablef("OpenBao answered %d %q to %s", respErr.StatusCode, text, what)
	}
}

// hostOf is the scheme and host of a request URL, for messages.
func hostOf(u string) string {
	if i := strings.Index(u, "/v1/"); i > 0 {
		return u[:i]
	}
	return u
}

// tokenAccepted notes that OpenBao accepted the current token: the login backoff starts over.
func (v *Verifier) tokenAccepted() {
	v.mu.Lock()
	v.streak = 0
	v.mu.Unlock()
}

// tokenValid tells whether the token that a read was refused with is still good, with one
// lookup-self at a time, remembered for MissTTL unless recheck. OpenBao answers 403 "permission denied" both
// to a token it does not know (expired, revoked) and to a path the token's policies do not
// grant, so the answer alone cannot tell them apart. A token that another login has already
// replaced is not good: the read is tried again with the new one.
func (v *Verifier) tokenValid(ctx context.Context, token string, recheck bool) (bool, error) {
	v.checkMu.Lock()
	defer v.checkMu.Unlock()
	if v.client.Token() != token {
		return false, nil
	}
	v.mu.Lock()
	checked := v.now().Before(v.tokenCheckedUntil)
	v.mu.Unlock()
	if checked && !recheck {
		return true, nil
	}
	_, err := v.client.Auth().Token().LookupSelfWithContext(ctx)
	var respErr *api.ResponseError
	switch {
	case err == nil:
		v.mu.Lock()
		v.tokenCheckedUntil = v.now().Add(v.cfg.MissTTL)
		v.streak = 0
		v.mu.Unlock()
		return true, nil
	case errors.As(err, &respErr) && respErr.StatusCode == 403:
		return !unknownToken(respErr), nil
	default:
		return false, describe(err, "the webhook's lookup of its own token (auth/token/lookup-self)")
	}
}

// unknownToken tells a 403 for a token OpenBao does not know (expired, revoked) from one for a
// token whose policies do not grant the path. OpenBao answers the first with a bare
// "permission denied" (HashiCorp Vault adds "invalid token"), and the second, from its ACL
// check, with the multierror form "1 error occurred:\n\t* permission denied\n\n". Anything
// else counts as an unknown token: logging in again, with the backoff, is the safe side.
func unknownToken(respErr *api.ResponseError) bool {
	text := strings.Join(respErr.Errors, "; ")
	if strings.Contains(text, "invalid token") {
		return true
	}
	return !(strings.Contains(text, "occurred:") && strings.Contains(text, "permission denied"))
}

// dropToken forgets a token that OpenBao no longer accepts, unless another has replaced it.
func (v *Verifier) dropToken(token string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.client.Token() == token {
		v.tokenValidUntil = time.Time{}
		v.tokenCheckedUntil = time.Time{}
	}
}

// login makes sure the client holds a usable token. While OpenBao keeps refusing the logins
// or the tokens they bring, logins back off: the first at once, then after 1s, 2s, 4s, … up to
// 5 minutes, answering with the last failure in between. Logging in uses a clone of the
// client, so that reads in flight keep the current token until the new one is there.
func (v *Verifier) login(ctx context.Context) error {
	v.loginMu.Lock()
	defer v.loginMu.Unlock()
	v.mu.Lock()
	now := v.now()
	valid := !v.tokenValidUntil.IsZero() && now.Before(v.tokenValidUntil)
	streak, last, lastErr := v.streak, v.lastLogin, v.loginErr
	v.mu.Unlock()
	if valid {
		return nil
	}
	if streak > 0 {
		wait := min(firstBackoff<<min(streak-1, 20), maxBackoff)
		if next := last.Add(wait); now.Before(next) {
			if lastErr != nil {
				return unavailablef("%v (the webhook logs in again after %s)", lastErr, next.Sub(now).Round(time.Millisecond))
			}
			return unavailablef("OpenBao refused the token the webhook logged in with %s ago: it logs in again after %s, backing off", now.Sub(last).Round(time.Millisecond), next.Sub(now).Round(time.Millisecond))
		}
	}
	token, validFor, err := v.newToken(ctx)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.streak++
	v.lastLogin = v.now()
	v.loginErr = err
	if err != nil {
		v.metrics.logins.WithLabelValues("failed").Inc()
		return err
	}
	v.metrics.logins.WithLabelValues("ok").Inc()
	v.client.SetToken(token)
	v.tokenValidUntil = v.now().Add(validFor)
	v.tokenCheckedUntil = time.Time{}
	return nil
}

// newToken gets a token and how long to use it before getting another.
func (v *Verifier) newToken(ctx context.Context) (string, time.Duration, error) {
	switch v.cfg.AuthMethod {
	case policy.AuthToken:
		if v.creds.TokenFile == "" {
			return "", 0, unavailablef("the policy's OpenBao auth method is token, but iss-webhook runs without --openbao-token-file")
		}
		token, err := os.ReadFile(v.creds.TokenFile)
		if err != nil {
			return "", 0, unavailablef("reading the OpenBao token file: %v", err)
		}
		if len(strings.TrimSpace(string(token))) == 0 {
			return "", 0, unavailablef("the OpenBao token file %s is empty: write the webhook's token there", v.creds.TokenFile)
		}
		// A token file can be rotated: read it again every minute.
		return strings.TrimSpace(string(token)), time.Minute, nil
	case policy.AuthKubernetes:
		jwt, err := os.ReadFile(v.creds.ServiceAccountTokenFile)
		if err != nil {
			return "", 0, unavailablef("reading the service account token for the OpenBao Kubernetes auth method: %v", err)
		}
		if len(strings.TrimSpace(string(jwt))) == 0 {
			return "", 0, unavailablef("the service account token file %s is empty: mount a projected service account token with the audience the OpenBao role %q expects there (the install mounts one with the audience openbao)", v.creds.ServiceAccountTokenFile, v.cfg.KubernetesRole)
		}
		loginClient, err := v.client.Clone()
		if err != nil {
			return "", 0, unavailablef("%v", err)
		}
		loginClient.ClearToken()
		secret, err := loginClient.Logical().WriteWithContext(ctx, "auth/"+v.cfg.KubernetesMount+"/login",
			map[string]any{"role": v.cfg.KubernetesRole, "jwt": strings.TrimSpace(string(jwt))})
		if err != nil {
			return "", 0, v.loginError(err)
		}
		if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
			return "", 0, unavailablef("OpenBao answered the Kubernetes auth login at auth/%s/login (role %q) without a token", v.cfg.KubernetesMount, v.cfg.KubernetesRole)
		}
		// Log in again at two thirds of the lease, before the token expires.
		lease := time.Duration(secret.Auth.LeaseDuration) * time.Second
		if lease <= 0 {
			lease = time.Hour
		}
		return secret.Auth.ClientToken, lease * 2 / 3, nil
	default:
		return "", 0, unavailablef("unknown OpenBao auth method %q: use %q or %q", v.cfg.AuthMethod, policy.AuthKubernetes, policy.AuthToken)
	}
}

// loginError says what to fix for each refusal of the Kubernetes auth login.
func (v *Verifier) loginError(err error) error {
	var respErr *api.ResponseError
	if !errors.As(err, &respErr) {
		return describe(err, "the Kubernetes auth login")
	}
	mount, role := v.cfg.KubernetesMount, v.cfg.KubernetesRole
	text := strings.Join(respErr.Errors, "; ")
	prefix := fmt.Sprintf("OpenBao refused the webhook's Kubernetes auth login at auth/%s/login with role %q (%d %q)", mount, role, respErr.StatusCode, text)
	switch {
	case respErr.StatusCode == 400 && strings.Contains(text, "invalid role name"):
		return unavailablef("%s: create the role (bao write auth/%s/role/%s bound_service_account_names=iss-webhook bound_service_account_namespaces=iss-system audience=openbao token_policies=iss-webhook), or name an existing one in the ISSPolicy (spec.openbao.auth.role)", prefix, mount, role)
	case respErr.StatusCode == 400 && strings.Contains(text, "missing jwt"):
		return unavailablef("%s: the service account token in %s is empty: mount a projected service account token there", prefix, v.creds.ServiceAccountTokenFile)
	case respErr.StatusCode == 400 && strings.Contains(text, "missing role"):
		return unavailablef("%s: name the role in the ISSPolicy (spec.openbao.auth.role)", prefix)
	case respErr.StatusCode == 403 && strings.Contains(text, "audience"):
		return unavailablef("%s: the service account token in %s must be bound to the audience the role expects: mount it with that audience (the install uses openbao), or set the role's audience to the token's (bao write auth/%s/role/%s audience=openbao)", prefix, v.creds.ServiceAccountTokenFile, mount, role)
	case respErr.StatusCode == 403 && (strings.Contains(text, "service account name not authorized") || strings.Contains(text, "namespace not authorized")):
		return unavailablef("%s: the role must bind the webhook's service account: set its bound_service_account_names and bound_service_account_namespaces (by default iss-webhook in iss-system)", prefix)
	case respErr.StatusCode == 403:
		// OpenBao answers a login at a mount that does not exist as any request without a
		// token, and a service account token that the TokenReview rejects, alike.
		return unavailablef("%s: enable the Kubernetes auth method at auth/%s (bao auth enable -path=%s kubernetes) or name its mount in the ISSPolicy (spec.openbao.auth.kubernetesMount); if it is enabled, the Kubernetes API rejected the service account token in its TokenReview: check the method's kubernetes_host and token reviewer (bao read auth/%s/config), and that the token is current", prefix, mount, mount, mount)
	default:
		return describe(err, fmt.Sprintf("the Kubernetes auth login at auth/%s/login (role %q)", mount, role))
	}
}

// metrics are the verifier's Prometheus metrics.
type metrics struct {
	calls     *prometheus.CounterVec
	latency   prometheus.Histogram
	cacheHits prometheus.Counter
	logins    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iss_openbao_requests_total", Help: "OpenBao path checks that reached OpenBao, by result: found (KV v2 metadata), missing, unavailable (no answer, refused, or not a KV v2 mount).",
		}, []string{"result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "iss_openbao_request_duration_seconds", Help: "Duration of OpenBao path checks that reached OpenBao.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "iss_openbao_cache_hits_total", Help: "OpenBao path checks answered from the cache.",
		}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iss_openbao_logins_total", Help: "Logins of the OpenBao existence check (token file reads with the token method), by result: ok, failed.",
		}, []string{"result"}),
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
	if m.logins, err = promreg.Register(reg, m.logins); err != nil {
		return nil, err
	}
	return m, nil
}
