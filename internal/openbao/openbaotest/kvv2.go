// Package openbaotest has a test double of OpenBao for the webhook's tests: a small HTTP server
// that speaks just enough of the OpenBao API (KV v2 metadata reads and the Kubernetes auth
// login) to test the verifier against. It is not OpenBao; the integration test in package
// openbao runs against a real server when OPENBAO_ADDR and OPENBAO_TOKEN are set.
package openbaotest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// KVv2TestDouble is the test double of an OpenBao server with KV v2 mounts.
type KVv2TestDouble struct {
	// Server is the HTTP server; its URL is the OpenBao address.
	Server *httptest.Server

	mu       sync.Mutex
	paths    map[string]bool
	delay    time.Duration
	requests map[string]int
	logins   int
	token    string
}

// NewKVv2TestDouble starts a test double that accepts the given token, or a token it hands out
// on a Kubernetes auth login with any role and a non-empty JWT.
func NewKVv2TestDouble(token string) *KVv2TestDouble {
	d := &KVv2TestDouble{paths: map[string]bool{}, requests: map[string]int{}, token: token}
	d.Server = httptest.NewServer(http.HandlerFunc(d.serve))
	return d
}

// Seed makes a path exist in a mount.
func (d *KVv2TestDouble) Seed(mount, path string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.paths[mount+"/"+path] = true
}

// SetDelay makes every answer wait, to play a slow server.
func (d *KVv2TestDouble) SetDelay(delay time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.delay = delay
}

// Requests returns how many metadata reads of the path the double has answered.
func (d *KVv2TestDouble) Requests(mount, path string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.requests[mount+"/"+path]
}

// RevokeTokens makes the double refuse the token it handed out until the next login, as
// OpenBao does with an expired token.
func (d *KVv2TestDouble) RevokeTokens(newToken string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.token = newToken
}

// Logins returns how many Kubernetes auth logins the double has answered.
func (d *KVv2TestDouble) Logins() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logins
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
	p := strings.TrimPrefix(r.URL.Path, "/v1/")
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		if strings.HasPrefix(p, "auth/") && strings.HasSuffix(p, "/login") {
			var body struct{ Role, JWT string }
			_ = json.NewDecoder(r.Body).Decode(&body)
			if body.Role == "" || body.JWT == "" {
				writeJSON(w, http.StatusBadRequest, map[string]any{"errors": []string{"missing role or jwt"}})
				return
			}
			d.mu.Lock()
			d.logins++
			d.mu.Unlock()
			writeJSON(w, http.StatusOK, map[string]any{"auth": map[string]any{"client_token": d.token, "lease_duration": 3600, "renewable": true}})
			return
		}
	}
	if r.Header.Get("X-Vault-Token") != d.token {
		writeJSON(w, http.StatusForbidden, map[string]any{"errors": []string{"permission denied"}})
		return
	}
	mount, path, ok := strings.Cut(p, "/metadata/")
	if r.Method != http.MethodGet || !ok {
		writeJSON(w, http.StatusNotFound, map[string]any{"errors": []string{}})
		return
	}
	d.mu.Lock()
	d.requests[mount+"/"+path]++
	found := d.paths[mount+"/"+path]
	knownMount := false
	for p := range d.paths {
		knownMount = knownMount || strings.HasPrefix(p, mount+"/")
	}
	d.mu.Unlock()
	if !knownMount {
		// As OpenBao answers for a mount that does not exist.
		writeJSON(w, http.StatusNotFound, map[string]any{"errors": []string{"no handler for route \"" + mount + "/metadata/" + path + "\". route entry not found."}})
		return
	}
	if !found {
		writeJSON(w, http.StatusNotFound, map[string]any{"errors": []string{}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{
		"current_version": 1, "max_versions": 0, "oldest_version": 0, "cas_required": false,
		"created_time": "2026-11-28T00:00:00Z", "updated_time": "2026-11-28T00:00:00Z", "delete_version_after": "0s",
		"custom_metadata": nil,
		"versions":        map[string]any{"1": map[string]any{"created_time": "2026-11-28T00:00:00Z", "deletion_time": "", "destroyed": false}},
	}})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
