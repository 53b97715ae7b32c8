package policy

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validateQuota checks an engine against its quota profile (ISS-001 section 4).
func (e *EnginePolicy) validateQuota(eng Engine, spec *corev1.PodSpec, root *field.Path) field.ErrorList {
	specPath := root.Child("spec")
	var errs field.ErrorList
	if eng.Profile == nil {
		errs = append(errs, field.Invalid(root.Child("metadata", "annotations").Key(AnnotationProfile), eng.ProfileName,
			fmt.Sprintf("unknown quota profile; the policy defines %s: set the annotation to one of them, or remove it to get the default profile %q",
				quotedList(e.ProfileNames()), e.DefaultProfile)))
	}
	c := eng.ContainerIn(spec)
	if c == nil {
		names := make([]string, 0, len(spec.Containers))
		for _, c := range spec.Containers {
			names = append(names, c.Name)
		}
		errs = append(errs, field.Invalid(specPath.Child("containers"), strings.Join(names, ","),
			fmt.Sprintf("engine pod has %d containers and none is named %q or runs an engine image (%s): name the engine container %q",
				len(spec.Containers), e.ContainerName, strings.Join(e.Images, ", "), e.ContainerName)))
	}
	if spec.Resources != nil && (len(spec.Resources.Requests) > 0 || len(spec.Resources.Limits) > 0) {
		errs = append(errs, field.Forbidden(specPath.Child("resources"),
			"engine pods get their resources from the quota profile on the engine container (ISS-001 section 4): remove the pod-level resources"))
	}
	if eng.Profile == nil {
		return errs
	}
	if c != nil {
		resPath := eng.ContainerPath(specPath).Child("resources")
		errs = append(errs, e.validateResources(eng, c, "requests", resPath.Child("requests"))...)
		errs = append(errs, e.validateResources(eng, c, "limits", resPath.Child("limits"))...)
	}
	for i, v := range spec.Volumes {
		if v.EmptyDir == nil || v.EmptyDir.SizeLimit == nil {
			continue
		}
		// A memory-backed emptyDir is RAM, bounded by the memory limit, not by ephemeral storage.
		bound, what := corev1.ResourceEphemeralStorage, "ephemeral storage"
		if v.EmptyDir.Medium == corev1.StorageMediumMemory {
			bound, what = corev1.ResourceMemory, "memory"
		}
		limit, ok := eng.Profile.Limits[bound]
		if !ok || v.EmptyDir.SizeLimit.Cmp(limit) <= 0 {
			continue
		}
		errs = append(errs, field.Invalid(specPath.Child("volumes").Index(i).Child("emptyDir", "sizeLimit"), v.EmptyDir.SizeLimit.String(),
			fmt.Sprintf("emptyDir volume %q is larger than the %s of %s of quota profile %q (ISS-001 section 4): set sizeLimit to at most %s%s",
				v.Name, limit.String(), what, eng.Profile.Name, limit.String(), e.largerProfileHint(eng.Profile, bound, *v.EmptyDir.SizeLimit))))
	}
	return errs
}

// validateResources compares the requests or limits the engine container sets with its share
// of the profile (EngineShare: the profile less what the other containers declare). Values the
// container leaves out are fine: the mutating webhook fills them in.
func (e *EnginePolicy) validateResources(eng Engine, c *corev1.Container, kind string, path *field.Path) field.ErrorList {
	p := eng.Profile
	got, want, total := c.Resources.Requests, eng.Requests, p.Requests
	verb := "request"
	if kind == "limits" {
		got, want, total, verb = c.Resources.Limits, eng.Limits, p.Limits, "limit"
	}
	var errs field.ErrorList
	for _, name := range sortedResourceNames(want) {
		have, ok := got[name]
		wantQ := want[name]
		if !ok || have.Cmp(wantQ) == 0 || wantQ.Sign() <= 0 {
			// Nothing left for the engine is validateBudget's to report.
			continue
		}
		fixes := "fixes it at " + wantQ.String()
		if totalQ := total[name]; totalQ.Cmp(wantQ) != 0 {
			fixes = fmt.Sprintf("leaves the engine %s of its %s once the other containers have theirs", wantQ.String(), totalQ.String())
		}
		fix := fmt.Sprintf("set resources.%s.%s to %s or remove it to have it filled in", kind, name, wantQ.String())
		if limit, ok := c.Resources.Limits[name]; kind == "requests" && ok && limit.Cmp(have) == 0 {
			// Kubernetes copies a missing request from the limit before admission, so the user
			// may never have written this request.
			if shareLimit := eng.Limits[name]; limit.Cmp(shareLimit) == 0 {
				fix = fmt.Sprintf("Kubernetes copied the missing request from the limit: set resources.requests.%s to %s explicitly", name, wantQ.String())
			} else {
				fix = fmt.Sprintf("Kubernetes copied the missing request from the limit %s: fix the limit, or set resources.requests.%s to %s explicitly", limit.String(), name, wantQ.String())
			}
		}
		errs = append(errs, field.Invalid(path.Key(string(name)), have.String(),
			fmt.Sprintf("container %q sets %s %s %s, but quota profile %q (ISS-001 section 4) %s: %s, or select another profile with the %s annotation (%s)",
				c.Name, name, verb, have.String(), p.Name, fixes, fix, AnnotationProfile, quotedList(e.ProfileNames()))))
	}
	return errs
}

