package openbao

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openbao/openbao/api/v2"

	"github.com/iss-platform/iss-webhook/internal/openbao/openbaotest"
)

// server is an OpenBao that the scenarios run against, its state set up by the test itself:
// the test double through its methods, or a real server through its API with a root token.
type server interface {
	// Addr is the address; Root a root token.
	Addr() string
	Root() string
	// Vault tells a HashiCorp Vault server, whose answers differ from OpenBao's in places.
	Vault() bool
	MountKV(t *testing.T, path string, version int)
	MountEngine(t *testing.T, path, typ string)
	// Write writes a new version of a KV v2 path.
	Write(t *testing.T, mount, path string)
	DeleteVersion(t *testing.T, mount, path string, version int)
	DestroyVersion(t *testing.T, mount, path string, version int)
	// Token returns a new token whose policy grants read on the paths (ACL globs), with the
	// default policy unless noDefault.
	Token(t *testing.T, read []string, noDefault bool) string
	// EnableKubernetes enables the Kubernetes auth method at auth/<mount>, configured for a
	// Kubernetes API that is not there, and adds a role of audience.
	EnableKubernetes(t *testing.T, mount, role, audience string)
	// Seal seals the server for the rest of the test; false when it cannot be undone.
	Seal(t *testing.T) bool
}

// unique names the real server's mounts, policies and roles of one test run.
func unique(prefix string) string {
	return prefix + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
}

// doubleServer is the test double as a server.
type doubleServer struct {
	d      *openbaotest.KVv2TestDouble
	root   string
	tokens atomic.Int64
}

func newDoubleServer(t *testing.T) *doubleServer {
	d := openbaotest.NewKVv2TestDouble("s.root")
	t.Cleanup(d.Server.Close)
	return &doubleServer{d: d, root: "s.root"}
}

func (s *doubleServer) Addr() string { return s.d.Server.URL }
func (s *doubleServer) Root() string { return s.root }
func (s *doubleServer) Vault() bool  { return false }
func (s *doubleServer) MountKV(_ *testing.T, path string, version int) {
	s.d.Mount(path, "kv", version)
}
func (s *doubleServer) MountEngine(_ *testing.T, path, typ string) { s.d.Mount(path, typ, 0) }
func (s *doubleServer) Write(_ *testing.T, mount, path string)     { s.d.Seed(mount, path) }
func (s *doubleServer) DeleteVersion(_ *testing.T, mount, path string, version int) {
	s.d.DeleteVersion(mount, path, version)
}
func (s *doubleServer) DestroyVersion(_ *testing.T, mount, path string, version int) {
	s.d.DestroyVersion(mount, path, version)
}
func (s *doubleServer) Token(_ *testing.T, read []string, noDefault bool) string {
	token := fmt.Sprintf("s.limited-%d", s.tokens.Add(1))
	s.d.AddToken(token, openbaotest.TokenPolicy{Read: read, NoDefaultPolicy: noDefault})
	return token
}
func (s *doubleServer) EnableKubernetes(_ *testing.T, mount, role, audience string) {
	s.d.MoveKubernetesAuth(mount)
	s.d.EnableKubernetesAuth(true)
	s.d.AddKubernetesRole(role, audience)
}
func (s *doubleServer) Seal(*testing.T) bool { s.d.Seal(true); return true }

// realServer is the server at OPENBAO_ADDR, with the root token OPENBAO_TOKEN.
type realServer struct {
	addr, root string
	client     *api.Client
	vault      bool
}

// realOpenBao returns the real server of OPENBAO_ADDR and OPENBAO_TOKEN, or skips the test.
func realOpenBao(t *testing.T) *realServer {
	t.Helper()
	addr, token := os.Getenv("OPENBAO_ADDR"), os.Getenv("OPENBAO_TOKEN")
	if addr == "" || token == "" {
		t.Skip("skipped: set OPENBAO_ADDR and OPENBAO_TOKEN (the root token of `bao server -dev`, or of `vault server -dev`) to run against a real server")
	}
	conf := api.DefaultConfig()
	conf.Address = addr
	client, err := api.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	client.SetToken(token)
	health, err := client.Sys().HealthWithContext(context.Background())
	if err != nil {
		t.Fatalf("reading the health of %s: %v", addr, err)
	}
	// OpenBao's versions are 2.x; HashiCorp Vault's 1.x.
	return &realServer{addr: addr, root: token, client: client, vault: strings.HasPrefix(health.Version, "1.")}
}

