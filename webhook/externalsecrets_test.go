package webhook

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/iss-platform/iss-webhook/internal/openbao"
	"github.com/iss-platform/iss-webhook/internal/openbao/openbaotest"
	"github.com/iss-platform/iss-webhook/policy"
	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
)

// namespaceTable stands in for the namespace informer cache in handler tests.
type namespaceTable map[string]policy.Namespace

func (t namespaceTable) Namespace(_ context.Context, name string) (policy.Namespace, error) {
	if ns, ok := t[name]; ok {
		return ns, nil
	}
	return policy.Namespace{Name: name}, nil
}

func (t namespaceTable) SelectNamespaces(ctx context.Context, selector labels.Selector) ([]policy.Namespace, error) {
	all := policy.NamespaceLabels{}
	for name, ns := range t {
		all[name] = map[string]string{policy.LabelAppID: ns.AppID, policy.LabelEnvironment: ns.Environment}
	}
	return all.SelectNamespaces(ctx, selector)
}

func esRequest(doc string) admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "es", Operation: admissionv1.Create, Namespace: "team-a-dev", Name: "tokens",
		Kind:     metav1.GroupVersionKind{Group: "external-secrets.io", Version: "v1", Kind: "ExternalSecret"},
		Resource: metav1.GroupVersionResource{Group: "external-secrets.io", Version: "v1", Resource: "externalsecrets"},
		UserInfo: authenticationv1.UserInfo{Username: "alice"},
		Object:   runtime.RawExtension{Raw: []byte(doc)},
	}}
}

const tokensES = `{"apiVersion":"external-secrets.io/v1","kind":"ExternalSecret","metadata":{"name":"tokens","annotations":{"iss.platform/initiator-id":"alice"}},
	"spec":{"secretStoreRef":{"kind":"ClusterSecretStore","name":"openbao-dev"},
	"data":[{"secretKey":"a","remoteRef":{"key":"artifacts/team-a/public/secrets/api-token"}},{"secretKey":"b","remoteRef":{"key":"artifacts/team-a/users/alice/secrets/db"}}]}}`

// TestSecretsValidatorWithOpenBao runs the validator with the real verifier against the KV v2
// test double: found, missing, down with Deny and with Warn.
func TestSecretsValidatorWithOpenBao(t *testing.T) {
	double := openbaotest.NewKVv2TestDouble("s.token")
	double.Seed("kv-dev", "artifacts/team-a/public/secrets/api-token")
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("s.token"), 0o600); err != nil {
		t.Fatal(err)
	}
	pol := policy.Default()
	pol.OpenBao.Verify, pol.OpenBao.Address, pol.OpenBao.AuthMethod = true, double.Server.URL, policy.AuthToken
	verifier, err := openbao.NewPool(openbao.Credentials{TokenFile: file}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	namespaces := namespaceTable{"team-a-dev": {Name: "team-a-dev", AppID: "team-a", Environment: "dev"}}
	validator := secretsHandler(policy.NewHolder(pol), namespaces, testMetrics(t), verifier)
	ctx := context.Background()

	resp := validator.Handle(ctx, esRequest(tokensES))
	if resp.Allowed || resp.Result.Code != http.StatusUnprocessableEntity || len(resp.Result.Details.Causes) != 1 ||
		resp.Result.Details.Causes[0].Field != "spec.data[1].remoteRef.key" || !strings.Contains(resp.Result.Message, `no secret at this path in OpenBao (KV v2 mount "kv-dev"`) {
		t.Fatalf("missing path: %+v", resp.Result)
	}

	double.Seed("kv-dev", "artifacts/team-a/users/alice/secrets/db")
	fresh, _ := openbao.NewPool(openbao.Credentials{TokenFile: file}, prometheus.NewRegistry()) // the first one cached the miss
	validator = secretsHandler(policy.NewHolder(pol), namespaces, testMetrics(t), fresh)
	if resp := validator.Handle(ctx, esRequest(tokensES)); !resp.Allowed {
		t.Fatalf("found paths denied: %+v", resp.Result)
	}

	double.Server.Close()
	down, _ := openbao.NewPool(openbao.Credentials{TokenFile: file}, prometheus.NewRegistry())
	resp = secretsHandler(policy.NewHolder(pol), namespaces, testMetrics(t), down).Handle(ctx, esRequest(tokensES))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "OpenBao was unreachable") || !strings.Contains(resp.Result.Message, "onUnavailable: Deny") {
		t.Fatalf("down, Deny: %+v", resp.Result)
	}
	warn := *pol
	warn.OpenBao.OnUnavailable = policy.UnavailableWarn
	warn.OpenBao.Timeout = 200 * time.Millisecond
	resp = secretsHandler(policy.NewHolder(&warn), namespaces, testMetrics(t), down).Handle(ctx, esRequest(tokensES))
	if !resp.Allowed || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "OpenBao was unreachable") {
		t.Fatalf("down, Warn: allowed %v, warnings %v", resp.Allowed, resp.Warnings)
	}
}

