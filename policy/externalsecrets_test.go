package policy

import (
	"encoding/json"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var teamADev = Namespace{Name: "team-a-dev", AppID: "team-a", Environment: "dev"}

func decodeInto(t *testing.T, doc string, into any) {
	t.Helper()
	if err := json.Unmarshal([]byte(doc), into); err != nil {
		t.Fatal(err)
	}
}

type wantErr struct{ field, fragment string }

func checkErrs(t *testing.T, errs field.ErrorList, want []wantErr) {
	t.Helper()
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), errs.ToAggregate())
	}
	for i, w := range want {
		if errs[i].Field != w.field || !strings.Contains(errs[i].Error(), w.fragment) {
			t.Errorf("error %d = %v; want field %s containing %q", i, errs[i], w.field, w.fragment)
		}
	}
}

func TestValidateExternalSecret(t *testing.T) {
	const store = `"secretStoreRef":{"kind":"ClusterSecretStore","name":"openbao-dev"}`
	for _, tc := range []struct {
		name string
		ns   Namespace
		doc  string
		want []wantErr
	}{
		{name: "own public and user paths", ns: teamADev, doc: `{"metadata":{"annotations":{"iss.platform/initiator-id":"alice"}},"spec":{` + store + `,
			"data":[{"secretKey":"t","remoteRef":{"key":"artifacts/team-a/public/secrets/api-token"}},{"secretKey":"p","remoteRef":{"key":"/artifacts/team-a/users/alice/secrets/db"}}],
			"dataFrom":[{"extract":{"key":"artifacts/team-a/public/secrets/bundle"}}]}}`},
		{name: "every violation at once", ns: teamADev, doc: `{"metadata":{"annotations":{"iss.platform/initiator-id":"alice"}},"spec":{"secretStoreRef":{"name":"my-vault"},
			"data":[{"remoteRef":{"key":"artifacts/team-b/public/secrets/x"}},{"remoteRef":{"key":"artifacts/team-a/users/bob/secrets/x"}},{"remoteRef":{"key":"artifacts/team-a/public/secrets/../x"}},
			        {"remoteRef":{"key":"artifacts/team-a/public/secrets/x"},"sourceRef":{"storeRef":{"kind":"ClusterSecretStore","name":"openbao-prod"}}}],
			"dataFrom":[{"find":{"path":"artifacts"}},{"extract":{"key":"kv/data/anything"}},{"sourceRef":{"generatorRef":{"apiVersion":"generators.external-secrets.io/v1alpha1","kind":"VaultDynamicSecret","name":"g"}}}]}}`,
			want: []wantErr{
				{"spec.secretStoreRef", `store SecretStore/my-vault is not the store of environment "dev": use ClusterSecretStore/openbao-dev`},
				{"spec.data[0].remoteRef.key", `belongs to the app "team-b", but namespace team-a-dev belongs to "team-a"`},
				{"spec.data[1].remoteRef.key", `private path of user "bob", but this object's iss.platform/initiator-id is "alice"`},
				{"spec.data[2].remoteRef.key", "neither shape"},
				{"spec.data[3].sourceRef.storeRef", "openbao-prod is not the store"},
				{"spec.dataFrom[1].extract.key", `must start with "artifacts/"`},
				{"spec.dataFrom[2].sourceRef.generatorRef.kind", `generator kind "VaultDynamicSecret" reads any Vault or OpenBao path`},
			}},
		{name: "namespace of no app", ns: Namespace{Name: "scratch"}, doc: `{"spec":{"data":[{"remoteRef":{"key":"artifacts/team-a/public/secrets/x"}}]}}`,
			want: []wantErr{{"metadata.namespace", "namespace scratch has no iss.platform/app-id label"}}},
		{name: "environment without a store", ns: Namespace{Name: "team-a-qa", AppID: "team-a", Environment: "qa"}, doc: `{"spec":{"data":[{"remoteRef":{"key":"artifacts/team-a/public/secrets/x"}}]}}`,
			want: []wantErr{{"metadata.namespace", `"qa", which the policy maps to no store: it must be one of "dev", "prod", "staging"`}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es := &ExternalSecret{}
			decodeInto(t, tc.doc, es)
			checkErrs(t, Default().ValidateExternalSecret(es, tc.ns), tc.want)
		})
	}
}

