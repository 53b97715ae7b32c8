package policy

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestEngineResourceNames: an engine pod may ask only for the resources its profile governs, or
// allows, in any of its containers.
func TestEngineResourceNames(t *testing.T) {
	q := resource.MustParse
	pod := func(engine, helper, init corev1.ResourceList) (*metav1.ObjectMeta, *corev1.PodSpec) {
		spec := &corev1.PodSpec{Containers: []corev1.Container{
			{Name: "dagger-engine", Image: "registry.dagger.io/engine:v0.19.7", Resources: corev1.ResourceRequirements{Limits: engine}},
			{Name: "helper", Image: "busybox", Resources: corev1.ResourceRequirements{Requests: helper}},
		}}
		if init != nil {
			spec.InitContainers = []corev1.Container{{Name: "init", Image: "busybox", Resources: corev1.ResourceRequirements{Limits: init}}}
		}
		return &metav1.ObjectMeta{Name: "e"}, spec
	}
	gpuAllowed := Default()
	gpuAllowed.Engines.Profiles[0].AllowedResources = []corev1.ResourceName{"nvidia.com/gpu"}
	for _, tc := range []struct {
		name                string
		pol                 *Policy
		engine, helper, ini corev1.ResourceList
		fields              []string
	}{
		{"only the profile's resources", Default(), corev1.ResourceList{corev1.ResourceCPU: q("2")}, nil, nil, nil},
		{"hugepages on the engine", Default(), corev1.ResourceList{"hugepages-1Gi": q("64Gi")}, nil, nil, []string{"spec.containers[0].resources.limits[hugepages-1Gi]"}},
		{"a GPU on a helper", Default(), nil, corev1.ResourceList{"nvidia.com/gpu": q("8")}, nil, []string{"spec.containers[1].resources.requests[nvidia.com/gpu]"}},
		{"an extended resource on an init container", Default(), nil, nil, corev1.ResourceList{"example.com/foo": q("1")}, []string{"spec.initContainers[0].resources.limits[example.com/foo]"}},
		{"a GPU the profile allows", gpuAllowed, corev1.ResourceList{"nvidia.com/gpu": q("1")}, nil, nil, nil},
		{"hugepages where only GPUs are allowed", gpuAllowed, corev1.ResourceList{"hugepages-2Mi": q("1Gi")}, nil, nil, []string{"spec.containers[0].resources.limits[hugepages-2Mi]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			meta, spec := pod(tc.engine, tc.helper, tc.ini)
			_, _, errs := tc.pol.ReviewEnginePod(meta, spec, nil)
			var got []string
			for _, e := range errs {
				if strings.Contains(e.Detail, "does not govern") {
					got = append(got, e.Field)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Errorf("got %v, want %v (all: %v)", got, tc.fields, errs)
			}
		})
	}
}