func TestInitiatorDefaulter(t *testing.T) {
	req := esRequest(`{"apiVersion":"external-secrets.io/v1","kind":"ExternalSecret","metadata":{"name":"tokens"},"spec":{"refreshInterval":"1h","unknownField":{"kept":true}}}`)
	resp := initiatorHandler().Handle(context.Background(), req)
	if !resp.Allowed || len(resp.Patches) != 1 || resp.Patches[0].Path != "/metadata/annotations" {
		t.Fatalf("got %+v", resp.Patches)
	}
	if v := resp.Patches[0].Value.(map[string]any)[policy.AnnotationInitiatorID]; v != "alice" {
		t.Errorf("initiator %v", v)
	}
	req = esRequest(tokensES)
	if resp := initiatorHandler().Handle(context.Background(), req); len(resp.Patches) != 0 {
		t.Errorf("an initiator that is set was changed: %+v", resp.Patches)
	}
}

func TestSecretsValidatorUpdates(t *testing.T) {
	namespaces := namespaceTable{"team-a-dev": {Name: "team-a-dev", AppID: "team-a", Environment: "dev"}}
	validator := secretsHandler(policy.NewHolder(policy.Default()), namespaces, testMetrics(t), nil)
	ctx := context.Background()
	update := func(old, cur, user string) admission.Request {
		req := esRequest(cur)
		req.Operation, req.OldObject, req.UserInfo.Username = admissionv1.Update, runtime.RawExtension{Raw: []byte(old)}, user
		return req
	}
	pointed := strings.Replace(tokensES, "artifacts/team-a/public/secrets/api-token", "artifacts/team-a/users/alice/secrets/other", 1)
	finalized := strings.Replace(tokensES, `"name":"tokens",`, `"name":"tokens","finalizers":["externalsecrets.external-secrets.io/x"],`, 1)
	beingDeleted := func(doc string) string {
		return strings.Replace(doc, `"name":"tokens",`, `"name":"tokens","deletionTimestamp":"2026-11-28T00:00:00Z",`, 1)
	}
	otherApp := strings.Replace(tokensES, "artifacts/team-a/public/secrets/api-token", "artifacts/team-b/public/secrets/api-token", 1)
	trusted := func(req admission.Request) admission.Request {
		req.UserInfo.Groups = []string{"system:masters"}
		return req
	}
	synced := func(key string) string {
		return `{"syncedPushSecrets":{"ClusterSecretStore/openbao-dev":{"` + key + `":{"match":{"secretKey":"k","remoteRef":{"remoteKey":"` + key + `"}}}}}}`
	}
	otherAppSynced, ownSynced := synced("artifacts/team-b/public/secrets/db"), synced("artifacts/team-a/public/secrets/x")
	pushStatus := func(old, cur string) admission.Request {
		req := update(old, cur, "system:serviceaccount:external-secrets:external-secrets")
		req.SubResource = "status"
		req.Kind = metav1.GroupVersionKind{Group: "external-secrets.io", Version: "v1alpha1", Kind: "PushSecret"}
		req.Resource = metav1.GroupVersionResource{Group: "external-secrets.io", Version: "v1alpha1", Resource: "pushsecrets"}
		return req
	}
	for _, tc := range []struct {
		name    string
		req     admission.Request
		allowed bool
		message string
	}{
		{"another user changes what alice's object reads", update(tokensES, pointed, "bob"), false, `only its initiator "alice"`},
		{"alice changes it herself", update(tokensES, pointed, "alice"), true, ""},
		{"the controller adds a finalizer", update(tokensES, finalized, "system:serviceaccount:external-secrets:external-secrets"), true, ""},
		{"an object being deleted may not be retargeted", update(beingDeleted(tokensES), beingDeleted(pointed), "alice"), false, "is being deleted"},
		{"an object being deleted loses a finalizer", update(beingDeleted(finalized), beingDeleted(tokensES), "system:serviceaccount:external-secrets:external-secrets"), true, ""},
		{"a trusted identity retargets an object being deleted at another app's path", trusted(update(beingDeleted(tokensES), beingDeleted(otherApp), "admin")), false, `belongs to the app "team-b"`},
		{"a trusted identity fixes an object being deleted within the rules", trusted(update(beingDeleted(tokensES), beingDeleted(pointed), "admin")), true, ""},
		{"a PushSecret's status records another app's path, which External Secrets would delete", pushStatus(pushSecretDoc("artifacts/team-a/public/secrets/x", ""), pushSecretDoc("artifacts/team-a/public/secrets/x", otherAppSynced)), false,
			`status.syncedPushSecrets[ClusterSecretStore/openbao-dev][artifacts/team-b/public/secrets/db].match.remoteRef.remoteKey: Forbidden: path "artifacts/team-b/public/secrets/db" belongs to the app "team-b"`},
		{"a PushSecret's status records its own paths", pushStatus(pushSecretDoc("artifacts/team-a/public/secrets/x", ""), pushSecretDoc("artifacts/team-a/public/secrets/x", ownSynced)), true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := validator.Handle(ctx, tc.req)
			if resp.Allowed != tc.allowed || (!resp.Allowed && !strings.Contains(resp.Result.Message, tc.message)) {
				t.Fatalf("allowed %v: %+v", resp.Allowed, resp.Result)
			}
		})
	}
}

