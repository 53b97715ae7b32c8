package configsync

import (
	"regexp"
	"strings"
	"testing"

	"github.com/iss-platform/iss-webhook/manifests"
	"github.com/iss-platform/iss-webhook/policy"
)

// TestManifestsCarryTheDefaultPattern: the install's image tests are exactly those the syncer
// writes for the built-in default, so a default install is never rewritten.
func TestManifestsCarryTheDefaultPattern(t *testing.T) {
	mutating, validating, err := manifests.ParseWebhookConfigurations()
	if err != nil {
		t.Fatal(err)
	}
	pattern := policy.EngineImagePattern(policy.Default().Engines.Images)
	tests := 0
	for _, w := range mutating.Webhooks {
		for _, c := range w.MatchConditions {
			tests += len(imageTest.FindAllString(c.Expression, -1))
			if _, changed := RewriteImageTests(c.Expression, pattern); changed {
				t.Errorf("%s/%s: the image test is not the default policy's %s", w.Name, c.Name, pattern)
			}
		}
	}
	for _, w := range validating.Webhooks {
		for _, c := range w.MatchConditions {
			tests += len(imageTest.FindAllString(c.Expression, -1))
			if _, changed := RewriteImageTests(c.Expression, pattern); changed {
				t.Errorf("%s/%s: the image test is not the default policy's %s", w.Name, c.Name, pattern)
			}
		}
	}
	if tests < 3 {
		t.Errorf("found %d image tests in the configurations; the pod and workload webhooks have them", tests)
	}
}

func TestRewriteImageTests(t *testing.T) {
	expr := `object.spec.containers.exists(c, has(c.image) && c.image.matches('(?i)^(registry\\.dagger\\.io(:443)?/engine)([:@]|$)')) || x.image.matches('other')`
	pattern := policy.EngineImagePattern([]string{"registry.dagger.io/engine", "registry.example.com/mirror/dagger-engine"})
	got, changed := RewriteImageTests(expr, pattern)
	if !changed || !strings.Contains(got, `c.image.matches('(?i)^(registry\\.dagger\\.io(:0*443)?/engine|registry\\.example\\.com(:0*443)?/mirror/dagger-engine)([:@]|$)')`) ||
		!strings.Contains(got, `x.image.matches('other')`) {
		t.Fatalf("rewritten: %s", got)
	}
	if again, changed := RewriteImageTests(got, pattern); changed || again != got {
		t.Error("a second rewrite changed the expression")
	}
}

func TestEngineImagePatternMatches(t *testing.T) {
	re := regexp.MustCompile(policy.EngineImagePattern([]string{"registry.dagger.io/engine", "registry.example.com/mirror/dagger-engine"}))
	for image, want := range map[string]bool{
		"registry.dagger.io/engine:v0.19.7":                      true,
		"REGISTRY.dagger.io:443/engine@sha256:0123":              true,
		"registry.dagger.io/engine":                              true,
		"registry.example.com/mirror/dagger-engine:v0.19.7":      true,
		"registry.dagger.io/engine-extra:v1":                     false,
		"evil.example.com/registry.dagger.io/engine:v1":          false,
		"registry.example.com/mirror/dagger-engine/sidecar:v1.0": false,
	} {
		if got := re.MatchString(image); got != want {
			t.Errorf("%s: match %v, want %v", image, got, want)
		}
	}
	if regexp.MustCompile(policy.EngineImagePattern(nil)).MatchString("registry.dagger.io/engine") {
		t.Error("no images matched an image")
	}
}
