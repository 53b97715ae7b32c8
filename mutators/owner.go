package mutators

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/iss-platform/iss-webhook/policy"
)

// DefaultPodOwner gives a pod being created that references a Secret an owner
// (iss.platform/initiator-id) when it has none: the requesting user, unless the requester is
// trusted or a controller copying a template (whose pods carry the template's owner). The owner
// decides which private Secrets the pod may use (policy.ValidatePrivateSecrets).
func DefaultPodOwner(_ context.Context, p *policy.Policy, req *policy.Request, pod, _ *corev1.Pod) policy.Outcome {
	if req.Operation != policy.Create || req.SubResource != "" || !needsOwner(p, req, &pod.ObjectMeta, &pod.Spec) {
		return policy.Outcome{Skip: "the pod needs no owner"}
	}
	return policy.Outcome{Group: policy.RuleIntegrity, Mutate: func() []string {
		if InitiatorID(&pod.ObjectMeta, req.User) {
			return []string{"initiator-id"}
		}
		return nil
	}}
}

// DefaultWorkloadOwner gives the pod template of a workload being created or changed an owner
// (iss.platform/initiator-id) when it references a Secret and has none, as DefaultPod gives pods
// one: the one it had before, where an update dropped it (a server-side apply that does not
// name it), else the requesting user, unless the requester is trusted or a controller copying a
// template. A template that had no owner and is changed to reference a Secret becomes the
// requester's: its pods' Secrets are then judged for the user who wrote the reference.
func DefaultWorkloadOwner(_ context.Context, p *policy.Policy, req *policy.Request, obj, old metav1.Object) policy.Outcome {
	tmpl, _, _ := policy.PodTemplate(obj)
	if tmpl == nil || !needsOwner(p, req, &tmpl.ObjectMeta, &tmpl.Spec) {
		return policy.Outcome{Skip: "the pod template needs no owner"}
	}
	owner := req.User
	if old != nil {
		if prev, _, _ := policy.PodTemplate(old); prev != nil && policy.Owner(&prev.ObjectMeta) != "" {
			owner = policy.Owner(&prev.ObjectMeta)
		}
	}
	return policy.Outcome{Group: policy.RuleIntegrity, Mutate: func() []string {
		if InitiatorID(&tmpl.ObjectMeta, owner) {
			return []string{"initiator-id"}
		}
		return nil
	}}
}

// needsOwner tells whether a pod or template gets an owner: it references a Secret (or has a
// volume that may), has none, and the requester records itself.
func needsOwner(p *policy.Policy, req *policy.Request, meta *metav1.ObjectMeta, spec *corev1.PodSpec) bool {
	if _, ok := meta.Annotations[policy.AnnotationInitiatorID]; ok || policy.MayRecordOthers(req) {
		return false
	}
	refs, unknown := p.SecretReferences(meta, spec, nil)
	return len(refs) > 0 || len(unknown) > 0
}
