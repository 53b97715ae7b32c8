package egress

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/iss-platform/iss-webhook/policy"
)

// FieldOwner is the field manager of the webhook's server-side applies.
const FieldOwner = "iss-webhook"

// Writer writes the generated egress objects of engines by server-side apply.
type Writer struct {
	writer client.Client
	cache  client.Reader
	served Served
	now    func() time.Time
}

// NewWriter returns a writer that applies with c and first reads from cache, an informer cache
// that holds the generated objects (labelled app.kubernetes.io/managed-by: iss-webhook) of the
// served kinds. The policy of each call chooses the FQDN backend among those served.
func NewWriter(c client.Client, cache client.Reader, served Served) *Writer {
	return &Writer{writer: c, cache: cache, served: served, now: time.Now}
}

// Served returns the FQDN policy kinds the cluster serves.
func (w *Writer) Served() Served { return w.served }

// Ensure makes the engine's egress objects exist in the namespace as the policy wants them, and
// marks them used now. Objects the cache already holds as wanted, marked used within half the
// grace period, are not written again, so that an allowlist costs an API call only for its
// first engine and then once per half grace period. It implements webhook.EgressWriter.
func (w *Writer) Ensure(ctx context.Context, namespace string, eng policy.Engine, pol *policy.Policy) ([]string, error) {
	backend, err := w.served.Resolve(pol.Network.FQDNBackend)
	if err != nil {
		return nil, err
	}
	objs, err := pol.Network.EgressObjects(namespace, eng, backend)
	if err != nil {
		return nil, err
	}
	now := w.now()
	fresh := now.Add(-pol.Network.GCGracePeriod / 2)
	for _, obj := range objs {
		annotations := obj.GetAnnotations()
		if annotations == nil {
			annotations = map[string]string{}
		}
		annotations[policy.AnnotationLastUsed] = now.UTC().Format(time.RFC3339)
		obj.SetAnnotations(annotations)
		if err := w.ensure(ctx, obj, fresh); err != nil {
			return nil, fmt.Errorf("%s %s: %w", obj.GetKind(), client.ObjectKeyFromObject(obj), err)
		}
	}
	if backend == policy.BackendNone && len(eng.Egress) > 0 {
		hosts := make([]string, len(eng.Egress))
		for i, r := range eng.Egress {
			hosts[i] = r.Host
		}
		return []string{fmt.Sprintf("iss-webhook: this cluster has no FQDN policy backend (fqdnBackend none): %s will be unreachable from this engine; only DNS is allowed",
			strings.Join(hosts, ", "))}, nil
	}
	return nil, nil
}

func (w *Writer) ensure(ctx context.Context, want *unstructured.Unstructured, fresh time.Time) error {
	have := &unstructured.Unstructured{}
	have.SetGroupVersionKind(want.GroupVersionKind())
	err := w.cache.Get(ctx, client.ObjectKeyFromObject(want), have)
	switch {
	case err == nil && upToDate(want, have) && !LastUsed(have).Before(fresh):
		return nil
	case err != nil && !apierrors.IsNotFound(err):
		// The cache cannot answer (not synced, kind not served): apply anyway; the API
		// server is the authority.
		logf.FromContext(ctx).Info("cache lookup of a generated object failed; applying", "object", client.ObjectKeyFromObject(want), "error", err.Error())
	}
	// A server-side apply is idempotent, so a transient failure is retried within the review:
	// the API server calls this object's own validating webhook, and the replica it reaches may
	// just have died (kill -9, a node lost), which the API server reports as an internal error.
	return retry.OnError(applyRetry, func(err error) bool { return ctx.Err() == nil && transientAPIError(err) }, func() error {
		return w.writer.Apply(ctx, client.ApplyConfigurationFromUnstructured(want), client.FieldOwner(FieldOwner), client.ForceOwnership)
	})
}

// applyRetry is how often, and after how long, a generated object's write is tried again: four
// tries within about 0.7s, well inside a review's timeout.
var applyRetry = wait.Backoff{Steps: 4, Duration: 100 * time.Millisecond, Factor: 2}

// transientAPIError tells whether a write failed in a way that the same write may not fail in
// again: the API server's internal errors (a webhook it called did not answer), timeouts,
// throttling and unavailability. Denials and invalid objects are not.
func transientAPIError(err error) bool {
	return apierrors.IsInternalError(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsTooManyRequests(err) || apierrors.IsServiceUnavailable(err) || apierrors.IsUnexpectedServerError(err)
}

// upToDate tells whether have holds every label and every spec field of want with want's value.
// Fields the API server defaults in have are ignored.
func upToDate(want, have *unstructured.Unstructured) bool {
	for k, v := range want.GetLabels() {
		if have.GetLabels()[k] != v {
			return false
		}
	}
	return contains(have.Object["spec"], want.Object["spec"])
}

// contains tells whether have holds everything in want: maps may have more keys, lists must
// have the same length, scalars must be equal.
func contains(have, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return false
		}
		for k, wv := range w {
			if !contains(h[k], wv) {
				return false
			}
		}
		return true
	case []any:
		h, ok := have.([]any)
		if !ok || len(h) != len(w) {
			return false
		}
		for i := range w {
			if !contains(h[i], w[i]) {
				return false
			}
		}
		return true
	default:
		return reflect.DeepEqual(have, want)
	}
}

// LastUsed returns when an engine was last admitted with a generated object, or the zero time.
func LastUsed(obj client.Object) time.Time {
	t, err := time.Parse(time.RFC3339, obj.GetAnnotations()[policy.AnnotationLastUsed])
	if err != nil {
		return time.Time{}
	}
	return t
}
