package policy

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"
	resourcehelper "k8s.io/component-helpers/resource"
)

// The quota profile is the budget of the whole engine pod (design.md section 3), not of one
// container: whatever else the pod runs (containers, init containers, native sidecars) and the
// overhead of its runtime class are taken from the profile, and the engine container gets what
// is left. The pod's effective requests and limits, as the scheduler and the kubelet compute
// them, then equal the profile.

// EngineShare returns the requests and limits the engine container gets: its profile's, less
// what the pod's other long-running containers (regular containers and native sidecars) declare
// and the pod's overhead. Only the names the profile governs are returned. Both lists are nil
// when the profile is unknown or the engine container cannot be told.
func EngineShare(eng *Engine, spec *corev1.PodSpec) (requests, limits corev1.ResourceList) {
	if eng.Profile == nil || eng.ContainerIn(spec) == nil {
		return nil, nil
	}
	others := otherContainers(eng, spec)
	share := func(budget corev1.ResourceList, declared func(*corev1.Container) corev1.ResourceList) corev1.ResourceList {
		out := corev1.ResourceList{}
		for name, q := range budget {
			left := q.DeepCopy()
			for _, c := range others {
				if c.init && !c.sidecar {
					continue // it has finished before the engine starts
				}
				if used, ok := declared(c.Container)[name]; ok {
					left.Sub(used)
				}
			}
			if used, ok := spec.Overhead[name]; ok {
				left.Sub(used)
			}
			out[name] = left
		}
		return out
	}
	return share(eng.Profile.Requests, func(c *corev1.Container) corev1.ResourceList { return c.Resources.Requests }),
		share(eng.Profile.Limits, func(c *corev1.Container) corev1.ResourceList { return c.Resources.Limits })
}

// podContainer is a container of a pod that is not its engine, with where it is in the spec.
type podContainer struct {
	*corev1.Container
	list          string // "initContainers" or "containers"
	index         int
	init, sidecar bool
}

// path returns the container's field path under specPath.
func (c podContainer) path(specPath *field.Path) *field.Path {
	return specPath.Child(c.list).Index(c.index)
}

// otherContainers returns every container and init container of spec except the engine, init
// containers first, as the kubelet starts them.
func otherContainers(eng *Engine, spec *corev1.PodSpec) []podContainer {
	var out []podContainer
	for i := range spec.InitContainers {
		if eng.InitContainer && i == eng.Container {
			continue
		}
		c := &spec.InitContainers[i]
		out = append(out, podContainer{Container: c, list: "initContainers", index: i, init: true,
			sidecar: c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways})
	}
	for i := range spec.Containers {
		if !eng.InitContainer && i == eng.Container {
			continue
		}
		out = append(out, podContainer{Container: &spec.Containers[i], list: "containers", index: i})
	}
	return out
}

