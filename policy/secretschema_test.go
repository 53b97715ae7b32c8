package policy

import (
	"encoding/json"
	"testing"

	"github.com/iss-platform/iss-webhook/internal/golden"
)

// specOf decodes a spec written as JSON.
func specOf(t *testing.T, doc string) map[string]any {
	t.Helper()
	var spec map[string]any
	if err := json.Unmarshal([]byte(doc), &spec); err != nil {
		t.Fatal(err)
	}
	return spec
}

// TestValidateSpecFields: the fields of the External Secrets kinds are an allowlist at every
// level, fields that read what cannot be checked are denied, and so are values of fields with
// variants that a newer release could add; opaque fields hold anything.
func TestValidateSpecFields(t *testing.T) {
	for _, tc := range []struct {
		name, kind, spec string
		want             []wantErr
	}{
		{"every field an ExternalSecret of today may have", "ExternalSecret", `{
			"secretStoreRef":{"kind":"ClusterSecretStore","name":"openbao-dev"},"refreshInterval":"1h","refreshPolicy":"Periodic",
			"target":{"name":"t","creationPolicy":"Owner","deletionPolicy":"Retain","immutable":true,"template":{"type":"Opaque","engineVersion":"v2","mergePolicy":"Merge",
				"metadata":{"labels":{"a":"b"},"annotations":{"c":"d"}},"data":{"url":"{{ .x }}","nested":{"anything":true}},
				"templateFrom":[{"configMap":{"name":"cm","items":[{"key":"k","templateAs":"Values"}]}},{"secret":{"name":"s","items":[{"key":"k"}]}},{"literal":"x","target":"Labels"}]}},
			"data":[{"secretKey":"k","remoteRef":{"key":"artifacts/team-a/public/secrets/x","property":"p","version":"2","conversionStrategy":"Unicode","decodingStrategy":"Base64","metadataPolicy":"Fetch"},
				"sourceRef":{"storeRef":{"kind":"ClusterSecretStore","name":"openbao-dev"}}}],
			"dataFrom":[{"extract":{"key":"artifacts/team-a/public/secrets/x"},"rewrite":[{"regexp":{"source":"a","target":"b"}},{"transform":{"template":"t"}}]},
				{"sourceRef":{"generatorRef":{"apiVersion":"generators.external-secrets.io/v1alpha1","kind":"Password","name":"p"}}}]}`, nil},
		{"unknown fields at every level", "ExternalSecret", `{"dataTo":[],"target":{"secretRef":"x","template":{"templateFrom":[{"vaultPath":"kv/x"}]}},
			"data":[{"remoteRef":{"key":"k","mount":"kv-prod"},"sourceRef":{"clusterGeneratorRef":{}}}],"dataFrom":[{"search":{"path":"artifacts"}}]}`, []wantErr{
			{"spec.data[0].remoteRef.mount", "does not know what ExternalSecret spec.data[0].remoteRef.mount reads or writes"},
			{"spec.data[0].sourceRef.clusterGeneratorRef", "does not know"},
			{"spec.dataFrom[0].search", "does not know"},
			{"spec.dataTo", "does not know"},
			{"spec.target.secretRef", "does not know"},
			{"spec.target.template.templateFrom[0].vaultPath", "does not know"},
		}},
		{"variants of a newer release", "ExternalSecret", `{"secretStoreRef":{"kind":"NamespacedStore","name":"s"},"target":{"creationPolicy":"Adopt","template":{"engineVersion":"v3"}},
			"data":[{"remoteRef":{"key":"k","metadataPolicy":"FetchAll"},"sourceRef":{"generatorRef":{"kind":"Teleport","name":"g"}}}]}`, []wantErr{
			{"spec.data[0].remoteRef.metadataPolicy", `"FetchAll"`},
			{"spec.data[0].sourceRef.generatorRef.kind", `"Teleport"`},
			{"spec.secretStoreRef.kind", `"NamespacedStore"`},
			{"spec.target.creationPolicy", `"Adopt"`},
			{"spec.target.template.engineVersion", `"v3"`},
		}},
		{"a search across paths", "ExternalSecret", `{"dataFrom":[{"find":{"path":"artifacts","name":{"regexp":".*"}}}]}`, []wantErr{{"spec.dataFrom[0].find", "find searches across OpenBao paths"}}},
		{"fields of the wrong shape", "ExternalSecret", `{"data":{"remoteRef":{}},"target":"x"}`, []wantErr{{"spec.data", "must be a list"}, {"spec.target", "must be an object"}}},
		{"every field a PushSecret of today may have", "PushSecret", `{"secretStoreRefs":[{"kind":"ClusterSecretStore","name":"openbao-dev"}],"refreshInterval":"1h",
			"deletionPolicy":"Delete","updatePolicy":"IfNotExists","selector":{"secret":{"name":"s"}},
			"data":[{"conversionStrategy":"ReverseUnicode","match":{"secretKey":"k","remoteRef":{"remoteKey":"artifacts/team-a/public/secrets/x","property":"p"}},
				"metadata":{"apiVersion":"kubernetes.external-secrets.io/v1alpha1","kind":"PushSecretMetadata","spec":{"anything":true}}}],
			"template":{"templateFrom":[{"secret":{"name":"other"}}]}}`, nil},
		{"secrets selected by labels, in every namespace", "PushSecret", `{"selector":{"secret":{"selector":{"matchLabels":{"team":"b"}}}}}`,
			[]wantErr{{"spec.selector.secret.selector", "lists the Secrets a label selector matches in every namespace of the cluster"}}},
		{"stores selected by labels", "PushSecret", `{"secretStoreRefs":[{"labelSelector":{"matchLabels":{"a":"b"}}}]}`,
			[]wantErr{{"spec.secretStoreRefs[0].labelSelector", "name the store"}}},
		{"a PushSecret's fields of a newer release", "PushSecret", `{"dataTo":[{"storeRef":{"name":"x"}}],"selector":{"configMap":{"name":"c"}},"updatePolicy":"Merge"}`, []wantErr{
			{"spec.dataTo", "does not know"}, {"spec.selector.configMap", "does not know"}, {"spec.updatePolicy", `"Merge"`},
		}},
		{"a ClusterExternalSecret's fields", "ClusterExternalSecret", `{"externalSecretName":"n","refreshTime":"1m","namespaces":["team-a-dev"],
			"namespaceSelectors":[{"matchExpressions":[{"key":"k","operator":"In","values":["v"]}]}],"namespaceSelector":{"matchLabels":{"a":"b"}},
			"externalSecretMetadata":{"annotations":{"iss.platform/initiator-id":"alice"},"labels":{"x":"y"}},
			"externalSecretSpec":{"dataFrom":[{"find":{}}],"surprise":1},"namespaceRegexes":["team-.*"]}`, []wantErr{
			{"spec.externalSecretSpec.dataFrom[0].find", "find searches"},
			{"spec.externalSecretSpec.surprise", "does not know"},
			{"spec.namespaceRegexes", "does not know"},
		}},
		{"a ClusterPushSecret's fields", "ClusterPushSecret", `{"pushSecretName":"n","refreshTime":"1m","namespaceSelectors":[{}],"pushSecretMetadata":{},
			"pushSecretSpec":{"selector":{"secret":{"selector":{}}}}}`, []wantErr{{"spec.pushSecretSpec.selector.secret.selector", "every namespace"}}},
		{"a SecretStore's fields", "SecretStore", `{"provider":{"aws":{"anything":true}},"controller":"c","refreshInterval":10,"retrySettings":{"maxRetries":3},"mirror":{}}`,
			[]wantErr{{"spec.mirror", "does not know what SecretStore spec.mirror reads or writes"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, ValidateSpecFields(tc.kind, specOf(t, tc.spec)), tc.want)
		})
	}
	if errs := ValidateSpecFields("Pod", map[string]any{"anything": 1}); errs != nil {
		t.Errorf("a kind without rules: %v", errs)
	}
}

