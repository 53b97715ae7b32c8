package policy

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// clusterNamespaces are the namespaces of the cluster-scoped kinds' tests: two of team-a, one of
// team-b, one of no app.
var clusterNamespaces = NamespaceLabels{
	"team-a-dev":     {LabelAppID: "team-a", LabelEnvironment: "dev", "tier": "apps"},
	"team-a-prod":    {LabelAppID: "team-a", LabelEnvironment: "prod", "tier": "apps"},
	"team-b-staging": {LabelAppID: "team-b", LabelEnvironment: "staging", "tier": "apps"},
	"kube-system":    {},
}

func secretObject(t *testing.T, doc string) *SecretObject {
	t.Helper()
	o := &SecretObject{}
	if err := json.Unmarshal([]byte(doc), o); err != nil {
		t.Fatal(err)
	}
	return o
}

// findingErrors returns every violation of an outcome.
func findingErrors(out Outcome) field.ErrorList {
	var errs field.ErrorList
	for _, f := range out.Findings {
		errs = append(errs, f.Errors...)
	}
	return errs
}

// TestAdmitClusterExternalSecret: ClusterExternalSecrets and ClusterPushSecrets are made by
// trusted identities only, and what they would write into each namespace they select now follows
// that namespace's rules, for the initiator their metadata gives; a warning says that namespaces
// labelled later were not checked.
func TestAdmitClusterExternalSecret(t *testing.T) {
	ces := func(selection, initiator, data string) string {
		meta := ""
		if initiator != "" {
			meta = `"externalSecretMetadata":{"annotations":{"iss.platform/initiator-id":"` + initiator + `"}},`
		}
		return `{"apiVersion":"external-secrets.io/v1","kind":"ClusterExternalSecret","metadata":{"name":"shared"},"spec":{` + selection + `,` + meta + `
			"externalSecretSpec":{"secretStoreRef":{"kind":"ClusterSecretStore","name":"openbao-dev"},"data":[` + data + `]}}}`
	}
	key := func(k string) string { return `{"secretKey":"k","remoteRef":{"key":"` + k + `"}}` }
	const public = "artifacts/team-a/public/secrets/shared"
	cps := `{"apiVersion":"external-secrets.io/v1alpha1","kind":"ClusterPushSecret","metadata":{"name":"push"},"spec":{
		"namespaceSelectors":[{"matchLabels":{"iss.platform/app-id":"team-a"}}],
		"pushSecretSpec":{"secretStoreRefs":[{"kind":"ClusterSecretStore","name":"openbao-dev"}],"selector":{"generatorRef":{"apiVersion":"generators.external-secrets.io/v1alpha1","kind":"VaultDynamicSecret","name":"g"}},
			"data":[{"match":{"secretKey":"k","remoteRef":{"remoteKey":"artifacts/team-b/public/secrets/x"}}}]}}}`
	admin := &Request{Operation: Create, User: "admin", Trusted: true, Facts: Facts{Namespaces: clusterNamespaces}}
	for _, tc := range []struct {
		name     string
		req      *Request
		doc      string
		want     []wantErr
		warnings int
	}{
		{"an ordinary user", &Request{Operation: Create, User: "alice", Facts: Facts{Namespaces: clusterNamespaces}}, ces(`"namespaces":["team-a-dev"]`, "", key(public)),
			[]wantErr{{"spec", `only trusted identities (spec.trustedIdentities of the ISSPolicy) may create it or change its spec, and you are "alice"`}}, 0},
		{"the platform, the app's namespace by name", admin, ces(`"namespaces":["team-a-dev"]`, "", key(public)), nil, 0},
		{"the app's path written into another app's namespace", admin, ces(`"namespaces":["team-a-dev","team-b-staging"]`, "", key(public)), []wantErr{
			{"spec.externalSecretSpec.secretStoreRef", `in namespace team-b-staging, which spec.namespaces[1] selects: store ClusterSecretStore/openbao-dev is not the store of environment "staging"`},
			{"spec.externalSecretSpec.data[0].remoteRef.key", `in namespace team-b-staging, which spec.namespaces[1] selects: path "artifacts/team-a/public/secrets/shared" belongs to the app "team-a"`},
		}, 0},
		{"every namespace, those of no app and of the control plane among them", admin, ces(`"namespaceSelectors":[{}]`, "", key(public)), []wantErr{
			{"spec.namespaceSelectors[0]", "in namespace kube-system, which spec.namespaceSelectors[0] selects: namespace kube-system has no iss.platform/app-id label"},
			{"spec.externalSecretSpec.secretStoreRef", `in namespace team-a-prod, which spec.namespaceSelectors[0] selects: store ClusterSecretStore/openbao-dev is not the store of environment "prod"`},
			{"spec.externalSecretSpec.secretStoreRef", "in namespace team-b-staging"},
			{"spec.externalSecretSpec.data[0].remoteRef.key", "in namespace team-b-staging"},
		}, 1},
		{"the deprecated singular selector, by the name label", admin, ces(`"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"team-b-staging"}}`, "", key(public)), []wantErr{
			{"spec.externalSecretSpec.secretStoreRef", "which spec.namespaceSelector selects"},
			{"spec.externalSecretSpec.data[0].remoteRef.key", "which spec.namespaceSelector selects"},
		}, 1},
		{"a private path, for the initiator of the metadata", admin, ces(`"namespaces":["team-a-dev"]`, "alice", key("artifacts/team-a/users/alice/secrets/x")), nil, 0},
		{"a private path without an initiator", admin, ces(`"namespaces":["team-a-dev"]`, "", key("artifacts/team-a/users/alice/secrets/x")), []wantErr{
			{"spec.externalSecretSpec.data[0].remoteRef.key", `private path of user "alice", but this object's iss.platform/initiator-id is ""`},
		}, 0},
		{"a selector that matches nothing now", admin, ces(`"namespaceSelectors":[{"matchLabels":{"tier":"later"}}]`, "", key("artifacts/team-b/public/secrets/x")), nil, 1},
		{"a selector External Secrets cannot read", admin, ces(`"namespaceSelectors":[{"matchExpressions":[{"key":"tier","operator":"Near"}]}]`, "", key(public)),
			[]wantErr{{"spec.namespaceSelectors[0]", `"Near" is not a valid label selector operator`}}, 1},
		{"a ClusterPushSecret into another app, from a dynamic generator", admin, cps, []wantErr{
			{"spec.pushSecretSpec.selector.generatorRef.kind", "in namespace team-a-dev"},
			{"spec.pushSecretSpec.data[0].match.remoteRef.remoteKey", `in namespace team-a-dev, which spec.namespaceSelectors[0] selects: path "artifacts/team-b/public/secrets/x" belongs to the app "team-b"`},
			{"spec.pushSecretSpec.secretStoreRefs[0]", `in namespace team-a-prod`},
			{"spec.pushSecretSpec.selector.generatorRef.kind", "in namespace team-a-prod"},
			{"spec.pushSecretSpec.data[0].match.remoteRef.remoteKey", "in namespace team-a-prod"},
		}, 1},
		{"offline, where the namespaces are not known", &Request{Operation: Create, User: "admin", Trusted: true}, ces(`"namespaces":["team-b-staging"]`, "", key(public)), nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := AdmitClusterExternalSecret(context.Background(), Default(), tc.req, secretObject(t, tc.doc), nil)
			checkErrs(t, findingErrors(out), tc.want)
			if len(out.Warnings) != tc.warnings {
				t.Errorf("warnings %q, want %d", out.Warnings, tc.warnings)
			}
		})
	}

	// An update that leaves the spec as it is (External Secrets' own) passes; one that changes it
	// is judged whole.
	doc := ces(`"namespaces":["team-a-dev"]`, "", key(public))
	controller := &Request{Operation: Update, User: "system:serviceaccount:external-secrets:external-secrets", Facts: Facts{Namespaces: clusterNamespaces}}
	if out := AdmitClusterExternalSecret(context.Background(), Default(), controller, secretObject(t, doc), secretObject(t, doc)); out.Skip == "" {
		t.Errorf("an update that leaves the spec as it is was judged: %+v", out)
	}
	moved := ces(`"namespaces":["team-b-staging"]`, "", key(public))
	if out := AdmitClusterExternalSecret(context.Background(), Default(), controller, secretObject(t, moved), secretObject(t, doc)); !out.Denies(Default()) {
		t.Errorf("an ordinary update of the namespaces was admitted: %+v", out)
	}
	// A namespace cache that cannot answer refuses, so that the API server retries.
	down := &Request{Operation: Create, User: "admin", Trusted: true, Facts: Facts{Namespaces: failingNamespaces{}}}
	if out := AdmitClusterExternalSecret(context.Background(), Default(), down, secretObject(t, doc), nil); out.Refusal == nil || !out.Refusal.Unavailable {
		t.Errorf("the namespace cache failed, got %+v", out)
	}
}