// validateBudget checks that an engine pod as a whole stays within its quota profile: every
// container but the engine declares requests and limits of every resource the profile governs,
// they leave the engine something of each, and the pod's effective requests and limits (the
// scheduler's computation: containers, native sidecars, the largest init container, overhead)
// equal the profile once the engine container has its share.
func (e *EnginePolicy) validateBudget(eng Engine, spec *corev1.PodSpec, root *field.Path) field.ErrorList {
	c := eng.ContainerIn(spec)
	if eng.Profile == nil || c == nil {
		return nil
	}
	specPath := root.Child("spec")
	var errs field.ErrorList
	others := otherContainers(&eng, spec)
	for _, o := range others {
		var missing, fixes []string
		for _, kind := range []string{"requests", "limits"} {
			declared, budget := o.Resources.Requests, eng.Profile.Requests
			if kind == "limits" {
				declared, budget = o.Resources.Limits, eng.Profile.Limits
			}
			for _, name := range sortedResourceNames(budget) {
				if _, ok := declared[name]; !ok {
					missing = append(missing, fmt.Sprintf("%s %s", name, strings.TrimSuffix(kind, "s")))
					fixes = append(fixes, fmt.Sprintf("resources.%s.%s", kind, name))
				}
			}
		}
		if len(missing) == 0 {
			continue
		}
		errs = append(errs, field.Required(o.path(specPath).Child("resources"), fmt.Sprintf(
			"container %q is not the engine and declares no %s: every other container of an engine pod declares its requests and limits of %s, which are taken from quota profile %q's budget of the whole pod (ISS-001 section 4), so that nothing in the pod runs unbounded: set %s",
			o.Name, strings.Join(missing, ", "), strings.Join(resourceNameStrings(eng.Profile.Limits), ", "), eng.Profile.Name, strings.Join(fixes, ", "))))
	}
	if len(errs) > 0 {
		return errs
	}
	requests, limits := eng.Requests, eng.Limits // EngineShare, computed with the engine
	for _, share := range []struct {
		kind    string
		left    corev1.ResourceList
		profile corev1.ResourceList
	}{{"requests", requests, eng.Profile.Requests}, {"limits", limits, eng.Profile.Limits}} {
		for _, name := range sortedResourceNames(share.left) {
			left := share.left[name]
			if left.Sign() > 0 {
				continue
			}
			total := share.profile[name]
			errs = append(errs, field.Invalid(specPath.Child("containers"), containerNames(spec), fmt.Sprintf(
				"the containers besides the engine%s declare %s of %s, which leaves the engine container %q nothing of quota profile %q's %s (ISS-001 section 4): lower the other containers' resources.%s.%s, or select a larger profile with the %s annotation (%s)",
				overheadNote(spec, name), declaredBesides(total, left), name, c.Name, eng.Profile.Name, total.String(), share.kind, name, AnnotationProfile, quotedList(e.ProfileNames()))))
		}
	}
	if len(errs) > 0 {
		return errs
	}
	// The engine's request may not exceed its limit: where the profile's requests and limits of a
	// resource are close (ephemeral storage: equal), the others must request what they limit.
	for _, name := range sortedResourceNames(requests) {
		req, lim := requests[name], limits[name]
		if req.Cmp(lim) <= 0 {
			continue
		}
		for _, o := range others {
			r, l := o.Resources.Requests[name], o.Resources.Limits[name]
			if o.init && !o.sidecar || r.Cmp(l) == 0 {
				continue
			}
			errs = append(errs, field.Invalid(o.path(specPath).Child("resources", "requests").Key(string(name)), r.String(), fmt.Sprintf(
				"container %q requests less %s than it limits, which leaves the engine container %q more than its limit (request %s, limit %s of quota profile %q, ISS-001 section 4): set the request to its limit %s",
				o.Name, name, c.Name, req.String(), lim.String(), eng.Profile.Name, l.String())))
		}
	}
	if len(errs) > 0 {
		return errs
	}
	// With the engine's share in place, what the scheduler computes must be the profile. It
	// differs only when an init container needs more than the pod's long-running containers.
	pod := &corev1.Pod{Spec: *spec.DeepCopy()}
	engine := eng.ContainerIn(&pod.Spec)
	engine.Resources.Requests, engine.Resources.Limits = requests, limits
	for _, effective := range []struct {
		kind    string
		got     corev1.ResourceList
		profile corev1.ResourceList
	}{
		// Pod-level resources are denied on engines (validateQuota) and left out here.
		{"requests", resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{SkipPodLevelResources: true}), eng.Profile.Requests},
		{"limits", resourcehelper.PodLimits(pod, resourcehelper.PodResourcesOptions{SkipPodLevelResources: true}), eng.Profile.Limits},
	} {
		for _, name := range sortedResourceNames(effective.profile) {
			got, want := effective.got[name], effective.profile[name]
			if got.Cmp(want) == 0 {
				continue
			}
			errs = append(errs, field.Invalid(specPath.Child("initContainers"), got.String(), fmt.Sprintf(
				"the pod's effective %s of %s, as the scheduler computes it (the largest init container, with the native sidecars started before it, against the long-running containers), is %s, but quota profile %q (ISS-001 section 4) is the budget of the whole pod at %s: lower the init containers' resources.%s.%s",
				effective.kind, name, got.String(), eng.Profile.Name, want.String(), effective.kind, name)))
		}
	}
	return errs
}

// declaredBesides returns what the others declare, total less what is left, as a quantity.
func declaredBesides(total, left resource.Quantity) string {
	used := total.DeepCopy()
	used.Sub(left)
	return used.String()
}

// overheadNote names the pod overhead among what is taken from the engine, when there is one.
func overheadNote(spec *corev1.PodSpec, name corev1.ResourceName) string {
	if _, ok := spec.Overhead[name]; ok {
		return fmt.Sprintf(" and the overhead of runtime class %q", ptrString(spec.RuntimeClassName))
	}
	return ""
}

func ptrString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// containerNames lists the names of a pod's init containers and containers, comma-separated.
func containerNames(spec *corev1.PodSpec) string {
	names := make([]string, 0, len(spec.InitContainers)+len(spec.Containers))
	for _, list := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for _, c := range list {
			names = append(names, c.Name)
		}
	}
	return strings.Join(names, ",")
}

func resourceNameStrings(l corev1.ResourceList) []string {
	names := sortedResourceNames(l)
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = string(n)
	}
	return out
}
