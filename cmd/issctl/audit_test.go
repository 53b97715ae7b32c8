package main

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// TestRecordedInitiator: the audit judges a workload for the owner its pod template records, as
// the API server judged it when its owner wrote it.
func TestRecordedInitiator(t *testing.T) {
	for doc, want := range map[string]string{
		`{kind: ExternalSecret, metadata: {annotations: {iss.platform/initiator-id: alice}}}`:                                     "alice",
		`{kind: Deployment, spec: {template: {metadata: {annotations: {iss.platform/initiator-id: bob}}}}}`:                       "bob",
		`{kind: CronJob, spec: {jobTemplate: {spec: {template: {metadata: {annotations: {iss.platform/initiator-id: carol}}}}}}}`: "carol",
		`{kind: PodTemplate, template: {metadata: {annotations: {iss.platform/initiator-id: dave}}}}`:                             "dave",
		`{kind: Deployment, spec: {template: {spec: {}}}}`:                                                                        "",
	} {
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
			t.Fatal(err)
		}
		if got := recordedInitiator(obj); got != want {
			t.Errorf("%s: %q, want %q", doc, got, want)
		}
	}
}
