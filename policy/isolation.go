package policy

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validateIsolation keeps an engine pod where its rules can see it. An engine in the host's
// network, PID or IPC namespace is out of reach of the NetworkPolicies that restrict its egress
// (ISS-001 section 4) and of the pod's isolation. Of its containers only the engine itself may
// run privileged or add capabilities, as the official chart's engine needs to: a helper with
// them could do all the engine is kept from doing. root is the path of the object that holds
// metadata and spec (nil for a Pod).
func validateIsolation(eng Engine, spec *corev1.PodSpec, root *field.Path) field.ErrorList {
	specPath := root.Child("spec")
	var errs field.ErrorList
	for _, ns := range []struct {
		field string
		on    bool
		why   string
	}{
		{"hostNetwork", spec.HostNetwork, "in the host's network no NetworkPolicy restricts the engine's egress"},
		{"hostPID", spec.HostPID, "in the host's PID namespace the engine sees and signals every process of the node"},
		{"hostIPC", spec.HostIPC, "in the host's IPC namespace the engine shares memory with every process of the node"},
	} {
		if ns.on {
			errs = append(errs, field.Forbidden(specPath.Child(ns.field), fmt.Sprintf("engine pods may not set %s: %s (ISS-001 section 4): remove it", ns.field, ns.why)))
		}
	}
	check := func(containers []corev1.Container, path *field.Path, init bool) {
		for i := range containers {
			if init == eng.InitContainer && i == eng.Container {
				continue
			}
			errs = append(errs, validateHelperPrivileges(containers[i].Name, containers[i].SecurityContext, path.Index(i))...)
		}
	}
	check(spec.InitContainers, specPath.Child("initContainers"), true)
	check(spec.Containers, specPath.Child("containers"), false)
	for i := range spec.EphemeralContainers {
		c := &spec.EphemeralContainers[i]
		errs = append(errs, validateHelperPrivileges(c.Name, c.SecurityContext, specPath.Child("ephemeralContainers").Index(i))...)
	}
	return errs
}

// validateHelperPrivileges denies a container of an engine pod other than the engine the
// privileges only the engine may have.
func validateHelperPrivileges(name string, sc *corev1.SecurityContext, path *field.Path) field.ErrorList {
	if sc == nil {
		return nil
	}
	var errs field.ErrorList
	scPath := path.Child("securityContext")
	if sc.Privileged != nil && *sc.Privileged {
		errs = append(errs, field.Forbidden(scPath.Child("privileged"), fmt.Sprintf("container %q is not the engine: only the engine container of an engine pod may run privileged; remove it, or make this the engine container", name)))
	}
	if sc.Capabilities != nil && len(sc.Capabilities.Add) > 0 {
		errs = append(errs, field.Forbidden(scPath.Child("capabilities", "add"), fmt.Sprintf("container %q is not the engine: only the engine container of an engine pod may add capabilities (%v); remove them", name, sc.Capabilities.Add)))
	}
	return errs
}
