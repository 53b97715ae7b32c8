package policy

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
)

// TestEngineIsolation: every way an engine pod could leave the reach of its NetworkPolicies or
// hand a helper the engine's privileges, on pods and templates, and what stays admitted.
func TestEngineIsolation(t *testing.T) {
	engine := func() *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "e"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "dagger-engine", Image: "registry.dagger.io/engine:v0.19.7",
				SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true), Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_ADMIN"}}},
			}}},
		}
	}
	privileged := &corev1.SecurityContext{Privileged: ptr.To(true)}
	capable := &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}}}
	for _, tc := range []struct {
		name   string
		change func(*corev1.Pod)
		fields []string
	}{
		{"the chart's engine: privileged, capabilities", func(*corev1.Pod) {}, nil},
		{"hostNetwork", func(p *corev1.Pod) { p.Spec.HostNetwork = true }, []string{"spec.hostNetwork"}},
		{"hostPID and hostIPC", func(p *corev1.Pod) { p.Spec.HostPID, p.Spec.HostIPC = true, true }, []string{"spec.hostPID", "spec.hostIPC"}},
		{"a privileged helper", func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "helper", Image: "busybox", SecurityContext: privileged})
		}, []string{"spec.containers[1].securityContext.privileged"}},
		{"a helper adding capabilities", func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "helper", Image: "busybox", SecurityContext: capable})
		}, []string{"spec.containers[1].securityContext.capabilities.add"}},
		{"a privileged init container", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "busybox", SecurityContext: privileged}}
		}, []string{"spec.initContainers[0].securityContext.privileged"}},
		{"a privileged ephemeral container", func(p *corev1.Pod) {
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox", SecurityContext: privileged}}}
		}, []string{"spec.ephemeralContainers[0].securityContext.privileged"}},
		{"a helper that escalates, unmasks /proc, runs unconfined or as spc_t", func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "helper", Image: "busybox", SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr.To(true), ProcMount: ptr.To(corev1.UnmaskedProcMount),
				SeccompProfile:  &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined},
				AppArmorProfile: &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeUnconfined},
				SELinuxOptions:  &corev1.SELinuxOptions{Type: "spc_t"},
				WindowsOptions:  &corev1.WindowsSecurityContextOptions{HostProcess: ptr.To(true)},
			}})
		}, []string{"spec.containers[1].securityContext.allowPrivilegeEscalation", "spec.containers[1].securityContext.procMount",
			"spec.containers[1].securityContext.windowsOptions.hostProcess", "spec.containers[1].securityContext.seccompProfile.type",
			"spec.containers[1].securityContext.appArmorProfile.type", "spec.containers[1].securityContext.seLinuxOptions"}},
		{"a confined helper with an SELinux level", func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "helper", Image: "busybox", SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr.To(false), RunAsNonRoot: ptr.To(true), ReadOnlyRootFilesystem: ptr.To(true),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}, SELinuxOptions: &corev1.SELinuxOptions{Level: "s0:c1,c2"},
				Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			}, Resources: helperResources("100m", "64Mi", "1Gi")})
		}, nil},
		{"a shared process namespace", func(p *corev1.Pod) { p.Spec.ShareProcessNamespace = ptr.To(true) }, []string{"spec.shareProcessNamespace"}},
		{"unsafe and safe sysctls, a pod-wide unconfined profile", func(p *corev1.Pod) {
			p.Spec.SecurityContext = &corev1.PodSecurityContext{
				Sysctls:        []corev1.Sysctl{{Name: "net.ipv4.tcp_syncookies", Value: "1"}, {Name: "kernel.core_pattern", Value: "|/evil"}},
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined},
			}
		}, []string{"spec.securityContext.sysctls[1].name", "spec.securityContext.seccompProfile.type"}},
		{"the engine as a native sidecar, privileged", func(p *corev1.Pod) {
			c := p.Spec.Containers[0]
			c.RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
			p.Spec.InitContainers = []corev1.Container{c}
			p.Spec.Containers = []corev1.Container{{Name: "helper", Image: "busybox", Resources: helperResources("100m", "64Mi", "1Gi")}}
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := engine()
			tc.change(pod)
			_, ok, errs := Default().ReviewEnginePod(&pod.ObjectMeta, &pod.Spec, nil)
			if !ok {
				t.Fatal("not an engine")
			}
			var got []string
			for _, e := range errs {
				if strings.HasPrefix(e.Field, "spec.host") || strings.Contains(e.Field, "securityContext") || e.Field == "spec.shareProcessNamespace" {
					got = append(got, e.Field)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Errorf("got %v, want %v (all: %v)", got, tc.fields, errs)
			}
		})
	}
}

// TestEphemeralDebugContainersOfEngines: kubectl debug into an engine may not bring privileges.
func TestEphemeralDebugContainersOfEngines(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "dagger-engine", Image: "registry.dagger.io/engine:v0.19.7",
			Resources: corev1.ResourceRequirements{Limits: resources("cpu", "2", "memory", "4Gi", "ephemeral-storage", "10Gi")}}},
		EphemeralContainers: []corev1.EphemeralContainer{
			{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "plain", Image: "busybox"}},
			{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "root", Image: "busybox", SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}},
		},
	}}
	_, engine := Default().ValidateEphemeralContainers(&pod.ObjectMeta, &pod.Spec)
	if len(engine) != 1 || engine[0].Field != "spec.ephemeralContainers[1].securityContext.privileged" {
		t.Errorf("got %v", engine)
	}
}

