package policy

import (
	"fmt"
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
	if eng.Container < 0 {
		names := make([]string, 0, len(spec.Containers))
		for _, c := range spec.Containers {
			names = append(names, c.Name)
		}
		errs = append(errs, field.Invalid(specPath.Child("containers"), strings.Join(names, ","),
			fmt.Sprintf("engine pod has %d containers and none is named %q or runs an engine image (%s): name the engine container %q",
				len(spec.Containers), e.ContainerName, strings.Join(e.Images, ", "), e.ContainerName)))
	}
	if eng.Profile == nil {
		return errs
	}
	if eng.Container >= 0 {
		c := &spec.Containers[eng.Container]
		resPath := specPath.Child("containers").Index(eng.Container).Child("resources")
		errs = append(errs, e.validateResources(c, "requests", c.Resources.Requests, eng.Profile.Requests, resPath.Child("requests"), eng.Profile)...)
		errs = append(errs, e.validateResources(c, "limits", c.Resources.Limits, eng.Profile.Limits, resPath.Child("limits"), eng.Profile)...)
	}
	if storage, ok := eng.Profile.Storage(); ok {
		for i, v := range spec.Volumes {
			if v.EmptyDir == nil || v.EmptyDir.SizeLimit == nil || v.EmptyDir.SizeLimit.Cmp(storage) <= 0 {
				continue
			}
			errs = append(errs, field.Invalid(specPath.Child("volumes").Index(i).Child("emptyDir", "sizeLimit"), v.EmptyDir.SizeLimit.String(),
				fmt.Sprintf("emptyDir volume %q is larger than the %s of ephemeral storage of quota profile %q (ISS-001 section 4): set sizeLimit to at most %s%s",
					v.Name, storage.String(), eng.Profile.Name, storage.String(), e.largerProfileHint(eng.Profile, *v.EmptyDir.SizeLimit))))
		}
	}
	return errs
}

// validateResources compares the requests or limits a container sets with the profile's.
// Values the container leaves out are fine: the mutating webhook fills them in.
func (e *EnginePolicy) validateResources(c *corev1.Container, kind string, got, want corev1.ResourceList, path *field.Path, p *Profile) field.ErrorList {
	var errs field.ErrorList
	for _, name := range sortedResourceNames(want) {
		have, ok := got[name]
		wantQ := want[name]
		if !ok || have.Cmp(wantQ) == 0 {
			continue
		}
		verb := map[string]string{"requests": "request", "limits": "limit"}[kind]
		hint := ""
		if kind == "requests" {
			if limit, ok := c.Resources.Limits[name]; ok && limit.Cmp(have) == 0 {
				hint = " (Kubernetes copies a missing request from the limit, so the limit is probably what to change)"
			}
		}
		errs = append(errs, field.Invalid(path.Key(string(name)), have.String(),
			fmt.Sprintf("container %q sets %s %s %s, but quota profile %q (ISS-001 section 4) fixes it at %s%s: set resources.%s.%s to %s or remove it to have it filled in, or select another profile with the %s annotation (%s)",
				c.Name, name, verb, have.String(), p.Name, wantQ.String(), hint, kind, name, wantQ.String(), AnnotationProfile, quotedList(e.ProfileNames()))))
	}
	return errs
}

// largerProfileHint names a profile whose storage would admit size, when there is one.
func (e *EnginePolicy) largerProfileHint(current *Profile, size resource.Quantity) string {
	for i := range e.Profiles {
		p := &e.Profiles[i]
		if storage, ok := p.Storage(); ok && p.Name != current.Name && size.Cmp(storage) <= 0 {
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
