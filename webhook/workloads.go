package webhook

import (
	"context"

	admissionv1 "k8s.io/api/admission/v1"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/iss-platform/iss-webhook/policy"
)

// WorkloadValidator is the validating handler for the workloads that create pods: their pod
// templates must follow the engine pod rules, and Temporal worker Deployments the blue/green
// rules.
type WorkloadValidator struct {
	policies policy.Provider
	decoder  admission.Decoder
	metrics  *Metrics
}

// NewWorkloadValidator returns the validating handler for workloads.
func NewWorkloadValidator(policies policy.Provider, decoder admission.Decoder, metrics *Metrics) *WorkloadValidator {
	return &WorkloadValidator{policies: policies, decoder: decoder, metrics: metrics}
}

// newWorkload returns an empty object of a workload kind, or nil for other kinds.
func newWorkload(gk schema.GroupKind) client.Object {
	switch gk {
	case schema.GroupKind{Group: "apps", Kind: "Deployment"}:
		return &appsv1.Deployment{}
	case schema.GroupKind{Group: "apps", Kind: "StatefulSet"}:
		return &appsv1.StatefulSet{}
	case schema.GroupKind{Group: "apps", Kind: "DaemonSet"}:
		return &appsv1.DaemonSet{}
	case schema.GroupKind{Group: "apps", Kind: "ReplicaSet"}:
		return &appsv1.ReplicaSet{}
	case schema.GroupKind{Group: "batch", Kind: "Job"}:
		return &batchv1.Job{}
	case schema.GroupKind{Group: "batch", Kind: "CronJob"}:
		return &batchv1.CronJob{}
	}
	return nil
}

// Handle implements admission.Handler.
func (h *WorkloadValidator) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.SubResource != "" {
		return admission.Allowed("") // scale and status leave the template as it was
	}
	gk := schema.GroupKind{Group: req.Kind.Group, Kind: req.Kind.Kind}
	obj := newWorkload(gk)
	if obj == nil {
		return admission.Allowed("")
	}
	if err := h.decoder.DecodeRaw(req.Object, obj.(runtime.Object)); err != nil {
		return badRequest(req.Kind.Kind, err)
	}
	pol := h.policies.Current()
	if pol.Exempt(req.Namespace) {
		return exempt(pol, h.metrics, req.Resource.Resource, policy.RuleEnginePods)
	}
	var old client.Object
	if req.Operation == admissionv1.Update {
		old = newWorkload(gk)
		if err := h.decoder.DecodeRaw(req.OldObject, old.(runtime.Object)); err != nil {
			return badRequest("previous "+req.Kind.Kind, err)
		}
		if obj.GetDeletionTimestamp() != nil {
			return admission.Allowed("being deleted")
		}
	}
	v := newVerdict(ctx, pol, h.metrics, req.Resource.Resource)
	// An update that leaves the pod template as it was (scaling an old ReplicaSet down, a
	// finalizer, suspending a CronJob) creates no pod the rules have not seen.
	if old == nil || !equality.Semantic.DeepEqual(policy.WorkloadTemplate(old), policy.WorkloadTemplate(obj)) {
		v.add(policy.RuleEnginePods, pol.ValidateWorkload(obj))
	}
	if cur, ok := obj.(*appsv1.Deployment); ok {
		prev, _ := old.(*appsv1.Deployment)
		v.add(policy.RuleTemporalWorkers, pol.TemporalWorkers.ValidateTemporalWorker(prev, cur))
	}
	if resp, denied := v.denied(gk, &metav1.ObjectMeta{Name: obj.GetName(), GenerateName: obj.GetGenerateName()}); denied {
		return resp
	}
	return v.allow(admission.Allowed(""), policy.RuleEnginePods, decisionAllowed)
}
