package webhook

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/iss-platform/iss-webhook/policy"
)

// Options are what the handlers need.
type Options struct {
	// Policies hands out the policy in force; nil hands out the built-in default.
	Policies policy.Provider
	// Metrics counts decisions.
	Metrics *Metrics
	// Egress writes generated egress objects; nil writes none.
	Egress EgressWriter
	// Self is the user name the webhook authenticates as to the API server.
	Self string
	// Namespaces looks up namespaces' ISS labels; nil knows no namespace's labels.
	Namespaces policy.NamespaceLookup
	// OpenBao checks that ExternalSecret paths exist; nil never checks.
	OpenBao policy.PathVerifier
	// Engines counts the running engines a generated policy selects; nil never checks.
	Engines policy.EngineLookup
	// BuildRecords writes the records of Temporal builds' code; nil writes none.
	BuildRecords BuildRecordWriter
	// Builds reads the records of Temporal builds; nil knows none.
	Builds policy.BuildRecordLookup
	// PrivateSecrets tells which Secrets are private to users; nil never checks.
	PrivateSecrets policy.PrivateSecretLookup
	// Pods tells what the webhook caches of pods, for exec, attach and port-forward; nil never
	// checks.
	Pods policy.PodLookup
	// AllCauses names every violation in a denial; otherwise a denial names at most MaxCauses,
	// so that it stays readable for kubectl. issctl sets it.
	AllCauses bool
}

// EgressWriter writes the generated egress objects of an engine (design.md 4.3) before its pod
// is admitted. It returns admission warnings for the user, and an error when an object could not
// be written, in which case the pod is denied: it never runs with open egress.
type EgressWriter interface {
	Ensure(ctx context.Context, namespace string, eng policy.Engine, pol *policy.Policy) (warnings []string, err error)
}

// BuildRecordWriter makes the record of a Temporal build's code exist before its Deployment is
// admitted, with create-if-absent semantics. It returns admission warnings, and an error when the
// record could not be written or records other code (a *policy.BuildRecordConflict, under the
// temporalWorkers rules' Enforce mode), in which case the Deployment is denied with its message.
type BuildRecordWriter interface {
	Ensure(ctx context.Context, w *policy.BuildRecordWrite, pol *policy.Policy) (warnings []string, err error)
}

// Handlers maps each webhook path to its admission webhook.
func Handlers(scheme *runtime.Scheme, o Options) map[string]*admission.Webhook {
	if o.Policies == nil {
		o.Policies = policy.NewHolder(policy.Default())
	}
	hooks := map[string]*admission.Webhook{}
	for path, h := range newPathHandlers(scheme, o) {
		hooks[path] = &admission.Webhook{Handler: h}
	}
	return hooks
}

// Register adds every handler to the webhook server.
func Register(server ctrlwebhook.Server, scheme *runtime.Scheme, o Options) {
	for path, hook := range Handlers(scheme, o) {
		server.Register(path, hook)
	}
}

// CachedNamespaces looks namespaces up in an informer cache of their metadata.
type CachedNamespaces struct {
	cache client.Reader
}

// NewCachedNamespaces returns a NamespaceLookup that reads cache, which must hold Namespaces as
// metav1.PartialObjectMetadata (see NamespaceMetadata).
func NewCachedNamespaces(cache client.Reader) *CachedNamespaces {
	return &CachedNamespaces{cache: cache}
}

// NamespaceMetadata returns the empty object under which the cache holds namespaces.
func NamespaceMetadata() *metav1.PartialObjectMetadata {
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	return ns
}

// Namespace implements policy.NamespaceLookup.
func (c *CachedNamespaces) Namespace(ctx context.Context, name string) (policy.Namespace, error) {
	ns := NamespaceMetadata()
	if err := c.cache.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return policy.Namespace{Name: name}, nil
		}
		return policy.Namespace{}, err
	}
	return policy.NamespaceFromLabels(name, ns.Labels), nil
}

// SelectNamespaces implements policy.NamespaceLookup.
func (c *CachedNamespaces) SelectNamespaces(ctx context.Context, selector labels.Selector) ([]policy.Namespace, error) {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NamespaceList"))
	if err := c.cache.List(ctx, list); err != nil {
		return nil, err
	}
	var out []policy.Namespace
	for _, ns := range list.Items {
		// Matched here rather than by the cache, so that the label the API server sets on every
		// namespace matches as External Secrets matches it, even where the cache lacks it.
		if selector.Matches(policy.NamespaceSelectorLabels(ns.Name, ns.Labels)) {
			out = append(out, policy.NamespaceFromLabels(ns.Name, ns.Labels))
		}
	}
	return out, nil
}

// CachedEngines counts running engine pods in an informer cache of pods. The cache must hold
// every pod with the egress label, which every engine carries: EngineCacheSelector selects them.
type CachedEngines struct {
	cache client.Reader
}

// EngineCacheSelector selects the pods the cache behind CachedEngines must hold, and need hold
// no more of: those with the egress label.
func EngineCacheSelector() labels.Selector {
	hasEgressLabel, err := labels.NewRequirement(policy.LabelEgressPolicy, selection.Exists, nil)
	if err != nil {
		panic(err) // a constant, valid label key
	}
	return labels.NewSelector().Add(*hasEgressLabel)
}

// NewCachedEngines returns an EngineLookup over cache.
func NewCachedEngines(cache client.Reader) *CachedEngines { return &CachedEngines{cache: cache} }

// RunningEngines implements policy.EngineLookup.
func (c *CachedEngines) RunningEngines(ctx context.Context, namespace, hash string) (int, error) {
	pods := &corev1.PodList{}
	if err := c.cache.List(ctx, pods, client.InNamespace(namespace), client.MatchingLabels{policy.LabelEgressPolicy: hash}); err != nil {
		return 0, err
	}
	n := 0
	for i := range pods.Items {
		if policy.PodRunning(&pods.Items[i]) {
			n++
		}
	}
	return n, nil
}
