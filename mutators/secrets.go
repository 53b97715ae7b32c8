package mutators

import (
	"reflect"

	corev1 "k8s.io/api/core/v1"

	"github.com/iss-platform/iss-webhook/policy"
)

// secretFileMode lets the file owner (root) and the pod's fsGroup read the secret files, and
// nobody write them.
const secretFileMode int32 = 0o440

// SecretVolume gives the engine container its secrets without an init container or sidecar
// (design.md 4.2): one read-only projected volume, iss-secrets, with the key K of the Secret
// iss-<k> (which the External Secrets Operator syncs from OpenBao) as the file K, mounted at the
// policy's secrets path. A pod that lists no keys is left as it is.
func SecretVolume(pod *corev1.Pod, eng policy.Engine) bool {
	c := eng.ContainerIn(&pod.Spec)
	if len(eng.SecretKeys) == 0 || c == nil {
		return false
	}
	mode := secretFileMode
	projected := &corev1.ProjectedVolumeSource{DefaultMode: &mode}
	for _, key := range eng.SecretKeys {
		projected.Sources = append(projected.Sources, corev1.VolumeProjection{Secret: &corev1.SecretProjection{
			LocalObjectReference: corev1.LocalObjectReference{Name: policy.SecretName(key)},
			Items:                []corev1.KeyToPath{{Key: key, Path: key}},
		}})
	}
	volume := corev1.Volume{Name: policy.SecretsVolumeName, VolumeSource: corev1.VolumeSource{Projected: projected}}
	mount := corev1.VolumeMount{Name: policy.SecretsVolumeName, MountPath: eng.SecretsMountPath, ReadOnly: true}

	changed := setByName(&pod.Spec.Volumes, volume, func(v corev1.Volume) string { return v.Name })
	return setByName(&c.VolumeMounts, mount, func(m corev1.VolumeMount) string { return m.Name }) || changed
}

// setByName replaces the element of *list with want's name by want, or appends want, and
// reports whether the list changed.
func setByName[T any](list *[]T, want T, name func(T) string) bool {
	for i := range *list {
		if name((*list)[i]) == name(want) {
			if reflect.DeepEqual((*list)[i], want) {
				return false
			}
			(*list)[i] = want
			return true
		}
	}
	*list = append(*list, want)
	return true
}

// EgressLabel labels every engine with the hash of its allowlist, which the generated egress
// policies select (design.md 4.3). Engines without the annotation get the hash of the empty
// allowlist: DNS only.
func EgressLabel(pod *corev1.Pod, eng policy.Engine) bool {
	if eng.EgressHash == "" || pod.Labels[policy.LabelEgressPolicy] == eng.EgressHash {
		return false
	}
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Labels[policy.LabelEgressPolicy] = eng.EgressHash
	return true
}