// failingNamespaces is a namespace cache that cannot answer.
type failingNamespaces struct{}

func (failingNamespaces) Namespace(context.Context, string) (Namespace, error) {
	return Namespace{}, errors.New("not synced")
}

func (failingNamespaces) SelectNamespaces(context.Context, labels.Selector) ([]Namespace, error) {
	return nil, errors.New("not synced")
}

// TestAdmitGenerator: in an app's namespace only the generator kinds the policy allows may be
// created or changed, GeneratorStates included; elsewhere they are not the rules' concern.
func TestAdmitGenerator(t *testing.T) {
	gen := func(kind, spec string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		if err := json.Unmarshal([]byte(`{"apiVersion":"generators.external-secrets.io/v1alpha1","kind":"`+kind+`","metadata":{"name":"g","namespace":"team-a-dev"},"spec":`+spec+`}`), &u.Object); err != nil {
			t.Fatal(err)
		}
		return u
	}
	state := func(kind string) *unstructured.Unstructured {
		return gen("GeneratorState", `{"resource":{"apiVersion":"generators.external-secrets.io/v1alpha1","kind":"`+kind+`","spec":{}},"state":{}}`)
	}
	allowWebhook := Default()
	allowWebhook.Secrets.AllowedGeneratorKinds = []string{"Password", "Webhook"}
	in := func(ns string) *Request {
		return &Request{Operation: Create, Namespace: ns, User: "alice", Facts: Facts{Namespaces: clusterNamespaces}}
	}
	for _, tc := range []struct {
		name string
		pol  *Policy
		req  *Request
		obj  *unstructured.Unstructured
		want []wantErr
	}{
		{"a Password", Default(), in("team-a-dev"), gen("Password", `{"length":32}`), nil},
		{"a VaultDynamicSecret", Default(), in("team-a-dev"), gen("VaultDynamicSecret", `{"path":"kv-prod/data/artifacts/team-b/public/secrets/x"}`), []wantErr{{"kind", `"VaultDynamicSecret" reads any Vault or OpenBao path`}}},
		{"a Webhook generator pointed at OpenBao", Default(), in("team-a-dev"), gen("Webhook", `{"url":"https://openbao:8200/v1/kv-prod/data/x"}`), []wantErr{{"kind", "any HTTP endpoint, OpenBao's API among them"}}},
		{"a Webhook generator the policy allows", allowWebhook, in("team-a-dev"), gen("Webhook", `{"url":"https://example.org"}`), nil},
		{"a VaultDynamicSecret outside the apps' namespaces", Default(), in("kube-system"), gen("VaultDynamicSecret", `{}`), nil},
		{"a GeneratorState of a VaultDynamicSecret", Default(), in("team-a-dev"), state("VaultDynamicSecret"), []wantErr{{"spec.resource.kind", `"VaultDynamicSecret"`}}},
		{"a GeneratorState of a Password", Default(), in("team-a-dev"), state("Password"), nil},
		{"a GeneratorState without a generator", Default(), in("team-a-dev"), gen("GeneratorState", `{}`), []wantErr{{"spec.resource.apiVersion", "generators are of the group"}, {"spec.resource.kind", `generator kind ""`}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, findingErrors(AdmitGenerator(context.Background(), tc.pol, tc.req, tc.obj, nil)), tc.want)
		})
	}
	vds := gen("VaultDynamicSecret", `{"path":"x"}`)
	update := in("team-a-dev")
	update.Operation = Update
	relabelled := vds.DeepCopy()
	relabelled.SetLabels(map[string]string{"a": "b"})
	if out := AdmitGenerator(context.Background(), Default(), update, relabelled, vds); out.Skip == "" {
		t.Errorf("a generator made before the rule was judged on an update that leaves its spec: %+v", out)
	}
	changed := gen("VaultDynamicSecret", `{"path":"y"}`)
	if out := AdmitGenerator(context.Background(), Default(), update, changed, vds); len(findingErrors(out)) != 1 {
		t.Errorf("a change of a VaultDynamicSecret's spec was admitted: %+v", out)
	}
}

