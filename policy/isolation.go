package policy

import (
	"fmt"
	"slices"
	"strings"

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
	errs = append(errs, validatePodSecurity(spec, specPath)...)
	for i := range spec.EphemeralContainers {
		c := &spec.EphemeralContainers[i]
		errs = append(errs, validateHelperPrivileges(c.Name, c.SecurityContext, specPath.Child("ephemeralContainers").Index(i))...)
	}
	return errs
}

// validateHelperPrivileges admits, for a container of an engine pod other than the engine, only
// the security settings of an ordinary container (those the Pod Security Standards' baseline
// admits): no privileges, no added capabilities, no privilege escalation, the default /proc, no
// unconfined seccomp or AppArmor profile, no SELinux type, user or role, no host process.
func validateHelperPrivileges(name string, sc *corev1.SecurityContext, path *field.Path) field.ErrorList {
	if sc == nil {
		return nil
	}
	var errs field.ErrorList
	scPath := path.Child("securityContext")
	notEngine := fmt.Sprintf("container %q is not the engine: ", name)
	if sc.Privileged != nil && *sc.Privileged {
		errs = append(errs, field.Forbidden(scPath.Child("privileged"), notEngine+"only the engine container of an engine pod may run privileged; remove it, or make this the engine container"))
	}
	if sc.Capabilities != nil && len(sc.Capabilities.Add) > 0 {
		errs = append(errs, field.Forbidden(scPath.Child("capabilities", "add"), fmt.Sprintf(notEngine+"only the engine container of an engine pod may add capabilities (%v); remove them", sc.Capabilities.Add)))
	}
	if sc.AllowPrivilegeEscalation != nil && *sc.AllowPrivilegeEscalation {
		errs = append(errs, field.Forbidden(scPath.Child("allowPrivilegeEscalation"), notEngine+"only the engine container of an engine pod may gain privileges; set allowPrivilegeEscalation to false, or remove it"))
	}
	if sc.ProcMount != nil && *sc.ProcMount != corev1.DefaultProcMount {
		errs = append(errs, field.Forbidden(scPath.Child("procMount"), notEngine+"only the engine container of an engine pod may see the host's /proc unmasked; remove procMount"))
	}
	if sc.WindowsOptions != nil && sc.WindowsOptions.HostProcess != nil && *sc.WindowsOptions.HostProcess {
		errs = append(errs, field.Forbidden(scPath.Child("windowsOptions", "hostProcess"), notEngine+"a host process runs outside the pod; remove hostProcess"))
	}
	errs = append(errs, validateConfinement(sc.SeccompProfile, sc.AppArmorProfile, sc.SELinuxOptions, scPath, notEngine)...)
	return errs
}

// validateConfinement denies the settings that lift a container's confinement: an unconfined
// seccomp or AppArmor profile, an SELinux type, user or role (spc_t runs as the host).
func validateConfinement(seccomp *corev1.SeccompProfile, apparmor *corev1.AppArmorProfile, selinux *corev1.SELinuxOptions, scPath *field.Path, who string) field.ErrorList {
	var errs field.ErrorList
	if seccomp != nil && seccomp.Type == corev1.SeccompProfileTypeUnconfined {
		errs = append(errs, field.Forbidden(scPath.Child("seccompProfile", "type"), who+"only the engine container of an engine pod may run without a seccomp profile; use RuntimeDefault or Localhost"))
	}
	if apparmor != nil && apparmor.Type == corev1.AppArmorProfileTypeUnconfined {
		errs = append(errs, field.Forbidden(scPath.Child("appArmorProfile", "type"), who+"only the engine container of an engine pod may run without an AppArmor profile; use RuntimeDefault or Localhost"))
	}
	if selinux != nil && (selinux.Type != "" || selinux.User != "" || selinux.Role != "") {
		errs = append(errs, field.Forbidden(scPath.Child("seLinuxOptions"), who+"an SELinux type, user or role can lift the container's confinement (spc_t runs as the host); set only the level, or remove seLinuxOptions"))
	}
	return errs
}

// safeSysctls are the sysctls that the kubelet admits by default because they are namespaced
// and cannot affect other pods or the node.
var safeSysctls = []string{
	"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range",
	"net.ipv4.ip_unprivileged_port_start", "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time",
	"net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem",
}

