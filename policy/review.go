package policy

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ReviewEnginePod evaluates a pod, or the template of a workload, under the engine rules. It
// tells whether the pod is an engine and returns what the mutators need to know of it and every
// violation at once: quota profile, malformed ISS annotations, secret-agent sidecars, host
// namespaces and helpers' privileges. root is the
// path of the object that holds metadata and spec: nil for a Pod, spec.template for a workload.
func (p *Policy) ReviewEnginePod(meta *metav1.ObjectMeta, spec *corev1.PodSpec, root *field.Path) (Engine, bool, field.ErrorList) {
	return p.reviewEnginePod(meta, spec, nil, root)
}

// reviewEnginePod is ReviewEnginePod with the volume claim templates of a StatefulSet, whose
// storage counts against the profile with the pod's.
func (p *Policy) reviewEnginePod(meta *metav1.ObjectMeta, spec *corev1.PodSpec, claims []corev1.PersistentVolumeClaim, root *field.Path) (Engine, bool, field.ErrorList) {
	eng, ok := p.Engines.Match(meta, spec)
	if !ok {
		return Engine{}, false, nil
	}
	annotations := root.Child("metadata", "annotations")
	var errs field.ErrorList

	keys, keyErrs := ParseSecretKeys(meta.Annotations[AnnotationSecrets], annotations.Key(AnnotationSecrets))
	eng.SecretKeys = keys
	errs = append(errs, keyErrs...)

	raw := meta.Annotations[AnnotationNetworkAccess]
	allowlist, parseErrs := p.Network.ParseNetworkAccess(raw)
	for _, err := range parseErrs {
		errs = append(errs, field.Invalid(annotations.Key(AnnotationNetworkAccess), raw,
			fmt.Sprintf("%v; the annotation holds the OCS security.networkAccess block as JSON, such as [{\"host\":\"api.github.com\",\"ports\":[443]},{\"host\":\"*.pkg.dev\"}]", err)))
	}
	eng.Egress = allowlist
	eng.EgressHash = allowlist.Hash()

	eng.Requests, eng.Limits = EngineShare(&eng, spec)
	containerErrs := p.Engines.validateEngineContainers(eng, spec, root)
	errs = append(errs, containerErrs...)
	errs = append(errs, p.Engines.validateQuota(eng, spec, root)...)
	if len(containerErrs) == 0 {
		// The budget is the engine's only once it is clear which container the engine is.
		errs = append(errs, p.Engines.validateBudget(eng, spec, root)...)
	}
	errs = append(errs, p.Engines.validateResourceNames(eng, spec, root)...)
	volumeErrs, warnings := p.Engines.validateVolumes(&eng, meta, spec, claims, root)
	errs = append(errs, volumeErrs...)
	eng.Warnings = append(eng.Warnings, warnings...)
	errs = append(errs, validateIsolation(eng, spec, root)...)
	errs = append(errs, validateNoSecretAgents(meta.Annotations, spec, root)...)
	return eng, true, errs
}

// ValidateISSMetadataUnchanged denies an update that adds, changes or removes any iss.platform/
// label or annotation: they decide what the webhook did to the object (profile, secrets, egress
// policy), so changing them afterwards would leave it running outside the standard.
func ValidateISSMetadataUnchanged(oldMeta, newMeta *metav1.ObjectMeta, root *field.Path) field.ErrorList {
	var errs field.ErrorList
	check := func(kind string, old, cur map[string]string) {
		path := root.Child("metadata", kind)
		for _, k := range issKeys(old, cur) {
			before, had := old[k]
			after, has := cur[k]
			switch {
			case had && !has:
				errs = append(errs, field.Forbidden(path.Key(k), fmt.Sprintf("%s %q was removed; ISS %s are immutable once the webhook admitted the object: put it back, or recreate the object", singular(kind), before, kind)))
			case !had && has:
				errs = append(errs, field.Forbidden(path.Key(k), fmt.Sprintf("%s was added with value %q; ISS %s are immutable once the webhook admitted the object: recreate the object with it", singular(kind), after, kind)))
			case before != after:
				errs = append(errs, field.Forbidden(path.Key(k), fmt.Sprintf("%s changed from %q to %q; ISS %s are immutable once the webhook admitted the object: recreate the object instead", singular(kind), before, after, kind)))
			}
		}
	}
	check("labels", oldMeta.Labels, newMeta.Labels)
	check("annotations", oldMeta.Annotations, newMeta.Annotations)
	return errs
}

func singular(kind string) string { return kind[:len(kind)-1] }

// isISSKey tells whether a label or annotation key is an ISS one.
func isISSKey(k string) bool { return strings.HasPrefix(k, Prefix) }

