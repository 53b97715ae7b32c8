// Package openbaotest has a test double of OpenBao for the webhook's tests: a small HTTP server
// that speaks just enough of the OpenBao API for the verifier (KV v2 metadata reads, the mount
// type at sys/internal/ui/mounts, auth/token/lookup-self and the Kubernetes auth login), and
// answers each case the verifier tells apart as OpenBao v2.6 does, status and error body alike:
// sealed, unknown or refused tokens, ACL denials, missing mounts, KV v1 and other mounts,
// soft-deleted and destroyed versions, and the Kubernetes login's refusals. It is not OpenBao;
// the scenario table of package openbao runs against it and, when OPENBAO_ADDR and
// OPENBAO_TOKEN are set, against a real server, so that the two are seen to agree.
package openbaotest

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The error bodies OpenBao v2.6 answers with (vault/request_handling.go, sdk/logical).
const (
	// PermissionDenied is the error of a request without a token, or with a token OpenBao does
	// not know (expired, revoked), and of a login at an auth mount that does not exist.
	PermissionDenied = "permission denied"
	// ACLDenied is the error of a known token whose policies do not grant the path, a path of a
	// mount that does not exist among them: the ACL check's multierror.
	ACLDenied = "1 error occurred:\n\t* permission denied\n\n"
	// Sealed is the error of every request to a sealed server, with status 503.
	Sealed = "Vault is sealed"
	// WrongAudience is the Kubernetes login's error for a JWT without the role's audience.
	WrongAudience = "invalid audience (aud) claim: audience claim does not match any expected audience"
)

// InvalidRoleName is the Kubernetes login's error for a role that does not exist.
func InvalidRoleName(role string) string { return fmt.Sprintf("invalid role name %q", role) }

// NoHandler is the error of a path of a mount that does not exist, for a token that may read it.
func NoHandler(path string) string {
	return fmt.Sprintf("no handler for route %q. route entry not found.", path)
}

// PreflightDenied is the error of sys/internal/ui/mounts/<mount> for a mount that does not exist
// or that the token may use no path of.
func PreflightDenied(mount string) string {
	return fmt.Sprintf("preflight capability check returned 403, please ensure client's policies grant access to path %q", strings.TrimSuffix(mount, "/")+"/")
}

// KVv2TestDouble is the test double of an OpenBao server.
type KVv2TestDouble struct {
	// Server is the HTTP server; its URL is the OpenBao address.
	Server *httptest.Server

	mu       sync.Mutex
	delay    time.Duration
	sealed   bool
	mounts   map[string]*mount
	tokens   map[string]*TokenPolicy
	handout  string
	k8s      kubernetesAuth
	requests map[string]int
	logins   int
	lookups  int
}

// TokenPolicy is what a token's policies grant.
type TokenPolicy struct {
	// Root grants everything, as a root token.
	Root bool
	// Read lists the paths the token may read, as ACL paths: exact, or a prefix ending in *.
	Read []string
	// NoDefaultPolicy withholds auth/token/lookup-self, as a token created without the
	// default policy.
	NoDefaultPolicy bool
}

type kubernetesAuth struct {
	enabled bool
	mount   string
	// roles are the roles and their audiences; nil accepts any role.
	roles map[string]string
}

type mount struct {
	typ     string
	version int
	secrets map[string]*secret
}

type secret struct {
	current  int
	versions map[int]*version
}

type version struct {
	created, deletion time.Time
	destroyed         bool
}

// NewKVv2TestDouble starts a test double over HTTP that accepts token as a root token, hands it
// out on a Kubernetes auth login (at auth/kubernetes, enabled, with any role) and has no mounts
// until Seed or Mount add them.
func NewKVv2TestDouble(token string) *KVv2TestDouble {
	d := newDouble(token)
	d.Server = httptest.NewServer(http.HandlerFunc(d.serve))
	return d
}

// NewKVv2TestDoubleOn is NewKVv2TestDouble serving on a listener of the caller's, such as one
// on an address that a cluster's pods reach.
func NewKVv2TestDoubleOn(l net.Listener, token string) *KVv2TestDouble {
	d := newDouble(token)
	d.Server = httptest.NewUnstartedServer(http.HandlerFunc(d.serve))
	d.Server.Listener.Close()
	d.Server.Listener = l
	d.Server.Start()
	return d
}