// TestGeneratorReferences: every reference to a generator, in an ExternalSecret's data and
// dataFrom and in a PushSecret's selector, names a generator of External Secrets' group of a
// kind the policy allows, never a ClusterGenerator.
func TestGeneratorReferences(t *testing.T) {
	ref := func(apiVersion, kind string) string {
		return `{"apiVersion":"` + apiVersion + `","kind":"` + kind + `","name":"g"}`
	}
	const gen = "generators.external-secrets.io/v1alpha1"
	allowFake := Default()
	allowFake.Secrets.AllowedGeneratorKinds = []string{"Fake"}
	for _, tc := range []struct {
		name string
		pol  *Policy
		ref  string
		want []wantErr // of the reference, relative to it
	}{
		{"Password", Default(), ref(gen, "Password"), nil},
		{"UUID", Default(), ref(gen, "UUID"), nil},
		{"VaultDynamicSecret", Default(), ref(gen, "VaultDynamicSecret"), []wantErr{{"kind", `"VaultDynamicSecret" reads any Vault or OpenBao path`}}},
		{"a ClusterGenerator", Default(), ref(gen, "ClusterGenerator"), []wantErr{{"kind", "a ClusterGenerator wraps a generator of any kind"}}},
		{"the Webhook generator", Default(), ref(gen, "Webhook"), []wantErr{{"kind", "any HTTP endpoint"}}},
		{"a kind the policy allows", allowFake, ref(gen, "Fake"), nil},
		{"a default kind the policy no longer allows", allowFake, ref(gen, "Password"), []wantErr{{"kind", `the policy allows only "Fake"`}}},
		{"a Password of another group", Default(), ref("evil.example.org/v1", "Password"), []wantErr{{"apiVersion", "generators are of the group generators.external-secrets.io"}}},
		{"no apiVersion", Default(), ref("", "Password"), []wantErr{{"apiVersion", "generators are of the group"}}},
		{"a version not served", Default(), ref("generators.external-secrets.io/v2", "Password"), []wantErr{{"apiVersion", "generators.external-secrets.io/v1alpha1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			under := func(prefix string) []wantErr {
				var out []wantErr
				for _, w := range tc.want {
					out = append(out, wantErr{prefix + "." + w.field, w.fragment})
				}
				return out
			}
			es := &ExternalSecret{}
			decodeInto(t, `{"spec":{"data":[{"remoteRef":{"key":"artifacts/team-a/public/secrets/x"},"sourceRef":{"generatorRef":`+tc.ref+`}}],
				"dataFrom":[{"sourceRef":{"generatorRef":`+tc.ref+`}}]}}`, es)
			checkErrs(t, tc.pol.ValidateExternalSecret(es, teamADev), append(under("spec.data[0].sourceRef.generatorRef"), under("spec.dataFrom[0].sourceRef.generatorRef")...))
			ps := &PushSecret{}
			decodeInto(t, `{"spec":{"secretStoreRefs":[{"kind":"ClusterSecretStore","name":"openbao-dev"}],"selector":{"generatorRef":`+tc.ref+`}}}`, ps)
			checkErrs(t, tc.pol.ValidatePushSecret(ps, teamADev), under("spec.selector.generatorRef"))
		})
	}
}

const externalSecretsFieldsDoc = "../docs/external-secrets-fields.md"

// TestGeneratedExternalSecretsFields: docs/external-secrets-fields.md is the classification of
// every field of the External Secrets kinds; make generate rewrites it.
func TestGeneratedExternalSecretsFields(t *testing.T) {
	golden.Check(t, externalSecretsFieldsDoc, RenderSpecRules(), *update)
}
