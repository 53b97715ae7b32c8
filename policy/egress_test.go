package policy

import (
	"flag"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/iss-platform/iss-webhook/internal/golden"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current code")

// TestEgressObjectsGolden renders the generated objects of one allowlist for each backend and
// compares them with testdata/egress-<backend>.golden.yaml.
func TestEgressObjectsGolden(t *testing.T) {
	net := DefaultNetworkSection()
	list, errs := net.ParseNetworkAccess(`[{"host":"api.github.com","ports":[443]},{"host":"*.pkg.dev"},{"host":"ntp.example.org","ports":[123],"protocol":"UDP"},{"host":"git.example.org","ports":[22,443]}]`)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	eng := Engine{Egress: list, EgressHash: list.Hash()}
	for _, backend := range []FQDNBackend{BackendCilium, BackendClusterNetworkPolicy, BackendNone} {
		t.Run(string(backend), func(t *testing.T) {
			objs, err := net.EgressObjects("team-a-dev", eng, backend)
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			for _, o := range objs {
				y, err := yaml.Marshal(o.Object)
				if err != nil {
					t.Fatal(err)
				}
				got = append(append(got, "---\n"...), y...)
			}
			golden.Check(t, filepath.Join("testdata", "egress-"+string(backend)+".golden.yaml"), got, *update)
		})
	}
	t.Run("empty allowlist: DNS only, no FQDN object", func(t *testing.T) {
		empty := Engine{Egress: Allowlist{}, EgressHash: Allowlist{}.Hash()}
		for _, backend := range []FQDNBackend{BackendCilium, BackendClusterNetworkPolicy, BackendNone} {
			objs, err := net.EgressObjects("team-a-dev", empty, backend)
			if err != nil || len(objs) != 1 || objs[0].GetKind() != "NetworkPolicy" {
				t.Errorf("%s: %d objects, %v", backend, len(objs), err)
			}
		}
	})
	if _, err := net.EgressObjects("ns", eng, BackendAuto); err == nil {
		t.Error("an unresolved backend was accepted")
	}
}
