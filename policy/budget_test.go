package policy

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// helperResources declares the requests and limits of the profile's three resources, as every
// container of an engine pod but the engine must: the given limits, small requests, and
// ephemeral storage requested as it is limited, as the profiles do.
func helperResources(cpu, memory, storage string) corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: resources("cpu", "50m", "memory", "64Mi", "ephemeral-storage", storage),
		Limits:   resources("cpu", cpu, "memory", memory, "ephemeral-storage", storage),
	}
}

// TestEngineBudget tries every way of taking an engine pod past its profile with another
// container, and what the engine container is left.
func TestEngineBudget(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	engineImage := "registry.dagger.io/engine:v0.19.7"
	for _, tc := range []struct {
		name   string
		mutate func(*metav1.ObjectMeta, *corev1.PodSpec)
		// fields and message fragments of the errors, in order; none when admitted.
		want [][]string
		// share is the engine's cpu limit when admitted.
		share string
	}{
		{name: "the engine alone gets the whole profile", share: "2"},
		{name: "a helper with 64 CPUs", mutate: func(_ *metav1.ObjectMeta, s *corev1.PodSpec) {
			s.Containers = append(s.Containers, corev1.Container{Name: "helper", Image: "busybox", Resources: helperResources("64", "1Gi", "1Gi")})
		}, want: [][]string{{"spec.containers", "declare 64 of cpu", `leaves the engine container "dagger-engine" nothing`}}},
		{name: "a helper without limits", mutate: func(_ *metav1.ObjectMeta, s *corev1.PodSpec) {
			s.Containers = append(s.Containers, corev1.Container{Name: "helper", Image: "busybox",
				Resources: corev1.ResourceRequirements{Requests: resources("cpu", "100m")}})
		}, want: [][]string{{"spec.containers[1].resources", `container "helper" is not the engine`, "memory request", "cpu limit", "set resources.requests.ephemeral-storage, resources.requests.memory"}}},
		{name: "a bounded helper is taken from the engine's share", mutate: func(_ *metav1.ObjectMeta, s *corev1.PodSpec) {
			s.Containers = append(s.Containers, corev1.Container{Name: "helper", Image: "busybox", Resources: helperResources("500m", "1Gi", "1Gi")})
		}, share: "1500m"},
		{name: "the engine states the profile beside a helper", mutate: func(_ *metav1.ObjectMeta, s *corev1.PodSpec) {
			s.Containers[0].Resources.Limits = resources("cpu", "2")
			s.Containers = append(s.Containers, corev1.Container{Name: "helper", Image: "busybox", Resources: helperResources("500m", "1Gi", "1Gi")})
		}, want: [][]string{{"spec.containers[0].resources.limits[cpu]", "leaves the engine 1500m of its 2", "set resources.limits.cpu to 1500m"}}},
		{name: "a second engine container", mutate: func(_ *metav1.ObjectMeta, s *corev1.PodSpec) {
			s.Containers = append(s.Containers, corev1.Container{Name: "engine-2", Image: engineImage, Resources: helperResources("500m", "1Gi", "1Gi")})
		}, want: [][]string{{"spec.containers[1].image", "exactly one container", `"dagger-engine"`}}},
		{name: "a decoy named dagger-engine beside the real engine", mutate: func(_ *metav1.ObjectMeta, s *corev1.PodSpec) {
			s.Containers = []corev1.Container{
				{Name: "dagger-engine", Image: "busybox"},
				{Name: "real", Image: engineImage, Resources: helperResources("64", "1Gi", "1Gi")},
			}
		}, want: [][]string{{"spec.containers[0].image", `"dagger-engine" is named like the engine container`, `container "real" does`}}},
		{name: "the engine as a native sidecar beside another engine", mutate: func(_ *metav1.ObjectMeta, s *corev1.PodSpec) {
			s.InitContainers = []corev1.Container{{Name: "sidecar", Image: engineImage, RestartPolicy: &always, Resources: helperResources("1", "1Gi", "1Gi")}}
		}, want: [][]string{{"spec.initContainers[0].image", "exactly one container"}}},
		{name: "a native sidecar is long-running: taken from the share", mutate: func(_ *metav1.ObjectMeta, s *corev1.PodSpec) {
			s.InitContainers = []corev1.Container{{Name: "proxy", Image: "envoy", RestartPolicy: &always, Resources: helperResources("250m", "256Mi", "1Gi")}}
		}, share: "1750m"},
		{name: "an init container finishes first: not taken from the share", mutate: func(_ *metav1.ObjectMeta, s *corev1.PodSpec) {
			s.InitContainers = []corev1.Container{{Name: "setup", Image: "busybox", Resources: helperResources("1", "1Gi", "1Gi")}}
		}, share: "2"},
		{name: "an init container larger than the profile", mutate: func(_ *metav1.ObjectMeta, s *corev1.PodSpec) {
			s.InitContainers = []corev1.Container{{Name: "setup", Image: "busybox", Resources: helperResources("64", "1Gi", "1Gi")}}
			s.InitContainers[0].Resources.Requests[corev1.ResourceCPU] = mustQuantity("64")
		}, want: [][]string{
			{"spec.initContainers", "effective requests of cpu", "is 64", "at 500m"},
			{"spec.initContainers", "effective limits of cpu", "is 64", "at 2"},
		}},
		{name: "helpers whose requests leave the engine more than their limits", mutate: func(_ *metav1.ObjectMeta, s *corev1.PodSpec) {
			s.Containers = append(s.Containers, corev1.Container{Name: "helper", Image: "busybox", Resources: helperResources("100m", "64Mi", "1Gi")})
			s.Containers[1].Resources.Requests[corev1.ResourceEphemeralStorage] = mustQuantity("100Mi")
		}, want: [][]string{{"spec.containers[1].resources.requests[ephemeral-storage]", "more than its limit", "set the request to its limit 1Gi"}}},
		{name: "an init container after a native sidecar counts them together", mutate: func(_ *metav1.ObjectMeta, s *corev1.PodSpec) {
			s.InitContainers = []corev1.Container{
				{Name: "proxy", Image: "envoy", RestartPolicy: &always, Resources: helperResources("1500m", "256Mi", "1Gi")},
				{Name: "setup", Image: "busybox", Resources: helperResources("1", "256Mi", "1Gi")},
			}
		}, want: [][]string{{"spec.initContainers", "effective limits of cpu", "is 2500m", "at 2"}}},
		{name: "the runtime class overhead is taken from the share", mutate: func(_ *metav1.ObjectMeta, s *corev1.PodSpec) {
			rc := "kata"
			s.RuntimeClassName = &rc
			s.Overhead = resources("cpu", "250m", "memory", "160Mi")
		}, share: "1750m"},
		{name: "an overhead of a resource the profile does not govern", mutate: func(_ *metav1.ObjectMeta, s *corev1.PodSpec) {
			s.Overhead = resources("nvidia.com/gpu", "1")
		}, want: [][]string{{"spec.overhead[nvidia.com/gpu]", "does not govern"}}},
		{name: "dynamic resource claims", mutate: func(_ *metav1.ObjectMeta, s *corev1.PodSpec) {
			s.ResourceClaims = []corev1.PodResourceClaim{{Name: "gpu"}}
			s.Containers[0].Resources.Claims = []corev1.ResourceClaim{{Name: "gpu"}}
		}, want: [][]string{
			{"spec.containers[0].resources.claims", "dynamic resource"},
			{"spec.resourceClaims", "dynamic resource"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			meta, spec := enginePod(tc.mutate)
			eng, ok, errs := Default().ReviewEnginePod(meta, spec, nil)
			if !ok {
				t.Fatal("not an engine")
			}
			if len(errs) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(tc.want), errs.ToAggregate())
			}
			for i, w := range tc.want {
				if errs[i].Field != w[0] {
					t.Errorf("error %d at %s, want %s: %v", i, errs[i].Field, w[0], errs[i])
				}
				for _, frag := range w[1:] {
					if !strings.Contains(errs[i].Detail, frag) {
						t.Errorf("error %d %q lacks %q", i, errs[i].Detail, frag)
					}
				}
			}
			if tc.share != "" {
				if got := eng.Limits[corev1.ResourceCPU]; got.String() != tc.share {
					t.Errorf("engine's cpu limit share = %s, want %s", got.String(), tc.share)
				}
			}
		})
	}
}