// pushSecretDoc is a PushSecret of alice's in team-a-dev writing remoteKey, with a status.
func pushSecretDoc(remoteKey, status string) string {
	if status == "" {
		status = "{}"
	}
	return `{"apiVersion":"external-secrets.io/v1alpha1","kind":"PushSecret","metadata":{"name":"tokens","annotations":{"iss.platform/initiator-id":"alice"}},
		"spec":{"secretStoreRefs":[{"kind":"ClusterSecretStore","name":"openbao-dev"}],"selector":{"secret":{"name":"local"}},
		"data":[{"match":{"secretKey":"k","remoteRef":{"remoteKey":"` + remoteKey + `"}}}]},"status":` + status + `}`
}

// TestSecretBindingsHoldInEveryMode: the path, app, initiator and store rules isolate the apps'
// secrets, so neither Warn or Audit mode nor an exempt namespace lets another app's path in;
// only the existence check follows the secrets group's mode.
func TestSecretBindingsHoldInEveryMode(t *testing.T) {
	otherApp := strings.Replace(tokensES, "artifacts/team-a/public/secrets/api-token", "artifacts/team-b/public/secrets/api-token", 1)
	namespaces := namespaceTable{"team-a-dev": {Name: "team-a-dev", AppID: "team-a", Environment: "dev"}}
	for _, mode := range []v1alpha1.EnforcementMode{v1alpha1.Warn, v1alpha1.Audit} {
		pol := policy.Default()
		pol.Enforcement[policy.RuleSecrets] = mode
		pol.ExemptNamespaces = []string{"team-a-dev"}
		resp := secretsHandler(policy.NewHolder(pol), namespaces, testMetrics(t), nil).Handle(context.Background(), esRequest(otherApp))
		if resp.Allowed || resp.Result.Code != http.StatusUnprocessableEntity || !strings.Contains(resp.Result.Message, `belongs to the app "team-b"`) {
			t.Errorf("%s, exempt namespace: another app's path was not denied: %+v", mode, resp.Result)
		}
	}

	double := openbaotest.NewKVv2TestDouble("s.token")
	double.Seed("kv-dev", "artifacts/team-a/public/secrets/other")
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("s.token"), 0o600); err != nil {
		t.Fatal(err)
	}
	pol := policy.Default()
	pol.Enforcement[policy.RuleSecrets] = v1alpha1.Warn
	pol.OpenBao.Verify, pol.OpenBao.Address, pol.OpenBao.AuthMethod = true, double.Server.URL, policy.AuthToken
	verifier, err := openbao.NewPool(openbao.Credentials{TokenFile: file}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	resp := secretsHandler(policy.NewHolder(pol), namespaces, testMetrics(t), verifier).Handle(context.Background(), esRequest(tokensES))
	if !resp.Allowed || len(resp.Warnings) != 2 || !strings.Contains(resp.Warnings[0], "iss-webhook (secrets: Warn): spec.data[0].remoteRef.key: Not found") {
		t.Errorf("missing paths in Warn mode: allowed %v, warnings %q", resp.Allowed, resp.Warnings)
	}
}

