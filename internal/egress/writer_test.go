package egress

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

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

// TestUpToDateFollowsPrivateRanges checks that the writer rewrites the FQDN objects when the
// policy's private ranges change, and those written before the objects carried any: the
// collector's pass over running engines then brings them in line with the policy.
func TestUpToDateFollowsPrivateRanges(t *testing.T) {
	pol := policy.Default()
	list, errs := pol.Network.ParseNetworkAccess(`[{"host":"api.github.com"}]`)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	eng := policy.Engine{Egress: list, EgressHash: list.Hash()}
	narrower := pol.Network
	narrower.PrivateRanges = []netip.Prefix{netip.MustParsePrefix("169.254.0.0/16")}
	for _, backend := range []policy.FQDNBackend{policy.BackendCilium, policy.BackendClusterNetworkPolicy} {
		t.Run(string(backend), func(t *testing.T) {
			have, err := pol.Network.EgressObjects("team-a-dev", eng, backend)
			if err != nil {
				t.Fatal(err)
			}
			want, err := narrower.EgressObjects("team-a-dev", eng, backend)
			if err != nil {
				t.Fatal(err)
			}
			fqdn := len(have) - 1
			if !upToDate(have[fqdn], have[fqdn]) {
				t.Fatal("an object is not up to date with itself")
			}
			if upToDate(want[fqdn], have[fqdn]) {
				t.Errorf("%s with the default ranges counts as up to date with narrower ones", have[fqdn].GetKind())
			}
			if !upToDate(want[0], have[0]) {
				t.Error("the base NetworkPolicy does not carry the ranges, yet it changed")
			}
			old := have[fqdn].DeepCopy()
			unstructured.RemoveNestedField(old.Object, "spec", "egressDeny")
			if rules, ok, _ := unstructured.NestedSlice(old.Object, "spec", "egress"); ok && backend == policy.BackendClusterNetworkPolicy {
				_ = unstructured.SetNestedSlice(old.Object, append(rules[:1:1], rules[2:]...), "spec", "egress")
			}
			if upToDate(have[fqdn], old) {
				t.Errorf("%s written without the deny of the private ranges counts as up to date", old.GetKind())
			}
		})
	}
}

// TestEnsureRetriesTransientFailures checks that a write of a generated object that fails
// because the API server could not reach a webhook (a replica killed mid-review) is tried again
// within the review, and that a denial is not.
func TestEnsureRetriesTransientFailures(t *testing.T) {
	gone := apierrors.NewInternalError(errors.New(`failed calling webhook "network-policies.validate.iss.platform": EOF`))
	denied := apierrors.NewForbidden(schema.GroupResource{Resource: "networkpolicies"}, "x", errors.New("denied"))
	for _, tc := range []struct {
		name      string
		failures  []error
		wantCalls int
		wantErr   bool
	}{
		{"written at once", nil, 1, false},
		{"a webhook that did not answer twice", []error{gone, gone}, 3, false},
		{"never answering: gives up after four tries", []error{gone, gone, gone, gone, gone}, 4, true},
		{"a denial is final", []error{denied}, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			c := fake.NewClientBuilder().WithInterceptorFuncs(interceptor.Funcs{
				Apply: func(context.Context, client.WithWatch, runtime.ApplyConfiguration, ...client.ApplyOption) error {
					calls++
					if calls <= len(tc.failures) {
						return tc.failures[calls-1]
					}
					return nil
				},
			}).Build()
			w := NewWriter(c, cacheDouble{}, Served{})
			_, err := w.Ensure(context.Background(), "team-a-dev", policy.Engine{}, policy.Default())
			if (err != nil) != tc.wantErr {
				t.Errorf("error %v, want error %v", err, tc.wantErr)
			}
			if calls != tc.wantCalls {
				t.Errorf("%d applies, want %d", calls, tc.wantCalls)
			}
		})
	}
}
