package mutators

import (
	"context"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/iss-platform/iss-webhook/policy"
)

// The mutating rules of the governed kinds, in the shape of policy's admission rules: they judge
// the object as the validating rules do and say, in Outcome.Mutate, how to change it.

// DefaultEnginePod judges an engine pod being created under the engine rules and, unless they
// deny it, gives it its profile's resources, its secret volume and its egress label, and has its
// egress objects written. Other pods are left as they are. In Warn and Audit modes the
// mutators still apply what they can: the profile when it is known, the valid secret keys, and
// the egress label of the parsed allowlist, which is deny-all when the annotation is malformed.
func DefaultEnginePod(_ context.Context, p *policy.Policy, req *policy.Request, pod, _ *corev1.Pod) policy.Outcome {
	if req.Operation != policy.Create || req.SubResource != "" {
		return policy.Outcome{Skip: "iss-webhook mutates engine pods on create only"}
	}
	eng, ok, errs := p.ReviewEnginePod(&pod.ObjectMeta, &pod.Spec, nil)
	if !ok {
		return policy.Outcome{Skip: "not a Dagger engine pod"}
	}
	out := policy.Outcome{Group: policy.RuleEnginePods}
	if !req.Trusted {
		errs = append(errs, policy.ValidateStatefulSetClaims(eng, &pod.Spec, req.User)...)
	}
	out.Add(policy.RuleEnginePods, errs)
	out.Mutate = func() []string { return MutateEnginePod(pod, eng) }
	out.Egress = &policy.EgressWrite{Namespace: req.Namespace, Engine: eng}
	return out
}

// DefaultInitiator sets the iss.platform/initiator-id annotation of an ExternalSecret or
// PushSecret being created to the requesting user when it is absent. It holds in exempt
// namespaces too: the initiator binding is an integrity rule.
func DefaultInitiator(_ context.Context, _ *policy.Policy, req *policy.Request, obj, _ *policy.SecretObject) policy.Outcome {
	if req.Operation != policy.Create {
		return policy.Outcome{Skip: "the initiator is set on create only"}
	}
	return policy.Outcome{Group: policy.RuleIntegrity, Mutate: func() []string {
		meta := metav1.ObjectMeta{Annotations: obj.GetAnnotations()}
		if !InitiatorID(&meta, req.User) {
			return nil
		}
		obj.SetAnnotations(meta.Annotations)
		return []string{"initiator-id"}
	}}
}

// DefaultHPA gives an HPA the saturation metric and the scaling behaviour of the policy where
// it has none, on update too: a re-apply that drops metrics gets the API server's CPU default,
// which HPADefaults recognises and replaces.
func DefaultHPA(_ context.Context, p *policy.Policy, _ *policy.Request, hpa, _ *autoscalingv2.HorizontalPodAutoscaler) policy.Outcome {
	return policy.Outcome{Group: policy.RuleAutoscaling, Mutate: func() []string {
		if HPADefaults(hpa, &p.Autoscaling) {
			return []string{"hpa-defaults"}
		}
		return nil
	}}
}
