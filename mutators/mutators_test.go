package mutators

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/iss-platform/iss-webhook/internal/golden"
	"github.com/iss-platform/iss-webhook/policy"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current mutators")

// mutate runs the engine pod mutators as the webhook does: only on pods the policy recognises.
func mutate(t *testing.T, pod *corev1.Pod) []string {
	t.Helper()
	// The webhook denies pods with violations instead of mutating them; the mutators are run on
	// them anyway here, to show that they leave alone what they cannot decide.
	eng, ok, _ := policy.Default().ReviewEnginePod(&pod.ObjectMeta, &pod.Spec, nil)
	if !ok {
		return nil
	}
	return MutateEnginePod(pod, eng)
}

func readPod(t *testing.T, path string) *corev1.Pod {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{}
	if err := yaml.UnmarshalStrict(data, pod); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return pod
}

func marshal(t *testing.T, pod *corev1.Pod) []byte {
	t.Helper()
	data, err := yaml.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestGolden applies the mutators to each testdata/*.in.yaml, compares the result with its
// .golden.yaml, and applies them again to the golden output to prove they are idempotent.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "*.in.yaml"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range inputs {
		goldenFile := strings.TrimSuffix(in, ".in.yaml") + ".golden.yaml"
		t.Run(filepath.Base(goldenFile), func(t *testing.T) {
			pod := readPod(t, in)
			mutate(t, pod)
			got := marshal(t, pod)
			golden.Check(t, goldenFile, got, *update)

			again := readPod(t, goldenFile)
			if changed := mutate(t, again); len(changed) > 0 {
				t.Errorf("mutators %v changed their own output: not idempotent", changed)
			}
			if string(marshal(t, again)) != string(got) {
				t.Errorf("applying the mutators to %s changed it", goldenFile)
			}
		})
	}
}

func TestProfileResourcesSkipsWhatItCannotDecide(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a"}, {Name: "b"}}}}
	std := policy.Default().Engines.Profile("standard")
	for _, eng := range []policy.Engine{
		{Container: -1, Profile: std},
		{Container: 5, Profile: std},
		{Container: 0, Profile: nil},
	} {
		if ProfileResources(pod, eng) {
			t.Errorf("ProfileResources changed the pod for %+v", eng)
		}
	}
	if pod.Spec.Containers[0].Resources.Requests != nil || pod.Spec.Containers[1].Resources.Limits != nil {
		t.Error("pod was changed")
	}
}

func TestProfileResourcesDoesNotAliasThePolicy(t *testing.T) {
	p := policy.Default()
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "dagger-engine"}}}}
	eng := policy.Engine{Container: 0, Profile: p.Engines.Profile("standard")}
	eng.Requests, eng.Limits = policy.EngineShare(&eng, &pod.Spec)
	ProfileResources(pod, eng)
	pod.Spec.Containers[0].Resources.Limits[corev1.ResourceCPU] = policy.Default().Engines.Profile("high-performance").Limits[corev1.ResourceCPU]
	if got := eng.Limits[corev1.ResourceCPU]; got.String() != "2" {
		t.Errorf("changing the pod changed the engine's share: cpu limit now %s", got.String())
	}
	if got := eng.Profile.Limits[corev1.ResourceCPU]; got.String() != "2" {
		t.Errorf("changing the pod changed the policy: cpu limit now %s", got.String())
	}
}