// secretsHandler is the handler of the validating secrets webhook.
func secretsHandler(pol policy.Provider, namespaces policy.NamespaceLookup, metrics *Metrics, verifier policy.PathVerifier) admission.Handler {
	return Handlers(NewScheme(), Options{Policies: pol, Namespaces: namespaces, Metrics: metrics, OpenBao: verifier})[ValidateSecretsPath].Handler
}

// initiatorHandler is the handler of the mutating secrets webhook.
func initiatorHandler() admission.Handler {
	m, _ := NewMetrics(prometheus.NewRegistry())
	return Handlers(NewScheme(), Options{Policies: policy.NewHolder(policy.Default()), Metrics: m})[MutateExternalSecretsPath].Handler
}

// TestSecretsValidatorOpenBaoVersionsAndMounts runs the validator with the real verifier against
// the test double: a pinned destroyed version is denied at its field, a soft-deleted current
// version at the key, and a KV v1 mount is refused as misconfigured, not as a missing path.
func TestSecretsValidatorOpenBaoVersionsAndMounts(t *testing.T) {
	double := openbaotest.NewKVv2TestDouble("s.token")
	defer double.Server.Close()
	for range 2 {
		double.Seed("kv-dev", "artifacts/team-a/public/secrets/api-token")
	}
	double.DestroyVersion("kv-dev", "artifacts/team-a/public/secrets/api-token", 1)
	double.Seed("kv-dev", "artifacts/team-a/users/alice/secrets/db")
	double.DeleteVersion("kv-dev", "artifacts/team-a/users/alice/secrets/db", 0)
	double.Mount("kv-prod", "kv", 1)
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("s.token"), 0o600); err != nil {
		t.Fatal(err)
	}
	pol := policy.Default()
	pol.OpenBao.Verify, pol.OpenBao.Address, pol.OpenBao.AuthMethod = true, double.Server.URL, policy.AuthToken
	verifier, err := openbao.NewPool(openbao.Credentials{TokenFile: file}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	namespaces := namespaceTable{
		"team-a-dev":  {Name: "team-a-dev", AppID: "team-a", Environment: "dev"},
		"team-a-prod": {Name: "team-a-prod", AppID: "team-a", Environment: "prod"},
	}
	validator := secretsHandler(policy.NewHolder(pol), namespaces, testMetrics(t), verifier)
	pinned := strings.Replace(tokensES, `"remoteRef":{"key":"artifacts/team-a/public/secrets/api-token"}`, `"remoteRef":{"key":"artifacts/team-a/public/secrets/api-token","version":"1"}`, 1)
	resp := validator.Handle(context.Background(), esRequest(pinned))
	if resp.Allowed || resp.Result.Code != http.StatusUnprocessableEntity || len(resp.Result.Details.Causes) != 2 ||
		resp.Result.Details.Causes[0].Field != "spec.data[0].remoteRef.version" || resp.Result.Details.Causes[1].Field != "spec.data[1].remoteRef.key" ||
		!strings.Contains(resp.Result.Message, "version 1 of this secret") || !strings.Contains(resp.Result.Message, "is destroyed") ||
		!strings.Contains(resp.Result.Message, "the current version (1) of this secret") || !strings.Contains(resp.Result.Message, "is deleted") {
		t.Fatalf("pinned destroyed, current deleted: %+v", resp.Result)
	}

	prod := esRequest(strings.Replace(tokensES, "openbao-dev", "openbao-prod", 1))
	prod.Namespace = "team-a-prod"
	resp = validator.Handle(context.Background(), prod)
	if resp.Allowed || !strings.Contains(resp.Result.Message, "OpenBao mount kv-prod is a KV version 1 mount") || !strings.Contains(resp.Result.Message, "mount KV v2 there") ||
		strings.Contains(resp.Result.Message, "no secret at this path") {
		t.Fatalf("KV v1 mount: %+v", resp.Result)
	}
}