// NewTLSKVv2TestDouble is NewKVv2TestDouble over HTTPS, with a certificate for 127.0.0.1 that
// CACertPEM returns.
func NewTLSKVv2TestDouble(token string) *KVv2TestDouble {
	d := newDouble(token)
	d.Server = httptest.NewUnstartedServer(http.HandlerFunc(d.serve))
	// Clients that do not trust the certificate are what some tests are about.
	d.Server.Config.ErrorLog = log.New(io.Discard, "", 0)
	d.Server.StartTLS()
	return d
}

func newDouble(token string) *KVv2TestDouble {
	return &KVv2TestDouble{
		mounts: map[string]*mount{}, tokens: map[string]*TokenPolicy{token: {Root: true}}, handout: token,
		k8s: kubernetesAuth{enabled: true, mount: "kubernetes"}, requests: map[string]int{},
	}
}

// CACertPEM returns the PEM certificate that verifies a TLS double's serving certificate.
func (d *KVv2TestDouble) CACertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d.Server.Certificate().Raw})
}

// CertPool returns a pool with the TLS double's certificate.
func (d *KVv2TestDouble) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(d.Server.Certificate())
	return pool
}

// Mount adds a secrets engine: typ "kv" with version 1 or 2, or another type such as
// "transit" (version 0).
func (d *KVv2TestDouble) Mount(path, typ string, version int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.mounts[path] = &mount{typ: typ, version: version, secrets: map[string]*secret{}}
}

// Seed writes a new version of a path in a KV v2 mount, mounting KV v2 there first if nothing
// is mounted.
func (d *KVv2TestDouble) Seed(mountPath, path string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.mounts[mountPath]
	if m == nil {
		m = &mount{typ: "kv", version: 2, secrets: map[string]*secret{}}
		d.mounts[mountPath] = m
	}
	s := m.secrets[path]
	if s == nil {
		s = &secret{versions: map[int]*version{}}
		m.secrets[path] = s
	}
	s.current++
	s.versions[s.current] = &version{created: time.Now().UTC()}
}

// DeleteVersion soft-deletes a version of a path (0: the current one), as kv delete does.
func (d *KVv2TestDouble) DeleteVersion(mountPath, path string, n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if v := d.version(mountPath, path, n); v != nil {
		v.deletion = time.Now().UTC()
	}
}

// DestroyVersion destroys a version of a path (0: the current one), as kv destroy does.
func (d *KVv2TestDouble) DestroyVersion(mountPath, path string, n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if v := d.version(mountPath, path, n); v != nil {
		v.destroyed = true
	}
}

func (d *KVv2TestDouble) version(mountPath, path string, n int) *version {
	m := d.mounts[mountPath]
	if m == nil || m.secrets[path] == nil {
		return nil
	}
	s := m.secrets[path]
	if n == 0 {
		n = s.current
	}
	return s.versions[n]
}

// Seal seals or unseals the double.
func (d *KVv2TestDouble) Seal(sealed bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sealed = sealed
}

// EnableKubernetesAuth enables or disables the Kubernetes auth method at auth/kubernetes.
func (d *KVv2TestDouble) EnableKubernetesAuth(enabled bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.k8s.enabled = enabled
}

// MoveKubernetesAuth mounts the Kubernetes auth method at auth/<mount> instead.
func (d *KVv2TestDouble) MoveKubernetesAuth(mount string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.k8s.mount = mount
}

// AddKubernetesRole adds a role of the Kubernetes auth method that accepts JWTs of audience
// (any audience when empty). Once a role is added, logins with other roles are refused.
func (d *KVv2TestDouble) AddKubernetesRole(role, audience string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.k8s.roles == nil {
		d.k8s.roles = map[string]string{}
	}
	d.k8s.roles[role] = audience
}

// AddToken makes the double know a token with the given policy.
func (d *KVv2TestDouble) AddToken(token string, p TokenPolicy) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tokens[token] = &p
}