func (s *realServer) Addr() string { return s.addr }
func (s *realServer) Root() string { return s.root }
func (s *realServer) Vault() bool  { return s.vault }

func (s *realServer) MountKV(t *testing.T, path string, version int) {
	t.Helper()
	s.mount(t, path, &api.MountInput{Type: "kv", Options: map[string]string{"version": strconv.Itoa(version)}})
}

func (s *realServer) MountEngine(t *testing.T, path, typ string) {
	t.Helper()
	s.mount(t, path, &api.MountInput{Type: typ})
}

func (s *realServer) mount(t *testing.T, path string, in *api.MountInput) {
	t.Helper()
	ctx := context.Background()
	if err := s.client.Sys().MountWithContext(ctx, path, in); err != nil {
		t.Fatalf("mounting %s at %s: %v", in.Type, path, err)
	}
	t.Cleanup(func() { _ = s.client.Sys().UnmountWithContext(context.Background(), path) })
	if in.Type == "kv" && in.Options["version"] == "2" {
		// A new KV v2 mount upgrades its storage before it serves: wait for its first answer.
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, err := s.client.Logical().ReadWithContext(ctx, path+"/config")
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("KV v2 mount %s did not serve within 30s: %v", path, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func (s *realServer) Write(t *testing.T, mount, path string) {
	t.Helper()
	if _, err := s.client.KVv2(mount).Put(context.Background(), path, map[string]any{"value": "x"}); err != nil {
		t.Fatalf("writing %s/%s: %v", mount, path, err)
	}
}

func (s *realServer) DeleteVersion(t *testing.T, mount, path string, version int) {
	t.Helper()
	if err := s.client.KVv2(mount).DeleteVersions(context.Background(), path, []int{version}); err != nil {
		t.Fatalf("deleting version %d of %s/%s: %v", version, mount, path, err)
	}
}

func (s *realServer) DestroyVersion(t *testing.T, mount, path string, version int) {
	t.Helper()
	if err := s.client.KVv2(mount).Destroy(context.Background(), path, []int{version}); err != nil {
		t.Fatalf("destroying version %d of %s/%s: %v", version, mount, path, err)
	}
}

func (s *realServer) Token(t *testing.T, read []string, noDefault bool) string {
	t.Helper()
	ctx := context.Background()
	name := unique("iss-webhook-test")
	var rules strings.Builder
	for _, p := range read {
		fmt.Fprintf(&rules, "path %q { capabilities = [\"read\"] }\n", p)
	}
	if err := s.client.Sys().PutPolicyWithContext(ctx, name, rules.String()); err != nil {
		t.Fatalf("writing policy %s: %v", name, err)
	}
	t.Cleanup(func() { _ = s.client.Sys().DeletePolicyWithContext(context.Background(), name) })
	secret, err := s.client.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{name}, NoDefaultPolicy: noDefault, TTL: "10m"})
	if err != nil {
		t.Fatalf("creating a token of policy %s: %v", name, err)
	}
	token := secret.Auth.ClientToken
	t.Cleanup(func() { _ = s.client.Auth().Token().RevokeTreeWithContext(context.Background(), token) })
	return token
}

func (s *realServer) EnableKubernetes(t *testing.T, mount, role, audience string) {
	t.Helper()
	ctx := context.Background()
	if err := s.client.Sys().EnableAuthWithOptionsWithContext(ctx, mount, &api.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		t.Fatalf("enabling the Kubernetes auth method at auth/%s: %v", mount, err)
	}
	t.Cleanup(func() { _ = s.client.Sys().DisableAuthWithContext(context.Background(), mount) })
	// No Kubernetes API is there: the logins of these scenarios are refused before the
	// TokenReview.
	if _, err := s.client.Logical().WriteWithContext(ctx, "auth/"+mount+"/config", map[string]any{
		"kubernetes_host": "https://127.0.0.1:1", "disable_local_ca_jwt": true,
	}); err != nil {
		t.Fatalf("configuring auth/%s: %v", mount, err)
	}
	if _, err := s.client.Logical().WriteWithContext(ctx, "auth/"+mount+"/role/"+role, map[string]any{
		"bound_service_account_names": "iss-webhook", "bound_service_account_namespaces": "iss-system", "audience": audience, "token_ttl": "10m",
	}); err != nil {
		t.Fatalf("creating role %s of auth/%s: %v", role, mount, err)
	}
}

// Seal cannot be undone with the root token alone: a dev server's unseal key is not given.
func (s *realServer) Seal(*testing.T) bool { return false }
