package webhook

import (
	"context"
	"errors"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/iss-platform/iss-webhook/policy"
	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
)

// recordingBuildWriter records the build records the adapter asks for, and answers err.
type recordingBuildWriter struct {
	writes []*policy.BuildRecordWrite
	err    error
}

func (w *recordingBuildWriter) Ensure(_ context.Context, rec *policy.BuildRecordWrite, _ *policy.Policy) ([]string, error) {
	w.writes = append(w.writes, rec)
	return nil, w.err
}

func workerDeployment() *appsv1.Deployment {
	labels := map[string]string{"app": "orders-worker", policy.LabelBuildID: "v7"}
	return &appsv1.Deployment{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: "orders-worker-v7", Namespace: "team-a-dev",
			Labels: map[string]string{policy.LabelComponent: policy.TemporalWorkerComponent, policy.LabelBuildID: "v7"}},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "worker", Image: "registry.example.org/orders-worker@sha256:7777777777777777777777777777777777777777777777777777777777777777"}}}}},
	}
}

// TestBuildRecordWrites checks what the adapter does with the record a worker Deployment
// names: written before the Deployment is admitted, never on dry run nor for what the rules
// deny, and a failed or conflicting write denies, counted under its group.
func TestBuildRecordWrites(t *testing.T) {
	deploymentKind := metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	tagged := workerDeployment()
	tagged.Spec.Template.Spec.Containers[0].Image = "registry.example.org/orders-worker:v7"
	for _, tc := range []struct {
		name    string
		obj     *appsv1.Deployment
		dryRun  bool
		err     error
		allowed bool
		writes  int
		group   policy.RuleGroup
	}{
		{name: "a new build is recorded", obj: workerDeployment(), allowed: true, writes: 1},
		{name: "a dry run records nothing", obj: workerDeployment(), dryRun: true, allowed: true},
		{name: "what the rules deny records nothing", obj: tagged, group: policy.RuleTemporalWorkers},
		{name: "a record of other code denies", obj: workerDeployment(), err: &policy.BuildRecordConflict{Message: "recorded code"}, writes: 1, group: policy.RuleTemporalWorkers},
		{name: "a failed write denies", obj: workerDeployment(), err: errors.New("etcd is down"), writes: 1, group: policy.RuleBuildRecords},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &recordingBuildWriter{err: tc.err}
			m := testMetrics(t)
			h := Handlers(NewScheme(), Options{Policies: policy.NewHolder(policy.Default()), Metrics: m, BuildRecords: w})[ValidateWorkloadsPath]
			req := objectRequest(t, deploymentKind, "deployments", admissionv1.Create, "", tc.obj)
			req.DryRun = ptr.To(tc.dryRun)
			resp := h.Handle(context.Background(), req)
			if resp.Allowed != tc.allowed {
				t.Fatalf("allowed = %v: %+v", resp.Allowed, resp.Result)
			}
			if len(w.writes) != tc.writes {
				t.Fatalf("%d writes, want %d", len(w.writes), tc.writes)
			}
			if tc.writes > 0 {
				rec := w.writes[0]
				if !rec.Judge || rec.Record.Namespace != "team-a-dev" || rec.Record.BuildID != "v7" || rec.Record.Workload != "orders-worker-v7" || rec.Record.CodeHash == "" {
					t.Errorf("write %+v", rec)
				}
			}
			if tc.group != "" {
				if n := decisions(m, "deployments", tc.group, v1alpha1.Enforce, decisionDenied); n != 1 {
					t.Errorf("%v denials counted under %s", n, tc.group)
				}
			}
		})
	}
}
