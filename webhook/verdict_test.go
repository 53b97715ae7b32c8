package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/iss-platform/iss-webhook/policy"
)

// TestDenialsStayReadable: whatever an object holds, a denial names at most MaxCauses violations,
// the last saying how many more, and echoes no value, key or message at length; with AllCauses
// (issctl) every violation is named.
func TestDenialsStayReadable(t *testing.T) {
	samples := sampleObjects(t)
	huge := strings.Repeat("x", 1<<20)
	pod := samples["/Pod"].DeepCopy()
	pod.SetAnnotations(map[string]string{policy.AnnotationNetworkAccess: huge, policy.Prefix + strings.Repeat("k", 100_000): "v"})
	es := samples["external-secrets.io/ExternalSecret"].DeepCopy()
	var data []any
	for i := range 3000 {
		data = append(data, map[string]any{"secretKey": fmt.Sprintf("K%d", i), "remoteRef": map[string]any{"key": fmt.Sprintf("artifacts/team-b/public/secrets/s%d", i)}})
	}
	es.Object["spec"].(map[string]any)["data"] = data
	for _, tc := range []struct {
		name, path string
		req        admissionv1.AdmissionRequest
	}{
		{"a megabyte annotation and a 100 KB key", MutateEnginePodsPath, request(admissionv1.Create, "", userAlice, pod, nil)},
		{"3,000 paths of another app", ValidateSecretsPath, request(admissionv1.Create, "", userAlice, es, nil)},
	} {
		for _, all := range []bool{false, true} {
			hooks := Handlers(NewScheme(), Options{Policies: policy.NewHolder(policy.Default()), Metrics: testMetrics(t), AllCauses: all,
				Namespaces: corpusNamespaceLookup{}})
			resp := hooks[tc.path].Handle(context.Background(), admission.Request{AdmissionRequest: tc.req})
			if resp.Allowed || resp.Result.Code != 422 {
				t.Fatalf("%s: want a 422, got %v %d", tc.name, resp.Allowed, resp.Result.Code)
			}
			body, _ := json.Marshal(resp)
			causes := resp.Result.Details.Causes
			if !all {
				if len(body) > 64<<10 {
					t.Errorf("%s: the denial is %d bytes", tc.name, len(body))
				}
				if len(causes) > MaxCauses {
					t.Errorf("%s: %d causes", tc.name, len(causes))
				}
			}
			if tc.path == ValidateSecretsPath {
				last := causes[len(causes)-1].Message
				if !all && !strings.Contains(last, "more violations") {
					t.Errorf("%s: the last cause does not say how many more: %q", tc.name, last)
				}
				if all && len(causes) < 3000 {
					t.Errorf("%s: with AllCauses, %d causes", tc.name, len(causes))
				}
			}
			for _, c := range causes {
				if len(c.Field) > 2*maxKey+50 || len(c.Message) > maxDetail+maxValue+200 {
					t.Errorf("%s: a cause of %d and %d bytes", tc.name, len(c.Field), len(c.Message))
				}
			}
		}
	}
}
