package policy

import (
	"encoding/json"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func unstructuredOf(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := json.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestValidateStack(t *testing.T) {
	p := DefaultProvisioningPolicy()
	checkErrs(t, p.ValidateStack(unstructuredOf(t, `{"metadata":{"namespace":"team-a-dev"},"spec":{"backend":"s3://iss-platform-state/team-a","secretsProvider":"awskms://alias/iss","destroyOnFinalize":true}}`)), nil)
	checkErrs(t, p.ValidateStack(unstructuredOf(t, `{"metadata":{"namespace":"team-a-dev"},"spec":{"backend":"file:///tmp/state","secretsProvider":"passphrase"}}`)), []wantErr{
		{"spec.backend", "approved encrypted, object-locked bucket"},
		{"spec.secretsProvider", `"awskms://"`},
		{"spec.destroyOnFinalize", "DEPROVISION"},
	})
	checkErrs(t, p.ValidateStack(unstructuredOf(t, `{"spec":{"backend":"s3://someone-elses-bucket","secretsProvider":"hashivault://transit/keys/iss","destroyOnFinalize":true}}`)),
		[]wantErr{{"spec.backend", "approved"}})
}

// terraform builds a Terraform object with the given backend configuration and options.
func terraform(custom string, destroy, disable bool) *unstructured.Unstructured {
	spec := map[string]any{"destroyResourcesOnDeletion": destroy}
	backend := map[string]any{}
	if custom != "" {
		backend["customConfiguration"] = custom
	}
	if disable {
		backend["disable"] = true
	}
	if len(backend) > 0 {
		spec["backendConfig"] = backend
	}
	return &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
}

func TestValidateTerraform(t *testing.T) {
	p := DefaultProvisioningPolicy()
	good := "backend \"s3\" {\n  bucket = \"iss-platform-state\"\n  key = \"team-a/vpc\"\n  encrypt = true\n  use_lockfile = true\n}"
	checkErrs(t, p.ValidateTerraform(terraform(good, true, false)), nil)
	checkErrs(t, p.ValidateTerraform(terraform("", false, false)), []wantErr{
		{"spec.backendConfig.customConfiguration", "not in a Kubernetes Secret"},
		{"spec.destroyResourcesOnDeletion", "DEPROVISION"},
	})
	unencrypted := "backend \"s3\" {\n  bucket = \"iss-platform-state\"\n  use_lockfile = true\n}"
	checkErrs(t, p.ValidateTerraform(terraform(unencrypted, true, false)), []wantErr{{"spec.backendConfig.customConfiguration", "must encrypt the state"}})
	unlocked := "backend \"s3\" {\n  bucket = \"iss-platform-state\"\n  encrypt = true\n}"
	checkErrs(t, p.ValidateTerraform(terraform(unlocked, true, false)), []wantErr{{"spec.backendConfig.customConfiguration", "must lock the state"}})
	foreign := "backend \"gcs\" {\n  bucket = \"elsewhere\"\n  kms_encryption_key = \"k\"\n}"
	checkErrs(t, p.ValidateTerraform(terraform(foreign, true, true)),
		[]wantErr{{"spec.backendConfig.disable", "kept remotely"}, {"spec.backendConfig.customConfiguration", "gs://elsewhere"}})
}

func TestProvisioningBypasses(t *testing.T) {
	p := DefaultProvisioningPolicy()
	commented := "backend \"s3\" {\n  # bucket = \"iss-platform-state\"\n  bucket = \"evil\"\n  // encrypt = true\n  use_lockfile = true\n}"
	checkErrs(t, p.ValidateTerraform(terraform(commented, true, false)), []wantErr{{"spec.backendConfig.customConfiguration", "s3://evil"}})
	twoBlocks := "backend \"s3\" {\n  bucket = \"iss-platform-state\"\n  encrypt = true\n  use_lockfile = true\n}\nbackend \"local\" {}"
	checkErrs(t, p.ValidateTerraform(terraform(twoBlocks, true, false)), []wantErr{{"spec.backendConfig.customConfiguration", "more than one backend block"}})
	outside := "terraform {\n  encrypt = true\n}\nbackend \"s3\" {\n  bucket = \"iss-platform-state\"\n  use_lockfile = true\n}"
	checkErrs(t, p.ValidateTerraform(terraform(outside, true, false)), []wantErr{{"spec.backendConfig.customConfiguration", "must encrypt"}})
	endpoint := "backend \"s3\" {\n  bucket = \"iss-platform-state\"\n  encrypt = true\n  use_lockfile = true\n  endpoints = { s3 = \"https://evil.example.org\" }\n}"
	checkErrs(t, p.ValidateTerraform(terraform(endpoint, true, false)), []wantErr{{"spec.backendConfig.customConfiguration", "may not name endpoints"}})
	from := terraform("backend \"s3\" {\n  bucket = \"iss-platform-state\"\n  encrypt = true\n  use_lockfile = true\n}", true, false)
	from.Object["spec"].(map[string]any)["backendConfigsFrom"] = []any{map[string]any{"kind": "Secret", "name": "x"}}
	checkErrs(t, p.ValidateTerraform(from), []wantErr{{"spec.backendConfigsFrom", "would override the checked backend block"}})

	checkErrs(t, p.ValidateStack(unstructuredOf(t, `{"spec":{"backend":"s3://iss-platform-state?endpoint=evil.example.org","secretsProvider":"awskms://k","destroyOnFinalize":true,
		"envRefs":{"PULUMI_BACKEND_URL":{"type":"Literal","literal":{"value":"file:///tmp"}}}}}`)), []wantErr{
		{"spec.backend", "may not carry query parameters"},
		{"spec.envRefs[PULUMI_BACKEND_URL]", "would override spec.backend"},
	})
}