func TestValidatePushSecret(t *testing.T) {
	ps := &PushSecret{}
	decodeInto(t, `{"metadata":{"annotations":{"iss.platform/initiator-id":"alice"}},"spec":{
		"secretStoreRefs":[{"kind":"ClusterSecretStore","name":"openbao-dev"},{"labelSelector":{"matchLabels":{"a":"b"}}},{"name":"openbao-dev"}],
		"data":[{"match":{"secretKey":"k","remoteRef":{"remoteKey":"artifacts/team-a/users/alice/secrets/out"}}},{"match":{"remoteRef":{"remoteKey":"artifacts/team-b/public/secrets/out"}}}]}}`, ps)
	checkErrs(t, Default().ValidatePushSecret(ps, teamADev), []wantErr{
		{"spec.secretStoreRefs[2]", "SecretStore/openbao-dev is not the store"},
		{"spec.data[1].match.remoteRef.remoteKey", `belongs to the app "team-b"`},
	})
}

// TestValidateSecretStore: in an app's namespace a SecretStore has exactly one provider, which
// the policy allows (none by default); elsewhere, and ClusterSecretStores, are not its concern.
func TestValidateSecretStore(t *testing.T) {
	store := func(providers string) *SecretStore {
		s := &SecretStore{}
		decodeInto(t, `{"kind":"SecretStore","spec":{"provider":{`+providers+`}}}`, s)
		return s
	}
	allowAWS := Default()
	allowAWS.Secrets.AllowedStoreProviders = []string{"aws"}
	for _, tc := range []struct {
		name  string
		pol   *Policy
		store *SecretStore
		ns    Namespace
		want  []wantErr
	}{
		{"the vault provider", Default(), store(`"vault":{"server":"https://bao:8200"}`), teamADev, []wantErr{{"spec.provider.vault", `the policy allows no "vault" stores`}}},
		{"the webhook provider pointed at OpenBao's API", Default(), store(`"webhook":{"url":"https://openbao:8200/v1/kv-prod/data/artifacts/team-b/public/secrets/x"}`), teamADev,
			[]wantErr{{"spec.provider.webhook", `no "webhook" stores`}}},
		{"the kubernetes provider", Default(), store(`"kubernetes":{}`), teamADev, []wantErr{{"spec.provider.kubernetes", "reads with credentials of its own"}}},
		{"aws, allowed by none", Default(), store(`"aws":{}`), teamADev, []wantErr{{"spec.provider.aws", "use the ClusterSecretStore of your environment in your ExternalSecrets"}}},
		{"aws, allowed", allowAWS, store(`"aws":{}`), teamADev, nil},
		{"an allowed provider beside another", allowAWS, store(`"aws":{},"vault":{}`), teamADev, []wantErr{
			{"spec.provider", "exactly one provider"}, {"spec.provider.vault", `or a provider the policy allows ("aws")`},
		}},
		{"no provider", allowAWS, store(``), teamADev, []wantErr{{"spec.provider", "exactly one provider"}}},
		{"a provider of a newer release", allowAWS, store(`"quantumvault":{}`), teamADev, []wantErr{{"spec.provider.quantumvault", `does not know the provider "quantumvault"`}}},
		{"a namespace of no app", Default(), store(`"vault":{}`), Namespace{Name: "tools"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, tc.pol.ValidateSecretStore(tc.store, tc.ns), tc.want)
		})
	}
	cluster := store(`"vault":{}`)
	cluster.Kind = "ClusterSecretStore"
	checkErrs(t, Default().ValidateSecretStore(cluster, teamADev), nil)
}

