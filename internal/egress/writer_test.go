package egress

import (
	"context"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/iss-platform/iss-webhook/policy"
)

func TestContains(t *testing.T) {
	for _, tc := range []struct {
		name       string
		have, want any
		ok         bool
	}{
		{"equal scalars", "a", "a", true},
		{"different scalars", "a", "b", false},
		{"server-defaulted keys are ignored", map[string]any{"a": int64(1), "defaulted": true}, map[string]any{"a": int64(1)}, true},
		{"missing key", map[string]any{}, map[string]any{"a": int64(1)}, false},
		{"lists compare element by element", []any{map[string]any{"x": "1", "y": "d"}}, []any{map[string]any{"x": "1"}}, true},
		{"lists of other lengths differ", []any{"a", "b"}, []any{"a"}, false},
		{"a map is not a list", map[string]any{}, []any{}, false},
	} {
		if got := contains(tc.have, tc.want); got != tc.ok {
			t.Errorf("%s: contains = %v", tc.name, got)
		}
	}
}

// cacheDouble is a test double of the informer cache: a map of objects by kind and key.
type cacheDouble map[string]*unstructured.Unstructured

func (c cacheDouble) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	u := obj.(*unstructured.Unstructured)
	found, ok := c[u.GroupVersionKind().Kind+"/"+key.String()]
	if !ok {
		return apierrors.NewNotFound(schema.GroupResource{Resource: u.GetKind()}, key.Name)
	}
	found.DeepCopyInto(u)
	return nil
}

func (c cacheDouble) List(context.Context, client.ObjectList, ...client.ListOption) error { return nil }

// BenchmarkEnsureCached measures what a review pays for its egress policies when they exist:
// rendering them and comparing them with the cached copies, with no API call.
func BenchmarkEnsureCached(b *testing.B) {
	pol := policy.Default()
	list, errs := pol.Network.ParseNetworkAccess(`[{"host":"api.github.com","ports":[443]},{"host":"*.pkg.dev"}]`)
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	eng := policy.Engine{Egress: list, EgressHash: list.Hash()}
	objs, err := pol.Network.EgressObjects("team-a-dev", eng, policy.BackendCilium)
	if err != nil {
		b.Fatal(err)
	}
	cached := cacheDouble{}
	for _, o := range objs {
		o.SetAnnotations(map[string]string{policy.AnnotationLastUsed: time.Now().UTC().Format(time.RFC3339)})
		cached[o.GetKind()+"/"+client.ObjectKeyFromObject(o).String()] = o
	}
	// A nil writer client: any API call would panic, so the benchmark proves there is none.
	w := NewWriter(nil, cached, Served{Cilium: true})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := w.Ensure(context.Background(), "team-a-dev", eng, pol); err != nil {
			b.Fatal(err)
		}
	}
}
