package openbao

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/iss-platform/iss-webhook/internal/openbao/openbaotest"
)

// answer is an OpenBao answer as the verifier tells answers apart: the status, the error
// strings, and the data.
type answer struct {
	status int
	errors []string
	data   map[string]any
}

// ask sends one request with token (none when empty) and reads the answer.
func ask(t *testing.T, addr, method, path, token string, body any) answer {
	t.Helper()
	var reader *bytes.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		reader = bytes.NewReader(raw)
	} else {
		reader = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, addr+"/v1/"+path, reader)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var doc struct {
		Errors []string       `json:"errors"`
		Data   map[string]any `json:"data"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&doc)
	return answer{status: resp.StatusCode, errors: doc.Errors, data: doc.Data}
}

// scenario is one request and the answer OpenBao v2.6 gives it.
type scenario struct {
	name   string
	method string
	path   string
	// token is which token the request carries: root, limited, nodefault, unknown, or none.
	token  string
	body   any
	status int
	errors []string
	// vaultErrors are HashiCorp Vault's errors where they differ from OpenBao's.
	vaultErrors []string
	// check checks the data of a 200.
	check func(t *testing.T, data map[string]any)
	// sealed runs the request on a sealed server: these rows come last, as the server stays
	// sealed.
	sealed bool
}

// TestScenarios runs one table of requests, each answered as OpenBao v2.6 answers it (status
// and error body), against the test double and, when OPENBAO_ADDR and OPENBAO_TOKEN are set,
// against that real server, which the test sets up itself with the root token: so the double
// is seen to answer each case the verifier tells apart as the real server does.
func TestScenarios(t *testing.T) {
	t.Run("test double", func(t *testing.T) { runScenarios(t, newDoubleServer(t)) })
	t.Run("real server", func(t *testing.T) { runScenarios(t, realOpenBao(t)) })
}

func runScenarios(t *testing.T, srv server) {
	kv2, kv1, transit, absent := unique("iss-kv2"), unique("iss-kv1"), unique("iss-transit"), unique("iss-absent")
	k8s, role := unique("iss-k8s"), "iss-webhook"
	srv.MountKV(t, kv2, 2)
	srv.MountKV(t, kv1, 1)
	srv.MountEngine(t, transit, "transit")
	srv.Write(t, kv2, "artifacts/a/found")
	for range 3 {
		srv.Write(t, kv2, "artifacts/a/versions")
	}
	srv.DestroyVersion(t, kv2, "artifacts/a/versions", 1)
	srv.DeleteVersion(t, kv2, "artifacts/a/versions", 3)
	srv.EnableKubernetes(t, k8s, role, "openbao")
	tokens := map[string]string{
		"root":      srv.Root(),
		"limited":   srv.Token(t, []string{kv2 + "/metadata/artifacts/a/*"}, false),
		"nodefault": srv.Token(t, []string{kv2 + "/metadata/artifacts/a/*"}, true),
		"unknown":   "s.NotATokenOpenBaoKnows1234",
		"none":      "",
	}
	mountType := func(typ, version string) func(*testing.T, map[string]any) {
		return func(t *testing.T, data map[string]any) {
			options, _ := data["options"].(map[string]any)
			if data["type"] != typ || (version != "" && options["version"] != version) {
				t.Errorf("mount type %v, options %v; want %s version %q", data["type"], data["options"], typ, version)
			}
		}
	}
	versions := func(current float64, deleted, destroyed []string) func(*testing.T, map[string]any) {
		return func(t *testing.T, data map[string]any) {
			if data["current_version"] != current {
				t.Errorf("current_version %v, want %v", data["current_version"], current)
			}
			vs, _ := data["versions"].(map[string]any)
			for n, raw := range vs {
				v, _ := raw.(map[string]any)
				if isDeleted := v["deletion_time"] != ""; isDeleted != slices.Contains(deleted, n) {
					t.Errorf("version %s: deletion_time %q", n, v["deletion_time"])
				}
				if v["destroyed"] != slices.Contains(destroyed, n) {
					t.Errorf("version %s: destroyed %v", n, v["destroyed"])
				}
			}
		}
	}
	permissionDeniedVault := []string{"2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"}
	login := func(jwt, r string) map[string]any { return map[string]any{"role": r, "jwt": jwt} }
	goodAudience := openbaotest.UnsignedJWT("openbao", "iss-system", "iss-webhook", "0f7c2b8e-0000-4000-8000-000000000001")
	wrongAudience := openbaotest.UnsignedJWT("https://kubernetes.default.svc", "iss-system", "iss-webhook", "0f7c2b8e-0000-4000-8000-000000000001")
	for _, sc := range []scenario{
		{name: "KV v2 metadata of a written path", method: "GET", path: kv2 + "/metadata/artifacts/a/found", token: "root", status: 200, check: versions(1, nil, nil)},
		{name: "KV v2 metadata with a destroyed and a soft-deleted current version", method: "GET", path: kv2 + "/metadata/artifacts/a/versions", token: "root", status: 200, check: versions(3, []string{"3"}, []string{"1"})},
		{name: "KV v2 path without metadata", method: "GET", path: kv2 + "/metadata/artifacts/a/missing", token: "root", status: 404, errors: []string{}},
		{name: "KV v1 mount answers a metadata read as a missing KV v2 path", method: "GET", path: kv1 + "/metadata/artifacts/a/found", token: "root", status: 404, errors: []string{}},
		{name: "the type of a KV v2 mount", method: "GET", path: "sys/internal/ui/mounts/" + kv2, token: "root", status: 200, check: mountType("kv", "2")},
		{name: "the type of a KV v1 mount", method: "GET", path: "sys/internal/ui/mounts/" + kv1, token: "root", status: 200, check: mountType("kv", "1")},
		{name: "the type of a transit mount", method: "GET", path: "sys/internal/ui/mounts/" + transit, token: "root", status: 200, check: mountType("transit", "")},
		{name: "a missing mount, for a root token", method: "GET", path: absent + "/metadata/artifacts/a/x", token: "root", status: 404, errors: []string{openbaotest.NoHandler(absent + "/metadata/artifacts/a/x")}},
		{name: "a missing mount, for a least-privilege token", method: "GET", path: absent + "/metadata/artifacts/a/x", token: "limited", status: 403, errors: []string{openbaotest.ACLDenied}},
		{name: "a path the token's policy does not grant", method: "GET", path: kv2 + "/metadata/artifacts/b/x", token: "limited", status: 403, errors: []string{openbaotest.ACLDenied}},
		{name: "a path the token's policy grants", method: "GET", path: kv2 + "/metadata/artifacts/a/found", token: "limited", status: 200, check: versions(1, nil, nil)},
		{name: "the type of a mount the token may use", method: "GET", path: "sys/internal/ui/mounts/" + kv2, token: "limited", status: 200, check: mountType("kv", "2")},
		{name: "the type of a missing mount", method: "GET", path: "sys/internal/ui/mounts/" + absent, token: "limited", status: 403, errors: []string{openbaotest.PreflightDenied(absent)}},
		{name: "a token OpenBao does not know", method: "GET", path: kv2 + "/metadata/artifacts/a/found", token: "unknown", status: 403, errors: []string{openbaotest.PermissionDenied}, vaultErrors: permissionDeniedVault},
		{name: "no token", method: "GET", path: kv2 + "/metadata/artifacts/a/found", token: "none", status: 403, errors: []string{openbaotest.PermissionDenied}},
		{name: "lookup-self of a token with the default policy", method: "GET", path: "auth/token/lookup-self", token: "limited", status: 200},
		{name: "lookup-self of a token without the default policy", method: "GET", path: "auth/token/lookup-self", token: "nodefault", status: 403, errors: []string{openbaotest.ACLDenied}},
		{name: "lookup-self of a token OpenBao does not know", method: "GET", path: "auth/token/lookup-self", token: "unknown", status: 403, errors: []string{openbaotest.PermissionDenied}, vaultErrors: permissionDeniedVault},
		{name: "Kubernetes login at a mount where the method is not enabled", method: "POST", path: "auth/" + absent + "/login", token: "none", body: login(goodAudience, role), status: 403, errors: []string{openbaotest.PermissionDenied}},
		{name: "Kubernetes login with a role that does not exist", method: "POST", path: "auth/" + k8s + "/login", token: "none", body: login(goodAudience, "nope"), status: 400, errors: []string{openbaotest.InvalidRoleName("nope")}},
		{name: "Kubernetes login with an empty JWT", method: "POST", path: "auth/" + k8s + "/login", token: "none", body: login("", role), status: 400, errors: []string{"missing jwt"}},
		{name: "Kubernetes login with a JWT of another audience", method: "POST", path: "auth/" + k8s + "/login", token: "none", body: login(wrongAudience, role), status: 403, errors: []string{openbaotest.WrongAudience}},
		{name: "a sealed server", method: "GET", path: kv2 + "/metadata/artifacts/a/found", token: "root", status: 503, errors: []string{openbaotest.Sealed}, sealed: true},
		{name: "a login to a sealed server", method: "POST", path: "auth/" + k8s + "/login", token: "none", body: login(goodAudience, role), status: 503, errors: []string{openbaotest.Sealed}, sealed: true},
	} {
		t.Run(sc.name, func(t *testing.T) {
			if sc.sealed && !srv.Seal(t) {
				t.Skip("skipped on a real server: sealing it cannot be undone with the root token alone (a dev server's unseal key is not given), and would fail every later test")
			}
			got := ask(t, srv.Addr(), sc.method, sc.path, tokens[sc.token], sc.body)
			want := sc.errors
			if srv.Vault() && sc.vaultErrors != nil {
				want = sc.vaultErrors
			}
			if got.status != sc.status || (want != nil && !slices.Equal(got.errors, want)) {
				t.Fatalf("%s %s: %d %q, want %d %q", sc.method, sc.path, got.status, got.errors, sc.status, want)
			}
			if sc.check != nil {
				sc.check(t, got.data)
			}
		})
	}
}
