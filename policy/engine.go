package policy

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/distribution/reference"

	"k8s.io/apimachinery/pkg/util/validation/field"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Engine is what the policy knows of a pod (or pod template) that it recognised as a Dagger
// engine (design.md 4.1).
type Engine struct {
	// Container is the index of the engine container in spec.containers, or in
	// spec.initContainers when InitContainer is set (an engine run as a native sidecar). It is
	// -1 when the pod has several containers and none of them can be told to be the engine.
	Container int
	// InitContainer tells that Container indexes spec.initContainers.
	InitContainer bool
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
	// Requests and Limits are the engine container's share of its profile (EngineShare): what
	// the mutator fills in where the container leaves them out.
	Requests, Limits corev1.ResourceList
	// Warnings are what the engine rules admit but the user should know, such as storage that
	// no limit bounds.
	Warnings []string
	// StatefulSetClaims are the indexes in spec.volumes of the claims of the pod's StatefulSet,
	// which only the StatefulSet controller may create an engine pod with
	// (ValidateStatefulSetClaims).
	StatefulSetClaims []int
}

// ContainerIn returns the engine container of spec, or nil when it cannot be told.
func (eng *Engine) ContainerIn(spec *corev1.PodSpec) *corev1.Container {
	list := spec.Containers
	if eng.InitContainer {
		list = spec.InitContainers
	}
	if eng.Container < 0 || eng.Container >= len(list) {
		return nil
	}
	return &list[eng.Container]
}

// ContainerPath returns the field path of the engine container under specPath.
func (eng *Engine) ContainerPath(specPath *field.Path) *field.Path {
	if eng.InitContainer {
		return specPath.Child("initContainers").Index(eng.Container)
	}
	return specPath.Child("containers").Index(eng.Container)
}

// Match tells whether a pod with this metadata and spec is an engine, and if so which container
// is the engine and which quota profile applies. A pod is an engine when it carries one of the
// policy's engine labels or runs one of its engine images in a container or init container.
func (e *EnginePolicy) Match(meta *metav1.ObjectMeta, spec *corev1.PodSpec) (Engine, bool) {
	eng := Engine{Container: -1, ProfileName: e.DefaultProfile, SecretsMountPath: e.SecretsMountPath}
	switch {
	case e.pick(&eng, spec.Containers, false, func(c *corev1.Container) bool { return c.Name == e.ContainerName }),
		e.pick(&eng, spec.Containers, false, func(c *corev1.Container) bool { return e.IsEngineImage(c.Image) }),
		e.pick(&eng, spec.InitContainers, true, func(c *corev1.Container) bool { return e.IsEngineImage(c.Image) }):
		// An engine container named by the policy only makes an engine together with a label
		// or an image: a container name alone proves nothing.
		if !e.hasEngineLabel(meta.Labels) && !e.runsEngineImage(spec) {
			return Engine{}, false
		}
	case e.hasEngineLabel(meta.Labels):
		if len(spec.Containers) == 1 {
			eng.Container = 0
		}
	default:
		return Engine{}, false
	}
	if name, ok := meta.Annotations[AnnotationProfile]; ok {
		eng.ProfileName = name
	}
	eng.Profile = e.Profile(eng.ProfileName)
	return eng, true
}

// validateEngineContainers makes sure that a pod has exactly one engine, and that the container
// that takes the profile is it: a container named like the engine that runs another image
// beside one that runs the engine image would take the profile while the real engine is
// counted as a helper, or not at all.
func (e *EnginePolicy) validateEngineContainers(eng Engine, spec *corev1.PodSpec, root *field.Path) field.ErrorList {
	specPath := root.Child("spec")
	var errs field.ErrorList
	var first *corev1.Container
	engineImages := 0
	for _, list := range []struct {
		name       string
		containers []corev1.Container
	}{{"containers", spec.Containers}, {"initContainers", spec.InitContainers}} {
		for i := range list.containers {
			c := &list.containers[i]
			if !e.IsEngineImage(c.Image) {
				continue
			}
			engineImages++
			if first == nil {
				first = c
				continue
			}
			errs = append(errs, field.Forbidden(specPath.Child(list.name).Index(i).Child("image"), fmt.Sprintf(
				"container %q runs the engine image %s too, but exactly one container of an engine pod is the engine, the one that gets the quota profile (ISS-001 section 4): run one engine per pod, in the container %q",
				c.Name, c.Image, e.ContainerName)))
		}
	}
	if c := eng.ContainerIn(spec); c != nil && engineImages > 0 && !e.IsEngineImage(c.Image) {
		errs = append(errs, field.Forbidden(eng.ContainerPath(specPath).Child("image"), fmt.Sprintf(
			"container %q is named like the engine container but runs %s, not an engine image, while container %q does: the engine container is the one that runs the engine; name it %q and give this container another name",
			c.Name, c.Image, first.Name, e.ContainerName)))
	}
	return errs
}

