package policy

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func mustQuantity(s string) resource.Quantity { return resource.MustParse(s) }

func resources(kv ...string) corev1.ResourceList {
	l := corev1.ResourceList{}
	for i := 0; i+1 < len(kv); i += 2 {
		l[corev1.ResourceName(kv[i])] = mustQuantity(kv[i+1])
	}
	return l
}

func enginePod(mutate func(meta *metav1.ObjectMeta, spec *corev1.PodSpec)) (*metav1.ObjectMeta, *corev1.PodSpec) {
	meta := &metav1.ObjectMeta{Name: "engine"}
	spec := &corev1.PodSpec{Containers: []corev1.Container{{Name: "dagger-engine", Image: "registry.dagger.io/engine:v0.19.7"}}}
	if mutate != nil {
		mutate(meta, spec)
	}
	return meta, spec
}

func TestValidateQuota(t *testing.T) {
	type want struct {
		field, value string
		detail       []string // fragments the message must contain
	}
	for _, tc := range []struct {
		name   string
		root   *field.Path
		mutate func(*metav1.ObjectMeta, *corev1.PodSpec)
		want   []want
	}{
		{name: "no resources: the mutator fills them, nothing to deny"},
		{name: "exact profile values in other notations", mutate: func(_ *metav1.ObjectMeta, s *corev1.PodSpec) {
			s.Containers[0].Resources.Requests = resources("cpu", "0.5", "memory", "1024Mi", "ephemeral-storage", "10Gi")
			s.Containers[0].Resources.Limits = resources("cpu", "2", "memory", "4Gi", "ephemeral-storage", "10240Mi")
		}},
		{name: "not an engine: never denied", mutate: func(m *metav1.ObjectMeta, s *corev1.PodSpec) {
			s.Containers[0].Image = "nginx"
			s.Containers[0].Resources.Limits = resources("cpu", "64")
			m.Annotations = map[string]string{AnnotationProfile: "turbo"}
		}},
		{name: "resources the profile does not govern are denied", mutate: func(_ *metav1.ObjectMeta, s *corev1.PodSpec) {
			s.Containers[0].Resources.Limits = resources("nvidia.com/gpu", "1")
		}, want: []want{{"spec.containers[0].resources.limits[nvidia.com/gpu]", "", []string{`quota profile "standard"`, "does not govern", "allowedResources"}}}},
		{name: "limit off profile, request copied from it by Kubernetes", mutate: func(_ *metav1.ObjectMeta, s *corev1.PodSpec) {
			s.Containers[0].Resources.Requests = resources("cpu", "8")
			s.Containers[0].Resources.Limits = resources("cpu", "8")
		}, want: []want{
			{"spec.containers[0].resources.requests[cpu]", "8", []string{`container "dagger-engine"`, "fixes it at 500m", "Kubernetes copied the missing request from the limit 8: fix the limit, or set resources.requests.cpu to 500m explicitly", `"standard", "high-performance"`}},
			{"spec.containers[0].resources.limits[cpu]", "8", []string{"cpu limit 8", `quota profile "standard"`, "fixes it at 2", "set resources.limits.cpu to 2"}},
		}},
		{name: "only the profile's limit set: the copied request needs setting", mutate: func(_ *metav1.ObjectMeta, s *corev1.PodSpec) {
			s.Containers[0].Resources.Requests = resources("memory", "4Gi")
			s.Containers[0].Resources.Limits = resources("memory", "4Gi")
		}, want: []want{{"spec.containers[0].resources.requests[memory]", "4Gi", []string{"Kubernetes copied the missing request from the limit: set resources.requests.memory to 1Gi explicitly"}}}},
		{name: "pod-level resources", mutate: func(_ *metav1.ObjectMeta, s *corev1.PodSpec) {
			s.Resources = &corev1.ResourceRequirements{Limits: resources("cpu", "1")}
		}, want: []want{{"spec.resources", "", []string{"remove the pod-level resources"}}}},
		{name: "engine as a native sidecar: the init container gets the profile", mutate: func(m *metav1.ObjectMeta, s *corev1.PodSpec) {
			always := corev1.ContainerRestartPolicyAlways
			s.Containers = containers("runner=ci/runner:1")
			s.Containers[0].Resources = helperResources("500m", "1Gi", "1Gi")
			s.InitContainers = []corev1.Container{{Name: "engine", Image: "registry.dagger.io/engine:v0.19.7", RestartPolicy: &always,
				Resources: corev1.ResourceRequirements{Limits: resources("cpu", "8")}}}
		}, want: []want{{"spec.initContainers[0].resources.limits[cpu]", "8", []string{`container "engine" sets cpu limit 8`, "leaves the engine 1500m of its 2", "set resources.limits.cpu to 1500m"}}}},
		{name: "memory-backed emptyDir is bounded by the memory limit", mutate: func(_ *metav1.ObjectMeta, s *corev1.PodSpec) {
			s.Volumes = []corev1.Volume{
				{Name: "ram", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: ptrQuantity("8Gi")}}},
				{Name: "ram-ok", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: ptrQuantity("4Gi")}}},
			}
		}, want: []want{{"spec.volumes[0].emptyDir.sizeLimit", "8Gi", []string{"4Gi of memory", `select the profile "high-performance"`}}}},
		{name: "high-performance values under the standard profile", mutate: func(_ *metav1.ObjectMeta, s *corev1.PodSpec) {
			s.Containers[0].Resources.Requests = resources("memory", "4Gi")
		}, want: []want{{"spec.containers[0].resources.requests[memory]", "4Gi", []string{"memory request 4Gi", "fixes it at 1Gi"}}}},
		{name: "high-performance profile accepts its own values", mutate: func(m *metav1.ObjectMeta, s *corev1.PodSpec) {
			m.Annotations = map[string]string{AnnotationProfile: "high-performance"}
			s.Containers[0].Resources.Requests = resources("cpu", "2", "memory", "4Gi")
			s.Volumes = []corev1.Volume{{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptrQuantity("50Gi")}}}}
		}},
		{name: "unknown profile lists the valid ones", mutate: func(m *metav1.ObjectMeta, s *corev1.PodSpec) {
			m.Annotations = map[string]string{AnnotationProfile: "turbo"}
			s.Containers[0].Resources.Limits = resources("cpu", "64")
		}, want: []want{{"metadata.annotations[iss.platform/profile]", "turbo", []string{"unknown quota profile", `"standard", "high-performance"`, `default profile "standard"`}}}},
		{name: "emptyDir above the profile's storage", mutate: func(_ *metav1.ObjectMeta, s *corev1.PodSpec) {
			s.Volumes = []corev1.Volume{
				{Name: "small", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptrQuantity("10Gi")}}},
				{Name: "unbounded", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "big", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptrQuantity("20Gi")}}},
				{Name: "huge", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptrQuantity("1Ti")}}},
			}
		}, want: []want{
			{"spec.volumes[2].emptyDir.sizeLimit", "20Gi", []string{`emptyDir volume "big"`, "at most 10Gi", `select the profile "high-performance"`}},
			{"spec.volumes[3].emptyDir.sizeLimit", "1Ti", []string{`emptyDir volume "huge"`, "at most 10Gi"}},
		}},
		{name: "ambiguous engine container", mutate: func(m *metav1.ObjectMeta, s *corev1.PodSpec) {
			m.Labels = map[string]string{LabelEngine: "dagger"}
			s.Containers = containers("a=busybox", "b=busybox")
		}, want: []want{{"spec.containers", "a,b", []string{"2 containers", `name the engine container "dagger-engine"`}}}},
		{name: "pod template paths start at the template", root: field.NewPath("spec", "template"), mutate: func(_ *metav1.ObjectMeta, s *corev1.PodSpec) {
			s.Containers[0].Resources.Limits = resources("memory", "16Gi")
		}, want: []want{{"spec.template.spec.containers[0].resources.limits[memory]", "16Gi", []string{"fixes it at 4Gi"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			meta, spec := enginePod(tc.mutate)
			_, _, errs := Default().ReviewEnginePod(meta, spec, tc.root)
			if len(errs) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(tc.want), errs.ToAggregate())
			}
			for i, w := range tc.want {
				e := errs[i]
				if e.Field != w.field || (e.Type == field.ErrorTypeInvalid && e.BadValue != w.value) {
					t.Errorf("error %d = %s %v %q, want field %s value %q", i, e.Type, e.Field, e.BadValue, w.field, w.value)
				}
				for _, frag := range w.detail {
					if !strings.Contains(e.Detail, frag) {
						t.Errorf("error %d detail %q lacks %q", i, e.Detail, frag)
					}
				}
			}
		})
	}
}

func ptrQuantity(s string) *resource.Quantity {
	q := mustQuantity(s)
	return &q
}