// TestAdmitClusterSecretStore: only trusted identities create ClusterSecretStores or change their
// spec.
func TestAdmitClusterSecretStore(t *testing.T) {
	store := func(server string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore", "metadata": map[string]any{"name": "openbao-prod"},
			"spec": map[string]any{"provider": map[string]any{"vault": map[string]any{"server": server}}}}}
	}
	for _, tc := range []struct {
		name     string
		req      *Request
		obj, old *unstructured.Unstructured
		denied   bool
	}{
		{"created by a user with RBAC for it", &Request{Operation: Create, User: "mallory"}, store("https://bao"), nil, true},
		{"retargeted by a user with RBAC for it", &Request{Operation: Update, User: "mallory"}, store("https://mine"), store("https://bao"), true},
		{"created by the platform", &Request{Operation: Create, User: "admin", Trusted: true}, store("https://bao"), nil, false},
		{"labelled by a user", &Request{Operation: Update, User: "mallory"}, store("https://bao"), store("https://bao"), false},
	} {
		out := AdmitClusterSecretStore(context.Background(), Default(), tc.req, tc.obj, tc.old)
		if got := len(findingErrors(out)) > 0; got != tc.denied || (got && !strings.Contains(findingErrors(out)[0].Detail, "only trusted identities")) {
			t.Errorf("%s: denied %v, want %v: %+v", tc.name, got, tc.denied, out)
		}
	}
}