// pick sets eng's container to the first of list that matches, and reports whether one did.
func (e *EnginePolicy) pick(eng *Engine, list []corev1.Container, init bool, match func(*corev1.Container) bool) bool {
	for i := range list {
		if match(&list[i]) {
			eng.Container, eng.InitContainer = i, init
			return true
		}
	}
	return false
}

func (e *EnginePolicy) runsEngineImage(spec *corev1.PodSpec) bool {
	for _, list := range [][]corev1.Container{spec.Containers, spec.InitContainers} {
		for i := range list {
			if e.IsEngineImage(list[i].Image) {
				return true
			}
		}
	}
	return false
}

func (e *EnginePolicy) hasEngineLabel(labels map[string]string) bool {
	for k, v := range e.Labels {
		if got, ok := labels[k]; ok && got == v {
			return true
		}
	}
	return false
}

// IsEngineImage tells whether an image reference names one of the engine repositories, whatever
// its tag or digest, and however its registry host is spelled.
func (e *EnginePolicy) IsEngineImage(image string) bool {
	repo := ImageRepository(image)
	for _, want := range e.Images {
		if repo == ImageRepository(want) {
			return true
		}
	}
	return false
}

// PodRunning tells whether a pod runs, will run or is still terminating: whether what the
// webhook set up for it (its egress policy) still matters.
func PodRunning(pod *corev1.Pod) bool {
	return pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}

// ImageRepository returns the repository an image reference pulls from, as a registry client
// resolves it: without tag and digest, with Docker Hub's names completed
// ("busybox" is "docker.io/library/busybox"), the registry host in lower case and without the
// default HTTPS port in any spelling ("REGISTRY.dagger.io:0443/engine:v0.19.7@sha256:..." is
// "registry.dagger.io/engine"). The reference grammar is that of Kubernetes and containerd; a
// reference it rejects cannot be pulled, and is read as well as it can be.
func ImageRepository(image string) string {
	if host, rest, ok := strings.Cut(image, "/"); ok && looksLikeHost(host) {
		image = normalizeHost(host) + "/" + rest
	}
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return legacyRepository(image)
	}
	domain := reference.Domain(named)
	if domain == "docker.io" || domain == "index.docker.io" {
		domain = "docker.io"
	}
	return domain + "/" + reference.Path(named)
}

// looksLikeHost tells whether the first element of a reference is a registry host: it has a dot
// or a port, or is localhost.
func looksLikeHost(s string) bool {
	return strings.ContainsAny(s, ".:") || strings.EqualFold(s, "localhost")
}

// normalizeHost lower-cases a registry host and drops the default HTTPS port, written with
// leading zeros or not.
func normalizeHost(host string) string {
	host = strings.ToLower(host)
	if name, port, ok := strings.Cut(host, ":"); ok {
		if trimmed := strings.TrimLeft(port, "0"); trimmed == "443" {
			return name
		} else if trimmed != "" && trimmed != port {
			return name + ":" + trimmed
		}
	}
	return host
}

// legacyRepository strips the tag and digest of a reference the grammar rejects.
func legacyRepository(image string) string {
	if at := strings.IndexByte(image, '@'); at >= 0 {
		image = image[:at]
	}
	// A colon after the last slash starts the tag; one before it belongs to a registry port.
	if colon := strings.LastIndexByte(image, ':'); colon > strings.LastIndexByte(image, '/') {
		image = image[:colon]
	}
	return strings.ToLower(image)
}

// EngineImagePattern returns the RE2 pattern of an image reference that runs one of the
// repositories, in any spelling of its registry host (case, the default port :443 with or without
// leading zeros, Docker Hub's short names) and with any tag or digest: a superset of what
// ImageRepository reads as the repository, which decides. The webhook configurations' matchConditions test container images with it, so
// that pods of the policy's engine images reach the webhook without a label.
func EngineImagePattern(repos []string) string {
	parts := make([]string, len(repos))
	for i, r := range repos {
		repo := ImageRepository(r)
		host, rest, _ := strings.Cut(repo, "/")
		switch {
		case host == "docker.io":
			// Docker Hub's names are written short, and with or without library/.
			name := regexp.QuoteMeta(rest)
			if lib, ok := strings.CutPrefix(rest, "library/"); ok {
				name = "(library/)?" + regexp.QuoteMeta(lib)
			}
			parts[i] = "((index\\.)?docker\\.io(:0*443)?/)?" + name
		default:
			parts[i] = regexp.QuoteMeta(host) + "(:0*443)?/" + regexp.QuoteMeta(rest)
		}
	}
	if len(parts) == 0 {
		// No image makes an engine: a pattern that matches nothing.
		return "$^"
	}
	return "(?i)^(" + strings.Join(parts, "|") + ")([:@]|$)"
}
