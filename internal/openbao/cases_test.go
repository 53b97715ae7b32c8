package openbao

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iss-platform/iss-webhook/policy"
)

// tokenVerifier returns a verifier of srv that uses token through a token file.
func tokenVerifier(t *testing.T, srv server, token string) *Verifier {
	t.Helper()
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := policy.DefaultOpenBaoPolicy()
	cfg.Verify, cfg.Address, cfg.AuthMethod, cfg.Timeout = true, srv.Addr(), policy.AuthToken, 10*time.Second
	v, err := New(cfg, Credentials{TokenFile: file}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// verifierCase is one check and what the verifier answers.
type verifierCase struct {
	name          string
	mount, path   string
	version       int
	token         string // root or limited
	state         policy.PathState
	answerVersion int
	current       int
	// unavailable, when set, is what the error must say.
	unavailable []string
}

// runVerifierCases sets up srv's state and runs the verifier's checks against it: the versions
// an object may read, KV v1 and other mounts, missing mounts and denied paths.
func runVerifierCases(t *testing.T, srv server) {
	kv2, kv1, transit, absent := unique("iss-kv2"), unique("iss-kv1"), unique("iss-transit"), unique("iss-absent")
	srv.MountKV(t, kv2, 2)
	srv.MountKV(t, kv1, 1)
	srv.MountEngine(t, transit, "transit")
	srv.Write(t, kv2, "artifacts/a/found")
	for range 4 {
		srv.Write(t, kv2, "artifacts/a/versions")
	}
	srv.DestroyVersion(t, kv2, "artifacts/a/versions", 1)
	srv.DeleteVersion(t, kv2, "artifacts/a/versions", 2)
	srv.DeleteVersion(t, kv2, "artifacts/a/versions", 4)
	srv.Write(t, kv2, "artifacts/a/destroyed")
	srv.DestroyVersion(t, kv2, "artifacts/a/destroyed", 1)
	verifiers := map[string]*Verifier{
		"root":    tokenVerifier(t, srv, srv.Root()),
		"limited": tokenVerifier(t, srv, srv.Token(t, []string{kv2 + "/metadata/artifacts/a/*", kv1 + "/metadata/artifacts/a/*", transit + "/metadata/artifacts/a/*"}, false)),
	}
	v1Fix := []string{"OpenBao mount " + kv1 + " is a KV version 1 mount", "mount KV v2 there", "bao kv enable-versioning " + kv1}
	for _, c := range []verifierCase{
		{name: "the current version", mount: kv2, path: "artifacts/a/found", token: "root", state: policy.PathFound, answerVersion: 1, current: 1},
		{name: "a soft-deleted current version", mount: kv2, path: "artifacts/a/versions", token: "root", state: policy.PathDeleted, answerVersion: 4, current: 4},
		{name: "a pinned version", mount: kv2, path: "artifacts/a/versions", version: 3, token: "root", state: policy.PathFound, answerVersion: 3, current: 4},
		{name: "a pinned soft-deleted version", mount: kv2, path: "artifacts/a/versions", version: 2, token: "root", state: policy.PathDeleted, answerVersion: 2, current: 4},
		{name: "a pinned destroyed version", mount: kv2, path: "artifacts/a/versions", version: 1, token: "root", state: policy.PathDestroyed, answerVersion: 1, current: 4},
		{name: "a pinned version never written", mount: kv2, path: "artifacts/a/versions", version: 7, token: "root", state: policy.PathNoSuchVersion, answerVersion: 7, current: 4},
		{name: "a destroyed current version", mount: kv2, path: "artifacts/a/destroyed", token: "root", state: policy.PathDestroyed, answerVersion: 1, current: 1},
		{name: "a missing path", mount: kv2, path: "artifacts/a/missing", token: "root", state: policy.PathMissing},
		{name: "a missing path, pinned", mount: kv2, path: "artifacts/a/missing", version: 2, token: "root", state: policy.PathMissing, answerVersion: 2},
		{name: "a missing path, least privilege", mount: kv2, path: "artifacts/a/missing", token: "limited", state: policy.PathMissing},
		{name: "a found path, least privilege", mount: kv2, path: "artifacts/a/found", token: "limited", state: policy.PathFound, answerVersion: 1, current: 1},
		{name: "a KV v1 mount is misconfigured, not a missing path", mount: kv1, path: "artifacts/a/found", token: "root", unavailable: v1Fix},
		{name: "a KV v1 mount, least privilege", mount: kv1, path: "artifacts/a/found", token: "limited", unavailable: v1Fix},
		{name: "a transit mount", mount: transit, path: "artifacts/a/found", token: "root", unavailable: []string{"OpenBao mount " + transit + " is a transit secrets engine, not KV v2", "mount KV v2 there"}},
		{name: "a missing mount, root token", mount: absent, path: "artifacts/a/found", token: "root", unavailable: []string{"OpenBao has no mount " + absent, "no handler for route", "bao secrets enable -path=" + absent + " -version=2 kv"}},
		{name: "a missing mount, least privilege", mount: absent, path: "artifacts/a/found", token: "limited", unavailable: []string{"the webhook's OpenBao token may not read " + absent + "/metadata/artifacts/a/found", "check that the mount " + absent + " exists"}},
		{name: "a path the token may not read", mount: kv2, path: "artifacts/b/x", token: "limited", unavailable: []string{"the webhook's OpenBao token may not read " + kv2 + "/metadata/artifacts/b/x", "grant its policy read there", `path "` + kv2 + `/metadata/artifacts/*" { capabilities = ["read"] }`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := verifiers[c.token].Check(context.Background(), c.mount, c.path, c.version)
			if c.unavailable != nil {
				if !errors.Is(err, ErrUnavailable) {
					t.Fatalf("got %+v, %v; want unavailable", got, err)
				}
				for _, want := range c.unavailable {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("%v\ndoes not say %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.State != c.state || got.Version != c.answerVersion || got.Current != c.current || got.Caveat != "" {
				t.Fatalf("got %+v, want state %d version %d current %d", got, c.state, c.answerVersion, c.current)
			}
		})
	}
}

func TestVerifierCases(t *testing.T) { runVerifierCases(t, newDoubleServer(t)) }