// HandOut makes the Kubernetes auth login hand out token from now on.
func (d *KVv2TestDouble) HandOut(token string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.handout = token
}

// SetDelay makes every answer wait, to play a slow server.
func (d *KVv2TestDouble) SetDelay(delay time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.delay = delay
}

// Requests returns how many metadata reads of the path the double has answered.
func (d *KVv2TestDouble) Requests(mountPath, path string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.requests[mountPath+"/"+path]
}

// RevokeTokens makes the double forget the token it hands out, as OpenBao does with an expired
// or revoked token, and hand out newToken, with the same policy, from the next login on.
func (d *KVv2TestDouble) RevokeTokens(newToken string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.tokens[d.handout]
	delete(d.tokens, d.handout)
	if p == nil {
		p = &TokenPolicy{Root: true}
	}
	d.tokens[newToken] = p
	d.handout = newToken
}

// Logins returns how many Kubernetes auth logins the double has accepted.
func (d *KVv2TestDouble) Logins() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logins
}

// TokenLookups returns how many auth/token/lookup-self requests the double has answered.
func (d *KVv2TestDouble) TokenLookups() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lookups
}

func (d *KVv2TestDouble) serve(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	delay := d.delay
	d.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	p := strings.TrimPrefix(r.URL.Path, "/v1/")
	if d.sealed {
		// Every request but the seal status, before anything else.
		writeErrors(w, http.StatusServiceUnavailable, Sealed)
		return
	}
	if (r.Method == http.MethodPost || r.Method == http.MethodPut) && strings.HasPrefix(p, "auth/") && strings.HasSuffix(p, "/login") {
		d.login(w, r, strings.TrimSuffix(strings.TrimPrefix(p, "auth/"), "/login"))
		return
	}
	token := d.tokens[r.Header.Get("X-Vault-Token")]
	if token == nil {
		writeErrors(w, http.StatusForbidden, PermissionDenied)
		return
	}
	switch {
	case p == "auth/token/lookup-self":
		if !token.Root && token.NoDefaultPolicy {
			writeErrors(w, http.StatusForbidden, ACLDenied)
			return
		}
		d.lookups++
		writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"id": r.Header.Get("X-Vault-Token"), "ttl": 3600, "policies": []string{"default"}}})
		return
	case strings.HasPrefix(p, "sys/internal/ui/mounts/"):
		name := strings.Trim(strings.TrimPrefix(p, "sys/internal/ui/mounts/"), "/")
		m := d.mounts[name]
		if m == nil || !token.mountAccess(name) {
			writeErrors(w, http.StatusForbidden, PreflightDenied(name))
			return
		}
		options := map[string]any{}
		if m.typ == "kv" {
			options["version"] = strconv.Itoa(m.version)
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"type": m.typ, "path": name + "/", "options": options, "description": "", "config": map[string]any{}}})
		return
	}
	if r.Method != http.MethodGet || !token.reads(p) {
		writeErrors(w, http.StatusForbidden, ACLDenied)
		return
	}
	name, rest, _ := strings.Cut(p, "/")
	m := d.mounts[name]
	switch {
	case m == nil:
		writeErrors(w, http.StatusNotFound, NoHandler(p))
	case m.typ != "kv":
		writeErrors(w, http.StatusNotFound, "unsupported path")
	case m.version == 1:
		// A KV v1 mount reads metadata/<path> as a key of that name, which it does not have.
		writeJSON(w, http.StatusNotFound, map[string]any{"errors": []string{}})
	case !strings.HasPrefix(rest, "metadata/"):
		writeJSON(w, http.StatusNotFound, map[string]any{"errors": []string{}})
	default:
		path := strings.TrimPrefix(rest, "metadata/")
		d.requests[name+"/"+path]++
		s := m.secrets[path]
		if s == nil {
			writeJSON(w, http.StatusNotFound, map[string]any{"errors": []string{}})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": s.metadata()})
	}
}

