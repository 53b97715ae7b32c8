package policy

import (
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestImageRepository(t *testing.T) {
	for _, tc := range []struct{ image, want string }{
		{"registry.dagger.io/engine", "registry.dagger.io/engine"},
		{"registry.dagger.io/engine:v0.19.7", "registry.dagger.io/engine"},
		{"registry.dagger.io/engine:v0.19.7@sha256:0123abcd", "registry.dagger.io/engine"},
		{"registry.dagger.io/engine@sha256:0123abcd", "registry.dagger.io/engine"},
		{"mirror.example:5000/dagger/engine:v1", "mirror.example:5000/dagger/engine"},
		{"mirror.example:5000/dagger/engine", "mirror.example:5000/dagger/engine"},
		{"REGISTRY.Dagger.IO/engine:v1", "registry.dagger.io/engine"},
		{"registry.dagger.io:443/engine:v1", "registry.dagger.io/engine"},
		{"localhost:5000/engine", "localhost:5000/engine"},
		{"registry.dagger.io:0443/engine", "registry.dagger.io/engine"},
		{"registry.dagger.io:8443/engine", "registry.dagger.io:8443/engine"},
		{"ghcr.io/dagger/engine:v0.19.7", "ghcr.io/dagger/engine"},
		{"nginx", "docker.io/library/nginx"},
		{"library/nginx:1.29", "docker.io/library/nginx"},
		{"index.docker.io/library/nginx", "docker.io/library/nginx"},
		{"docker.io/dagger/engine", "docker.io/dagger/engine"},
		// The grammar rejects upper case in a path: no runtime pulls it; read as well as it can be.
		{"Library/Nginx", "library/nginx"},
		{"", ""},
	} {
		if got := ImageRepository(tc.image); got != tc.want {
			t.Errorf("ImageRepository(%q) = %q, want %q", tc.image, got, tc.want)
		}
	}
}

// containers builds containers from "name=image" specs.
func containers(specs ...string) []corev1.Container {
	cs := make([]corev1.Container, 0, len(specs))
	for _, s := range specs {
		name, image, _ := strings.Cut(s, "=")
		cs = append(cs, corev1.Container{Name: name, Image: image})
	}
	return cs
}

func TestMatch(t *testing.T) {
	const engineImage = "registry.dagger.io/engine:v0.19.7"
	for _, tc := range []struct {
		name        string
		labels      map[string]string
		annotations map[string]string
		containers  []corev1.Container
		wantEngine  bool
		wantIndex   int
		wantProfile string
		wantKnown   bool
	}{
		{name: "chart pod recognised by image", containers: containers("dagger-engine=" + engineImage),
			wantEngine: true, wantIndex: 0, wantProfile: "standard", wantKnown: true},
		{name: "image with digest", containers: containers("engine=registry.dagger.io/engine@sha256:abc"),
			wantEngine: true, wantIndex: 0, wantProfile: "standard", wantKnown: true},
		{name: "label alone, only container", labels: map[string]string{LabelEngine: "dagger"},
			containers: containers("main=mirror.example/engine:v1"), wantEngine: true, wantIndex: 0, wantProfile: "standard", wantKnown: true},
		{name: "label with another value is not an engine", labels: map[string]string{LabelEngine: "buildkit"},
			containers: containers("main=moby/buildkit")},
		{name: "image with another spelling of the registry", containers: containers("engine=Registry.Dagger.io:443/engine:v0.19.7"),
			wantEngine: true, wantIndex: 0, wantProfile: "standard", wantKnown: true},
		{name: "container name alone does not make an engine", containers: containers("dagger-engine=busybox")},
		{name: "image that only looks alike", containers: containers("x=registry.dagger.io/engine-proxy:v1")},
		{name: "plain pod", containers: containers("nginx=nginx:1.29")},
		{name: "named container wins over image order",
			containers: containers("sidecar="+engineImage, "dagger-engine=mirror.example/engine:v1"),
			wantEngine: true, wantIndex: 1, wantProfile: "standard", wantKnown: true},
		{name: "first engine image when none is named",
			containers: containers("proxy=envoy:1", "a="+engineImage, "b="+engineImage),
			wantEngine: true, wantIndex: 1, wantProfile: "standard", wantKnown: true},
		{name: "labelled pod with several containers and no engine among them is ambiguous",
			labels: map[string]string{LabelEngine: "dagger"}, containers: containers("a=busybox", "b=busybox"),
			wantEngine: true, wantIndex: -1, wantProfile: "standard", wantKnown: true},
		{name: "profile annotation", annotations: map[string]string{AnnotationProfile: "high-performance"},
			containers: containers("dagger-engine=" + engineImage), wantEngine: true, wantIndex: 0, wantProfile: "high-performance", wantKnown: true},
		{name: "unknown profile", annotations: map[string]string{AnnotationProfile: "turbo"},
			containers: containers("dagger-engine=" + engineImage), wantEngine: true, wantIndex: 0, wantProfile: "turbo"},
		{name: "empty profile annotation is unknown, not the default", annotations: map[string]string{AnnotationProfile: ""},
			containers: containers("dagger-engine=" + engineImage), wantEngine: true, wantIndex: 0, wantProfile: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Default()
			meta := &metav1.ObjectMeta{Labels: tc.labels, Annotations: tc.annotations}
			eng, ok := p.Engines.Match(meta, &corev1.PodSpec{Containers: tc.containers})
			if ok != tc.wantEngine {
				t.Fatalf("engine = %v, want %v", ok, tc.wantEngine)
			}
			if !ok {
				return
			}
			if eng.Container != tc.wantIndex || eng.ProfileName != tc.wantProfile || (eng.Profile != nil) != tc.wantKnown {
				t.Errorf("got container %d, profile %q (known %v); want %d, %q (known %v)",
					eng.Container, eng.ProfileName, eng.Profile != nil, tc.wantIndex, tc.wantProfile, tc.wantKnown)
			}
		})
	}
}