// TestSecretReadsAndWrites: the Secrets of their namespace that the External Secrets kinds read
// and write, with the fields that name them.
func TestSecretReadsAndWrites(t *testing.T) {
	tmpl := `"template":{"templateFrom":[{"configMap":{"name":"cm"}},{"secret":{"name":"bobs-token"}}]}`
	for _, tc := range []struct {
		name          string
		doc           string
		reads, writes []string
	}{
		{"an ExternalSecret", `{"kind":"ExternalSecret","metadata":{"name":"es"},"spec":{"target":{"name":"out",` + tmpl + `}}}`,
			[]string{"spec.target.template.templateFrom[1].secret.name=bobs-token"}, []string{"spec.target.name=out"}},
		{"an ExternalSecret without a target", `{"kind":"ExternalSecret","metadata":{"name":"es"},"spec":{}}`, nil, []string{"spec.target.name=es"}},
		{"a PushSecret", `{"kind":"PushSecret","metadata":{"name":"ps"},"spec":{"selector":{"secret":{"name":"alices-token"}},` + tmpl + `}}`,
			[]string{"spec.selector.secret.name=alices-token", "spec.template.templateFrom[1].secret.name=bobs-token"}, nil},
		{"a ClusterExternalSecret", `{"kind":"ClusterExternalSecret","metadata":{"name":"ces"},"spec":{"externalSecretName":"made","externalSecretSpec":{"target":{` + tmpl + `}}}}`,
			[]string{"spec.externalSecretSpec.target.template.templateFrom[1].secret.name=bobs-token"}, []string{"spec.externalSecretSpec.target.name=made"}},
		{"a ClusterPushSecret", `{"kind":"ClusterPushSecret","metadata":{"name":"cps"},"spec":{"pushSecretSpec":{"selector":{"secret":{"name":"s"}}}}}`,
			[]string{"spec.pushSecretSpec.selector.secret.name=s"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			render := func(list []SecretRead) []string {
				var out []string
				for _, r := range list {
					out = append(out, r.Field.String()+"="+r.Name)
				}
				return out
			}
			obj := secretObject(t, tc.doc)
			if got := render(SecretReads(obj)); strings.Join(got, " ") != strings.Join(tc.reads, " ") {
				t.Errorf("reads %q, want %q", got, tc.reads)
			}
			if got := render(SecretWrites(obj)); strings.Join(got, " ") != strings.Join(tc.writes, " ") {
				t.Errorf("writes %q, want %q", got, tc.writes)
			}
		})
	}
}
