package policy

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Engine is what the policy knows of a pod (or pod template) that it recognised as a Dagger
// engine (design.md 4.1).
type Engine struct {
	// Container is the index in spec.containers of the engine container, or -1 when the pod
	// has several containers and none of them can be told to be the engine.
	Container int
	// ProfileName is the quota profile the pod asks for with its annotation, or the default.
	ProfileName string
	// Profile is the selected profile, or nil when ProfileName names no profile of the policy.
	Profile *Profile
	// SecretKeys are the logical secret keys of the iss.platform/secrets annotation.
	SecretKeys []string
	// Egress is the allowlist of the iss.platform/network-access annotation, empty without it.
	Egress Allowlist
	// EgressHash is Egress.Hash(): the value of the pod's iss.platform/egress-policy label.
	EgressHash string
	// SecretsMountPath is where the engine container gets its secrets (from the policy).
	SecretsMountPath string
}

// Match tells whether a pod with this metadata and spec is an engine, and if so which container
// is the engine and which quota profile applies. A pod is an engine when it carries one of the
// policy's engine labels or runs one of its engine images in a container.
func (e *EnginePolicy) Match(meta *metav1.ObjectMeta, spec *corev1.PodSpec) (Engine, bool) {
	firstImage := -1
	for i := range spec.Containers {
		if e.isEngineImage(spec.Containers[i].Image) {
			firstImage = i
			break
		}
	}
	if firstImage < 0 && !e.hasEngineLabel(meta.Labels) {
		return Engine{}, false
	}
	eng := Engine{Container: e.engineContainer(spec, firstImage), ProfileName: e.DefaultProfile, SecretsMountPath: e.SecretsMountPath}
	if name, ok := meta.Annotations[AnnotationProfile]; ok {
		eng.ProfileName = name
	}
	eng.Profile = e.Profile(eng.ProfileName)
	return eng, true
}

func (e *EnginePolicy) hasEngineLabel(labels map[string]string) bool {
	for k, v := range e.Labels {
		if got, ok := labels[k]; ok && got == v {
			return true
		}
	}
	return false
}

// engineContainer picks the engine container: the one with the policy's name, else the first
// that runs an engine image, else the only container.
func (e *EnginePolicy) engineContainer(spec *corev1.PodSpec, firstImage int) int {
	for i := range spec.Containers {
		if spec.Containers[i].Name == e.ContainerName {
			return i
		}
	}
	if firstImage >= 0 {
		return firstImage
	}
	if len(spec.Containers) == 1 {
		return 0
	}
	return -1
}

// isEngineImage tells whether an image reference names one of the engine repositories, whatever
// its tag or digest.
func (e *EnginePolicy) isEngineImage(image string) bool {
	repo := ImageRepository(image)
	for _, want := range e.Images {
		if repo == want {
			return true
		}
	}
	return false
}

// ImageRepository returns an image reference without its tag and digest:
// "registry.dagger.io/engine:v0.18.2@sha256:..." becomes "registry.dagger.io/engine".
func ImageRepository(image string) string {
	if at := strings.IndexByte(image, '@'); at >= 0 {
		image = image[:at]
	}
	// A colon after the last slash starts the tag; one before it belongs to a registry port.
	if colon := strings.LastIndexByte(image, ':'); colon > strings.LastIndexByte(image, '/') {
		image = image[:colon]
	}
	return image
}