func TestValidateInitiator(t *testing.T) {
	meta := func(v string) *metav1.ObjectMeta {
		if v == "" {
			return &metav1.ObjectMeta{}
		}
		return &metav1.ObjectMeta{Annotations: map[string]string{AnnotationInitiatorID: v}}
	}
	p := Default()
	for _, tc := range []struct {
		name     string
		old, cur *metav1.ObjectMeta
		user     string
		trusted  bool
		denied   bool
	}{
		{"create as oneself", nil, meta("alice"), "alice", false, false},
		{"create for another", nil, meta("bob"), "alice", false, true},
		{"trusted creates for another", nil, meta("bob"), "ci-bot", true, false},
		{"update keeps it", meta("alice"), meta("alice"), "bob", false, false},
		{"update changes it", meta("alice"), meta("bob"), "bob", false, true},
		{"update removes it", meta("alice"), meta(""), "alice", false, true},
		{"update of an object that had none sets oneself", meta(""), meta("alice"), "alice", false, false},
	} {
		if got := len(p.ValidateInitiator(tc.old, tc.cur, tc.user, tc.trusted)) > 0; got != tc.denied {
			t.Errorf("%s: denied = %v", tc.name, got)
		}
	}
}

func TestValidateNamespaceLabels(t *testing.T) {
	labelled := &metav1.ObjectMeta{Labels: map[string]string{LabelAppID: "team-a", LabelEnvironment: "dev", "team": "a"}}
	relabelled := &metav1.ObjectMeta{Labels: map[string]string{LabelAppID: "team-b", LabelEnvironment: "dev"}}
	checkErrs(t, ValidateNamespaceLabels(nil, labelled), []wantErr{
		{"metadata.labels[iss.platform/app-id]", `from "" to "team-a"`}, {"metadata.labels[iss.platform/environment]", "only the platform"},
	})
	checkErrs(t, ValidateNamespaceLabels(labelled, relabelled), []wantErr{{"metadata.labels[iss.platform/app-id]", `from "team-a" to "team-b"`}})
	checkErrs(t, ValidateNamespaceLabels(labelled, labelled), nil)
	checkErrs(t, ValidateNamespaceLabels(nil, &metav1.ObjectMeta{Labels: map[string]string{"team": "a"}}), nil)
}

func TestValidateSpecChange(t *testing.T) {
	alices := &metav1.ObjectMeta{Annotations: map[string]string{AnnotationInitiatorID: "alice"}}
	checkErrs(t, ValidateSpecChange(alices, "bob", false), []wantErr{{"spec", `only its initiator "alice"`}})
	checkErrs(t, ValidateSpecChange(alices, "alice", false), nil)
	checkErrs(t, ValidateSpecChange(alices, "admin", true), nil)
}

// TestValidatePushSecretStatus: the paths a PushSecret's status records as pushed, which External
// Secrets deletes from OpenBao, follow the rules of its spec's paths.
func TestValidatePushSecretStatus(t *testing.T) {
	ps := &PushSecret{}
	decodeInto(t, `{"metadata":{"annotations":{"iss.platform/initiator-id":"alice"}},"status":{"syncedPushSecrets":{
		"ClusterSecretStore/openbao-dev":{"artifacts/team-a/public/secrets/out":{"match":{"remoteRef":{"remoteKey":"artifacts/team-a/public/secrets/out"}}},
			"artifacts/team-b/public/secrets/db":{"match":{"remoteRef":{"remoteKey":"artifacts/team-b/public/secrets/db"}}}},
		"ClusterSecretStore/openbao-prod":{},
		"nonsense":{}}}}`, ps)
	checkErrs(t, Default().ValidatePushSecretStatus(ps, teamADev), []wantErr{
		{"status.syncedPushSecrets[ClusterSecretStore/openbao-dev][artifacts/team-b/public/secrets/db].match.remoteRef.remoteKey", `belongs to the app "team-b"`},
		{"status.syncedPushSecrets[ClusterSecretStore/openbao-prod]", "is not the store of environment"},
		{"status.syncedPushSecrets[nonsense]", "Kind/Name"},
	})
}
