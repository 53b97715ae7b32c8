package mutators

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/iss-platform/iss-webhook/policy"
)

// ProfileResources fills in the requests and limits of the engine container that the pod leaves
// out, with its share of the quota profile (ISS-001 section 4): the profile less what the pod's
// other containers declare (policy.EngineShare). Values the pod sets are kept as they are:
// when they differ from the profile the validating webhook denies the pod with a message, which
// is clearer than silently overwriting what the user wrote. It does nothing when the profile is
// unknown or the engine container cannot be told.
func ProfileResources(pod *corev1.Pod, eng policy.Engine) bool {
	c := eng.ContainerIn(&pod.Spec)
	if eng.Profile == nil || c == nil {
		return false
	}
	res := &c.Resources
	changedRequests := fillMissing(&res.Requests, eng.Requests)
	changedLimits := fillMissing(&res.Limits, eng.Limits)
	return changedRequests || changedLimits
}

// fillMissing copies into *dst every entry of src that *dst lacks.
func fillMissing(dst *corev1.ResourceList, src corev1.ResourceList) bool {
	changed := false
	for name, q := range src {
		if _, ok := (*dst)[name]; ok || q.Sign() <= 0 {
			// Nothing left of the profile: the validating rules deny the pod and say why.
			continue
		}
		if *dst == nil {
			*dst = corev1.ResourceList{}
		}
		(*dst)[name] = q.DeepCopy()
		changed = true
	}
	return changed
}