func TestDefaultMatchesISS001(t *testing.T) {
	// The profile table of ISS-001 section 4, as design.md section 3 writes it.
	want := map[string][5]string{
		"standard":         {"500m", "2000m", "1Gi", "4Gi", "10Gi"},
		"high-performance": {"2000m", "4000m", "4Gi", "8Gi", "50Gi"},
	}
	p := Default()
	if got := p.Engines.ProfileNames(); len(got) != 2 || got[0] != "standard" || got[1] != "high-performance" {
		t.Fatalf("profiles = %v", got)
	}
	if p.Engines.DefaultProfile != "standard" {
		t.Errorf("default profile = %q", p.Engines.DefaultProfile)
	}
	for name, w := range want {
		pr := p.Engines.Profile(name)
		checks := []struct {
			list corev1.ResourceList
			res  corev1.ResourceName
			want string
		}{
			{pr.Requests, corev1.ResourceCPU, w[0]}, {pr.Limits, corev1.ResourceCPU, w[1]},
			{pr.Requests, corev1.ResourceMemory, w[2]}, {pr.Limits, corev1.ResourceMemory, w[3]},
			{pr.Requests, corev1.ResourceEphemeralStorage, w[4]}, {pr.Limits, corev1.ResourceEphemeralStorage, w[4]},
		}
		for _, c := range checks {
			q := c.list[c.res]
			if q.Cmp(mustQuantity(c.want)) != 0 {
				t.Errorf("%s %s = %s, want %s", name, c.res, q.String(), c.want)
			}
		}
	}
	// Default returns a fresh value each time: changing one never changes another.
	a, b := Default(), Default()
	a.Engines.Profiles[0].Name = "changed"
	if b.Engines.Profiles[0].Name != "standard" {
		t.Error("Default shares state between calls")
	}
}

func TestHolder(t *testing.T) {
	first, second := Default(), Default()
	h := NewHolder(first)
	if h.Current() != first {
		t.Fatal("Current is not the policy given to NewHolder")
	}
	h.Set(second)
	if h.Current() != second {
		t.Fatal("Current is not the policy given to Set")
	}
}

// TestEngineImagePatternIsASuperset: every spelling that ImageRepository reads as an engine
// repository matches the matchConditions' pattern, so the API server sends every pod that could be
// an engine; the Go test then decides.
func TestEngineImagePatternIsASuperset(t *testing.T) {
	repos := []string{"registry.dagger.io/engine", "ghcr.io/dagger/engine", "busybox", "docker.io/team/engine"}
	re := regexp.MustCompile(EngineImagePattern(repos))
	p := &EnginePolicy{Images: repos}
	for _, image := range []string{
		"registry.dagger.io/engine", "REGISTRY.DAGGER.IO/engine:v1", "registry.dagger.io:443/engine", "registry.dagger.io:0443/engine@sha256:" + strings.Repeat("a", 64),
		"ghcr.io/dagger/engine:v0.19.7", "GHCR.io:00443/dagger/engine",
		"busybox", "busybox:1.37", "library/busybox", "docker.io/library/busybox", "index.docker.io/library/busybox:1",
		"team/engine", "docker.io/team/engine:v1",
	} {
		if !p.IsEngineImage(image) {
			t.Errorf("%s is not read as an engine image", image)
		}
		if !re.MatchString(image) {
			t.Errorf("%s is an engine image the pattern does not match", image)
		}
	}
	for _, image := range []string{"registry.dagger.io:8443/engine", "registry.dagger.io/engine-other", "evil.io/registry.dagger.io/engine", "nginx"} {
		if p.IsEngineImage(image) {
			t.Errorf("%s is read as an engine image", image)
		}
	}
}

// FuzzEngineImagePattern: whatever the reference, if the Go test reads it as an engine image the
// matchConditions' pattern matches it.
func FuzzEngineImagePattern(f *testing.F) {
	for _, seed := range []string{"registry.dagger.io/engine", "REGISTRY.dagger.io:0443/engine:v1", "ghcr.io/dagger/engine@sha256:00", "busybox", "a/b:c", ":443/", "registry.dagger.io./engine"} {
		f.Add(seed)
	}
	repos := Default().Engines.Images
	re := regexp.MustCompile(EngineImagePattern(repos))
	p := &EnginePolicy{Images: repos}
	f.Fuzz(func(t *testing.T, image string) {
		if p.IsEngineImage(image) && !re.MatchString(image) {
			t.Errorf("%q is an engine image the pattern %s does not match", image, re)
		}
	})
}