// TestEphemeralContainersNeedABoundedPod admits debug containers into an engine pod only when
// the pod's cgroup bounds them: every container has its limits.
func TestEphemeralContainersNeedABoundedPod(t *testing.T) {
	limits := resources("cpu", "2", "memory", "4Gi", "ephemeral-storage", "10Gi")
	for _, tc := range []struct {
		name    string
		helper  corev1.ResourceList
		denied  bool
		mention string
	}{
		{name: "every container has limits", helper: resources("cpu", "100m", "memory", "64Mi", "ephemeral-storage", "1Gi")},
		{name: "a helper without a memory limit", helper: resources("cpu", "100m", "ephemeral-storage", "1Gi"), denied: true, mention: "helper (memory)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{Spec: corev1.PodSpec{
				Containers: []corev1.Container{
					{Name: "dagger-engine", Image: "registry.dagger.io/engine:v0.19.7", Resources: corev1.ResourceRequirements{Limits: limits}},
					{Name: "helper", Image: "busybox", Resources: corev1.ResourceRequirements{Limits: tc.helper}},
				},
				EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox"}}},
			}}
			_, engine := Default().ValidateEphemeralContainers(&pod.ObjectMeta, &pod.Spec)
			if got := len(engine) > 0; got != tc.denied {
				t.Fatalf("denied = %v, want %v: %v", got, tc.denied, engine)
			}
			if tc.denied && !strings.Contains(engine[0].Detail, tc.mention) {
				t.Errorf("%q lacks %q", engine[0].Detail, tc.mention)
			}
		})
	}
}

// TestPrivilegedNonEngine: in app namespaces a pod that is not recognised as an engine may not
// run privileged or add capabilities beyond the baseline, in any container, so that a renamed
// engine image does not escape the engine rules.
func TestPrivilegedNonEngine(t *testing.T) {
	for _, tc := range []struct {
		name   string
		spec   corev1.PodSpec
		fields []string
	}{
		{"a plain pod", corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}}, nil},
		{"baseline capabilities, in any spelling", corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx",
			SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_BIND_SERVICE", "cap_chown"}}}}}}, nil},
		{"a renamed engine image, privileged", corev1.PodSpec{Containers: []corev1.Container{{Name: "builder", Image: "evil.example/buildkit",
			SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}}}, []string{"spec.containers[0].securityContext.privileged"}},
		{"SYS_ADMIN in an init container", corev1.PodSpec{InitContainers: []corev1.Container{{Name: "init", Image: "busybox",
			SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"CAP_SYS_ADMIN", "CHOWN"}}}}}},
			[]string{"spec.initContainers[0].securityContext.capabilities.add"}},
		{"a privileged ephemeral container", corev1.PodSpec{EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
			Name: "debug", Image: "busybox", SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}}}},
			[]string{"spec.ephemeralContainers[0].securityContext.privileged"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := ValidatePrivilegedNonEngine(&tc.spec, nil)
			var got []string
			for _, e := range errs {
				got = append(got, e.Field)
				if !strings.Contains(e.Detail, "iss.platform/engine: dagger") {
					t.Errorf("%s: %q does not say how to make it an engine", e.Field, e.Detail)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Errorf("denied %v, want %v", got, tc.fields)
			}
		})
	}
}

// appNamespaces is a NamespaceLookup in which only "team-a-dev" belongs to an app.
type appNamespaces struct{}

func (appNamespaces) Namespace(_ context.Context, name string) (Namespace, error) {
	if name == "team-a-dev" {
		return Namespace{Name: name, AppID: "team-a", Environment: "dev"}, nil
	}
	return Namespace{Name: name}, nil
}

func (appNamespaces) SelectNamespaces(ctx context.Context, selector labels.Selector) ([]Namespace, error) {
	return NamespaceLabels{"team-a-dev": {LabelAppID: "team-a", LabelEnvironment: "dev"}}.SelectNamespaces(ctx, selector)
}

// TestPrivilegedNonEngineOnlyInAppNamespaces denies privileged pods that are not engines in the
// apps' namespaces, where engines run, and leaves the platform's agents elsewhere (a CNI's
// privileged DaemonSet) to Pod Security admission, on create, templates and debug containers.
func TestPrivilegedNonEngineOnlyInAppNamespaces(t *testing.T) {
	privileged := corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "calico/node",
		SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}}}
	for _, tc := range []struct {
		namespace string
		denied    bool
	}{{"team-a-dev", true}, {"calico-system", false}} {
		req := &Request{Operation: Create, Namespace: tc.namespace, User: "alice", Facts: Facts{Namespaces: appNamespaces{}}}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: tc.namespace}, Spec: *privileged.DeepCopy()}
		if out := AdmitPod(context.Background(), Default(), req, pod, nil); out.Denies(Default()) != tc.denied {
			t.Errorf("pod in %s: denied = %v, want %v", tc.namespace, !tc.denied, tc.denied)
		}
		ds := &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: *privileged.DeepCopy()}}}
		if out := AdmitWorkload(context.Background(), Default(), req, ds, nil); out.Denies(Default()) != tc.denied {
			t.Errorf("DaemonSet in %s: denied = %v, want %v", tc.namespace, !tc.denied, tc.denied)
		}
		debug := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: tc.namespace}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "web", Image: "nginx"}},
			EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox",
				SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}}}}}
		upd := &Request{Operation: Update, SubResource: "ephemeralcontainers", Namespace: tc.namespace, User: "alice", Facts: Facts{Namespaces: appNamespaces{}}}
		if out := AdmitPod(context.Background(), Default(), upd, debug, debug.DeepCopy()); out.Denies(Default()) != tc.denied {
			t.Errorf("debug container in %s: denied = %v, want %v", tc.namespace, !tc.denied, tc.denied)
		}
	}
}