// largerProfileHint names a profile whose limit of the resource would admit size, when there is one.
func (e *EnginePolicy) largerProfileHint(current *Profile, res corev1.ResourceName, size resource.Quantity) string {
	for i := range e.Profiles {
		p := &e.Profiles[i]
		if limit, ok := p.Limits[res]; ok && p.Name != current.Name && size.Cmp(limit) <= 0 {
			return fmt.Sprintf(", or select the profile %q with the %s annotation", p.Name, AnnotationProfile)
		}
	}
	return ""
}

func quotedList(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(quoted, ", ")
}

// validateResourceNames denies, on every container and init container of an engine pod, a
// resource name its profile does not govern (hugepages, GPUs, extended resources) unless the
// profile allows it: the profile is the pod's budget, and what it does not name it cannot bound.
func (e *EnginePolicy) validateResourceNames(eng Engine, spec *corev1.PodSpec, root *field.Path) field.ErrorList {
	if eng.Profile == nil {
		return nil
	}
	governed := func(name corev1.ResourceName) bool {
		_, inRequests := eng.Profile.Requests[name]
		_, inLimits := eng.Profile.Limits[name]
		return inRequests || inLimits || slices.Contains(eng.Profile.AllowedResources, name)
	}
	var errs field.ErrorList
	check := func(containers []corev1.Container, path *field.Path) {
		for i := range containers {
			c := &containers[i]
			for kind, list := range map[string]corev1.ResourceList{"requests": c.Resources.Requests, "limits": c.Resources.Limits} {
				for _, name := range sortedResourceNames(list) {
					if !governed(name) {
						q := list[name]
						errs = append(errs, field.Forbidden(path.Index(i).Child("resources", kind).Key(string(name)), fmt.Sprintf(
							"container %q asks for %s %s, which quota profile %q (ISS-001 section 4) does not govern: engine pods may use %s only; remove it, or ask the platform team to allow it in the profile (spec.engines.profiles[].allowedResources)",
							c.Name, q.String(), name, eng.Profile.Name, strings.Join(governedNames(eng.Profile), ", "))))
					}
				}
			}
		}
	}
	specPath := root.Child("spec")
	check(spec.InitContainers, specPath.Child("initContainers"))
	check(spec.Containers, specPath.Child("containers"))
	for _, name := range sortedResourceNames(spec.Overhead) {
		if !governed(name) {
			q := spec.Overhead[name]
			errs = append(errs, field.Forbidden(specPath.Child("overhead").Key(string(name)), fmt.Sprintf(
				"runtime class %q adds an overhead of %s %s, which quota profile %q (ISS-001 section 4) does not govern: run engines with another runtime class, or ask the platform team to allow it in the profile (spec.engines.profiles[].allowedResources)",
				ptrString(spec.RuntimeClassName), q.String(), name, eng.Profile.Name)))
		}
	}
	// Dynamic resource allocation hands out devices by claim, outside every resource name.
	claim := "engine pods may not claim dynamic resources (GPUs and other devices), which no quota profile governs (ISS-001 section 4): remove the claims"
	for _, list := range []struct {
		name       string
		containers []corev1.Container
	}{{"initContainers", spec.InitContainers}, {"containers", spec.Containers}} {
		for i := range list.containers {
			if len(list.containers[i].Resources.Claims) > 0 {
				errs = append(errs, field.Forbidden(specPath.Child(list.name).Index(i).Child("resources", "claims"), claim))
			}
		}
	}
	if len(spec.ResourceClaims) > 0 {
		errs = append(errs, field.Forbidden(specPath.Child("resourceClaims"), claim))
	}
	if spec.Resources != nil && len(spec.Resources.Claims) > 0 {
		errs = append(errs, field.Forbidden(specPath.Child("resources", "claims"), claim))
	}
	slices.SortFunc(errs, func(a, b *field.Error) int { return strings.Compare(a.Field, b.Field) })
	return errs
}

// governedNames lists the resource names a profile governs or allows.
func governedNames(p *Profile) []string {
	seen := map[corev1.ResourceName]bool{}
	var names []string
	for _, l := range []corev1.ResourceList{p.Requests, p.Limits} {
		for _, n := range sortedResourceNames(l) {
			if !seen[n] {
				seen[n] = true
				names = append(names, string(n))
			}
		}
	}
	for _, n := range p.AllowedResources {
		if !seen[n] {
			seen[n] = true
			names = append(names, string(n))
		}
	}
	return names
}