// TestExternalSecretsSideDoorsThroughTheHandler: the cluster-scoped kinds, stores and generators
// reach their rules through the secrets webhook, with the namespace cache behind them.
func TestExternalSecretsSideDoorsThroughTheHandler(t *testing.T) {
	samples := sampleObjects(t)
	namespaces := namespaceTable{"team-a-dev": {Name: "team-a-dev", AppID: "team-a", Environment: "dev"}, "team-b-staging": {Name: "team-b-staging", AppID: "team-b", Environment: "staging"}}
	validator := secretsHandler(policy.NewHolder(policy.Default()), namespaces, testMetrics(t), nil)
	for _, tc := range []struct {
		kind    string
		user    authenticationv1.UserInfo
		allowed bool
		message string
	}{
		{"external-secrets.io/ClusterExternalSecret", userAlice, false, "only trusted identities"},
		{"external-secrets.io/ClusterExternalSecret", userAdmin, true, ""},
		{"external-secrets.io/ClusterPushSecret", userAdmin, false, `in namespace team-a-dev, which spec.namespaceSelectors[0] selects: path "artifacts/team-b/public/secrets/pushed" belongs to the app "team-b"`},
		{"external-secrets.io/ClusterSecretStore", userAlice, false, "only trusted identities"},
		{"external-secrets.io/ClusterSecretStore", userAdmin, true, ""},
		{"generators.external-secrets.io/VaultDynamicSecret", userAdmin, false, `kind: Forbidden: generator kind "VaultDynamicSecret"`},
		{"generators.external-secrets.io/Webhook", userAlice, false, `generator kind "Webhook"`},
		{"generators.external-secrets.io/Password", userAlice, true, ""},
		{"generators.external-secrets.io/GeneratorState", userAlice, false, `spec.resource.kind: Forbidden: generator kind "VaultDynamicSecret"`},
	} {
		resp := validator.Handle(context.Background(), admission.Request{AdmissionRequest: request(admissionv1.Create, "", tc.user, samples[tc.kind], nil)})
		if resp.Allowed != tc.allowed || (!resp.Allowed && !strings.Contains(resp.Result.Message, tc.message)) {
			t.Errorf("%s by %s: want allowed %v (%q), got %v %+v", tc.kind, tc.user.Username, tc.allowed, tc.message, resp.Allowed, resp.Result)
		}
	}
}