// validatePodSecurity checks the pod-level settings of an engine pod, which reach its helpers
// too: only the safe sysctls, no shared process namespace (a helper would reach the privileged
// engine's processes and, through /proc, its root file system and secrets), and no pod-wide
// unconfined profile or SELinux type.
func validatePodSecurity(spec *corev1.PodSpec, specPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if spec.ShareProcessNamespace != nil && *spec.ShareProcessNamespace {
		errs = append(errs, field.Forbidden(specPath.Child("shareProcessNamespace"), "engine pods may not share one process namespace: every container would reach the privileged engine's processes and, through /proc, its files and secrets (ISS-001 section 4); remove it"))
	}
	sc := spec.SecurityContext
	if sc == nil {
		return errs
	}
	scPath := specPath.Child("securityContext")
	for i, s := range sc.Sysctls {
		if !slices.Contains(safeSysctls, s.Name) {
			errs = append(errs, field.Forbidden(scPath.Child("sysctls").Index(i).Child("name"), fmt.Sprintf(
				"engine pods may set only the sysctls that cannot affect other pods or the node (%s); %s is not one: remove it", strings.Join(safeSysctls, ", "), s.Name)))
		}
	}
	errs = append(errs, validateConfinement(sc.SeccompProfile, sc.AppArmorProfile, sc.SELinuxOptions, scPath, "the pod's security context applies to every container: ")...)
	return errs
}

// baselineCapabilities are the capabilities a container that is not an engine may add: those the
// Pod Security Standards' baseline lets any container add, and SYS_PTRACE, which kubectl debug's
// general profile adds to trace the processes of its own pod. None of them lets it do what an
// engine does.
var baselineCapabilities = []corev1.Capability{
	"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
	"SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT", "SYS_PTRACE",
}

// ValidatePrivilegedNonEngine denies, in a pod or template that is not recognised as an engine,
// every container (init and ephemeral ones too) that runs privileged or adds a capability
// beyond the baseline. A Dagger engine needs those privileges: a renamed copy of its image, or
// one of another registry, would otherwise run as an engine outside the engine rules (no
// profile, no egress policy). A privileged workload that is an engine is labelled as one.
func ValidatePrivilegedNonEngine(spec *corev1.PodSpec, root *field.Path) field.ErrorList {
	specPath := root.Child("spec")
	fix := fmt.Sprintf("if this is a Dagger engine, label the pod %s: %s so that the engine rules apply; otherwise remove it", LabelEngine, EngineLabelValue)
	var errs field.ErrorList
	check := func(name string, sc *corev1.SecurityContext, path *field.Path) {
		if sc == nil {
			return
		}
		if sc.Privileged != nil && *sc.Privileged {
			errs = append(errs, field.Forbidden(path.Child("securityContext", "privileged"), fmt.Sprintf(
				"container %q runs privileged in a pod that is not a Dagger engine: in app namespaces only engines run privileged, so that a renamed engine image cannot run outside its quota profile and egress policy (ISS-001 section 4); %s", name, fix)))
		}
		if sc.Capabilities != nil {
			var extra []string
			for _, c := range sc.Capabilities.Add {
				if !slices.Contains(baselineCapabilities, corev1.Capability(strings.TrimPrefix(strings.ToUpper(string(c)), "CAP_"))) {
					extra = append(extra, string(c))
				}
			}
			if len(extra) > 0 {
				errs = append(errs, field.Forbidden(path.Child("securityContext", "capabilities", "add"), fmt.Sprintf(
					"container %q adds %s in a pod that is not a Dagger engine: in app namespaces other pods may add only %v (ISS-001 section 4); %s", name, strings.Join(extra, ", "), baselineCapabilities, fix)))
			}
		}
	}
	for i := range spec.InitContainers {
		check(spec.InitContainers[i].Name, spec.InitContainers[i].SecurityContext, specPath.Child("initContainers").Index(i))
	}
	for i := range spec.Containers {
		check(spec.Containers[i].Name, spec.Containers[i].SecurityContext, specPath.Child("containers").Index(i))
	}
	for i := range spec.EphemeralContainers {
		check(spec.EphemeralContainers[i].Name, spec.EphemeralContainers[i].SecurityContext, specPath.Child("ephemeralContainers").Index(i))
	}
	return errs
}