// login answers a Kubernetes auth login as the method does: the role, then the JWT, then the
// role's existence, then the JWT's audience.
func (d *KVv2TestDouble) login(w http.ResponseWriter, r *http.Request, authMount string) {
	if !d.k8s.enabled || authMount != d.k8s.mount {
		// No such auth mount: a request without a token, refused by the token check.
		writeErrors(w, http.StatusForbidden, PermissionDenied)
		return
	}
	var body struct{ Role, JWT string }
	_ = json.NewDecoder(r.Body).Decode(&body)
	switch {
	case body.Role == "":
		writeErrors(w, http.StatusBadRequest, "missing role")
		return
	case body.JWT == "":
		writeErrors(w, http.StatusBadRequest, "missing jwt")
		return
	}
	if d.k8s.roles != nil {
		audience, ok := d.k8s.roles[body.Role]
		if !ok {
			writeErrors(w, http.StatusBadRequest, InvalidRoleName(body.Role))
			return
		}
		if audience != "" && !slices.Contains(jwtAudiences(body.JWT), audience) {
			writeErrors(w, http.StatusForbidden, WrongAudience)
			return
		}
	}
	d.logins++
	writeJSON(w, http.StatusOK, map[string]any{"auth": map[string]any{"client_token": d.handout, "lease_duration": 3600, "renewable": true, "policies": []string{"default"}}})
}

// jwtAudiences reads the aud claim of a JWT without verifying it.
func jwtAudiences(jwt string) []string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil
	}
	var claims struct {
		Aud any `json:"aud"`
	}
	if json.Unmarshal(raw, &claims) != nil {
		return nil
	}
	switch aud := claims.Aud.(type) {
	case string:
		return []string{aud}
	case []any:
		var out []string
		for _, a := range aud {
			if s, ok := a.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// UnsignedJWT returns a JWT with the given audience and service account claims and a signature
// that nothing verifies, for the Kubernetes auth login of a server without public keys.
func UnsignedJWT(audience, namespace, serviceAccount, uid string) string {
	enc := func(v any) string {
		raw, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(raw)
	}
	return enc(map[string]string{"alg": "RS256", "typ": "JWT"}) + "." + enc(map[string]any{
		"iss": "kubernetes/serviceaccount", "aud": []string{audience}, "sub": "system:serviceaccount:" + namespace + ":" + serviceAccount,
		"kubernetes.io": map[string]any{"namespace": namespace, "serviceaccount": map[string]string{"name": serviceAccount, "uid": uid}},
	}) + "." + base64.RawURLEncoding.EncodeToString([]byte("not-a-signature-of-anything-that-is-checked"))
}

func (t *TokenPolicy) reads(path string) bool {
	if t.Root {
		return true
	}
	for _, p := range t.Read {
		if prefix, glob := strings.CutSuffix(p, "*"); glob && strings.HasPrefix(path, prefix) || p == path {
			return true
		}
	}
	return false
}

// mountAccess is OpenBao's hasMountAccess: some path of the mount is granted.
func (t *TokenPolicy) mountAccess(mount string) bool {
	if t.Root {
		return true
	}
	for _, p := range t.Read {
		if strings.HasPrefix(p, mount+"/") {
			return true
		}
	}
	return false
}

// metadata is a KV v2 metadata answer's data.
func (s *secret) metadata() map[string]any {
	versions := map[string]any{}
	oldest := 0
	for n, v := range s.versions {
		deletion := ""
		if !v.deletion.IsZero() {
			deletion = v.deletion.Format(time.RFC3339Nano)
		}
		versions[strconv.Itoa(n)] = map[string]any{"created_time": v.created.Format(time.RFC3339Nano), "deletion_time": deletion, "destroyed": v.destroyed}
		if oldest == 0 || n < oldest {
			oldest = n
		}
	}
	created := s.versions[oldest].created.Format(time.RFC3339Nano)
	updated := s.versions[s.current].created.Format(time.RFC3339Nano)
	return map[string]any{
		"current_version": s.current, "max_versions": 0, "oldest_version": 0, "cas_required": false,
		"created_time": created, "updated_time": updated, "delete_version_after": "0s",
		"custom_metadata": nil, "versions": versions,
	}
}

func writeErrors(w http.ResponseWriter, status int, errs ...string) {
	writeJSON(w, status, map[string]any{"errors": errs})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