// issKeys returns the iss.platform/ keys of either map, sorted.
func issKeys(a, b map[string]string) []string {
	var keys []string
	seen := map[string]bool{}
	for _, m := range []map[string]string{a, b} {
		for k := range m {
			if isISSKey(k) && !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	return keys
}

// ReviewPodUpdate evaluates an update of a pod (not through a subresource). integrity are the
// violations of the integrity rules: its ISS labels and annotations stay as they were, and a pod
// that was not an engine does not become one (the webhook could not give it its profile, secrets
// and egress policy). engine are those of the engine rules, which an engine still follows; they
// are apart because they have the engine rules' enforcement mode, so that an engine admitted in
// Warn mode can still be labelled.
func (p *Policy) ReviewPodUpdate(old, cur *corev1.Pod) (integrity, engine field.ErrorList) {
	integrity = ValidateISSMetadataUnchanged(&old.ObjectMeta, &cur.ObjectMeta, nil)
	_, wasEngine := p.Engines.Match(&old.ObjectMeta, &old.Spec)
	_, isEngine, engine := p.ReviewEnginePod(&cur.ObjectMeta, &cur.Spec, nil)
	if isEngine && !wasEngine {
		integrity = append(integrity, field.Forbidden(field.NewPath("spec", "containers"),
			"this update makes the pod a Dagger engine (engine image or label); create a new pod instead, so that it gets its quota profile, secrets and egress policy"))
	}
	return integrity, engine
}

// ValidateEphemeralContainers checks ephemeral containers (kubectl debug). integrity denies those
// that run an engine image, which would be engines without a quota profile or egress policy: an
// integrity rule, since in Warn mode it would open engine egress. engine denies secret agents and
// privileged or capability-adding debug containers in engines, under the engine rules.
func (p *Policy) ValidateEphemeralContainers(meta *metav1.ObjectMeta, spec *corev1.PodSpec) (integrity, engine field.ErrorList) {
	if eng, isEngine := p.Engines.Match(meta, spec); isEngine {
		engine = validateNoSecretAgents(nil, &corev1.PodSpec{EphemeralContainers: spec.EphemeralContainers}, nil)
		for i := range spec.EphemeralContainers {
			c := &spec.EphemeralContainers[i]
			engine = append(engine, validateHelperPrivileges(c.Name, c.SecurityContext, field.NewPath("spec", "ephemeralContainers").Index(i))...)
		}
		if len(spec.EphemeralContainers) > 0 {
			engine = append(engine, validateBoundedForDebugging(eng, spec)...)
		}
	}
	for i, c := range spec.EphemeralContainers {
		if p.Engines.IsEngineImage(c.Image) {
			integrity = append(integrity, field.Forbidden(field.NewPath("spec", "ephemeralContainers").Index(i).Child("image"),
				fmt.Sprintf("ephemeral container %q runs the engine image %s, which would run outside its quota profile and egress policy: debug with another image", c.Name, c.Image)))
		}
	}
	return integrity, engine
}

// validateBoundedForDebugging admits ephemeral containers into an engine pod only when every
// other container has limits of every resource the profile bounds. Ephemeral containers cannot
// declare resources; the pod's cgroup, which the kubelet bounds by the sum of the containers'
// limits only when all of them have one, is then what keeps them inside the profile.
func validateBoundedForDebugging(eng Engine, spec *corev1.PodSpec) field.ErrorList {
	names := []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage}
	if eng.Profile != nil {
		names = sortedResourceNames(eng.Profile.Limits)
	}
	var unbounded []string
	for _, list := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for _, c := range list {
			for _, n := range names {
				if _, ok := c.Resources.Limits[n]; !ok {
					unbounded = append(unbounded, fmt.Sprintf("%s (%s)", c.Name, n))
				}
			}
		}
	}
	if len(unbounded) == 0 {
		return nil
	}
	return field.ErrorList{field.Forbidden(field.NewPath("spec", "ephemeralContainers"), fmt.Sprintf(
		"ephemeral containers cannot declare resources, and in an engine pod only the pod's cgroup bounds them, which it does only when every container has limits; these have none: %s (ISS-001 section 4): debug an engine pod whose containers all have their limits, such as one the webhook admitted in Enforce mode",
		strings.Join(unbounded, ", ")))}
}

// ValidateEgressLabel checks a pod's iss.platform/egress-policy label once every mutating
// webhook has run: an engine's must be the hash of its allowlist (another webhook must not have
// changed it), and a pod that is not an engine must not carry one (it would keep generated
// policies from being collected).
func ValidateEgressLabel(meta *metav1.ObjectMeta, eng Engine, isEngine bool) field.ErrorList {
	path := field.NewPath("metadata", "labels").Key(LabelEgressPolicy)
	value, has := meta.Labels[LabelEgressPolicy]
	switch {
	case isEngine && value != eng.EgressHash:
		return field.ErrorList{field.Invalid(path, value, fmt.Sprintf("must be %q, the hash of the engine's %s annotation, which iss-webhook's mutating webhook sets: do not set or change it, and check that no other mutating webhook does", eng.EgressHash, AnnotationNetworkAccess))}
	case !isEngine && has:
		return field.ErrorList{field.Forbidden(path, "only Dagger engines carry this label, which iss-webhook sets: remove it")}
	}
	return nil
}
