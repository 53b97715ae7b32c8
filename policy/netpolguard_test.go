package policy

import (
	"encoding/json"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestValidateUserNetworkPolicy(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      []wantErr
	}{
		{"deny-all egress does not widen", `{"kind":"NetworkPolicy","metadata":{"name":"deny"},"spec":{"podSelector":{},"policyTypes":["Egress"]}}`, nil},
		{"allow-all egress selecting everything", `{"kind":"NetworkPolicy","metadata":{"name":"open"},"spec":{"podSelector":{},"egress":[{}]}}`,
			[]wantErr{{"spec.podSelector", "must not select Dagger engines"}}},
		{"egress that excludes engines", `{"kind":"NetworkPolicy","metadata":{"name":"web"},"spec":{"podSelector":{"matchExpressions":[{"key":"iss.platform/egress-policy","operator":"DoesNotExist"}]},"egress":[{}]}}`, nil},
		{"reserved name and label", `{"kind":"NetworkPolicy","metadata":{"name":"iss-egress-0011223344556677","labels":{"app.kubernetes.io/managed-by":"iss-webhook"}},"spec":{"podSelector":{}}}`,
			[]wantErr{{"metadata.name", "reserved"}, {"metadata.labels[app.kubernetes.io/managed-by]", "remove it"}}},
		{"cilium egress in spec and specs", `{"kind":"CiliumNetworkPolicy","metadata":{"name":"c"},"spec":{"endpointSelector":{},"egress":[{"toEntities":["world"]}]},"specs":[{"endpointSelector":{},"egress":[{}]}]}`,
			[]wantErr{{"spec.endpointSelector", "must not select"}, {"specs[0].endpointSelector", "must not select"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := &unstructured.Unstructured{}
			if err := json.Unmarshal([]byte(tc.doc), &obj.Object); err != nil {
				t.Fatal(err)
			}
			checkErrs(t, ValidateUserNetworkPolicy(obj), tc.want)
		})
	}
}
