// Package usersecrets keeps the index of user-private Secrets (ISS-001 section 2.1): which
// Secrets of a namespace ExternalSecrets sync from users/{userId} paths, which Secrets each pod
// uses, and which Secrets ExternalSecrets and PushSecrets read. Reviews read it
// (policy.PrivateSecretLookup, policy.PodLookup) without asking the API server: informers keep
// it, whose objects are cut down as they arrive to the little the rules read, so that it stays
// small on clusters with many pods.
package usersecrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/iss-platform/iss-webhook/internal/egress"
	"github.com/iss-platform/iss-webhook/policy"
)

// ExternalSecretVersions are the versions of external-secrets.io whose ExternalSecrets the index
// watches, in order of preference: the API server serves every object in each.
var ExternalSecretVersions = []string{"v1", "v1beta1"}

// PushSecretVersions are the versions of external-secrets.io whose PushSecrets the index
// watches, in order of preference.
var PushSecretVersions = []string{"v1alpha1"}

// The indexes of the informers.
const (
	byTarget = "target"
	bySecret = "secret"
	byRead   = "read"
)

// anySecret is the name under which byRead indexes an object that may read any Secret of its
// namespace.
const anySecret = "*"

// watchedKind is one kind of external-secrets.io the index watches once the API server serves it.
type watchedKind struct {
	kind     string
	resource string
	versions []string
	// informer is nil until the API server serves the kind.
	informer toolscache.SharedIndexInformer
}

// Index is the index of user-private Secrets. Start runs it; until ExternalSecrets are served it
// knows that no Secret is private, and until PushSecrets are served that none is pushed. It looks
// again every recheck, or at once when an object of a kind it does not watch yet is reviewed.
type Index struct {
	dynamic dynamic.Interface
	disc    discovery.DiscoveryInterface
	recheck time.Duration
	grace   time.Duration
	now     func() time.Time

	pods toolscache.SharedIndexInformer
	poke chan struct{}

	mu sync.Mutex
	// secrets and pushes are the ExternalSecrets and PushSecrets.
	secrets, pushes *watchedKind
	// gone are the ExternalSecrets deleted within the grace period, by the Secret they wrote:
	// the garbage collector deletes that Secret a little later, and until then it stays private.
	gone map[string][]goneEntry
}

// goneEntry is an ExternalSecret that was deleted, until when its Secret stays private.
type goneEntry struct {
	entry *SecretObjectEntry
	until time.Time
}

// New returns the index for the cluster of cfg. Pods of the excluded namespaces (which no
// webhook is sent) are not kept. recheck is how often it asks whether ExternalSecrets are
// served while they are not; grace is how long the Secret of a deleted ExternalSecret stays
// private, while the garbage collector deletes it.
func New(cfg *rest.Config, excluded []string, recheck, grace time.Duration) (*Index, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return NewForClients(cs, dyn, cs.Discovery(), excluded, recheck, grace), nil
}

// NewForClients returns the index that reads through the given clients.
func NewForClients(cs kubernetes.Interface, dyn dynamic.Interface, disc discovery.DiscoveryInterface, excluded []string, recheck, grace time.Duration) *Index {
	var selectors []fields.Selector
	for _, ns := range excluded {
		selectors = append(selectors, fields.OneTermNotEqualSelector("metadata.namespace", ns))
	}
	selector := fields.AndSelectors(selectors...).String()
	pods := coreinformers.NewFilteredPodInformer(cs, metav1.NamespaceAll, 0,
		toolscache.Indexers{bySecret: indexPodSecrets, toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc},
		func(o *metav1.ListOptions) { o.FieldSelector = selector })
	if err := pods.SetTransform(podTransform); err != nil {
		panic(err) // only fails once the informer runs
	}
	return &Index{dynamic: dyn, disc: disc, recheck: recheck, grace: grace, now: time.Now, pods: pods, poke: make(chan struct{}, 1), gone: map[string][]goneEntry{},
		secrets: &watchedKind{kind: policy.KindExternalSecret, resource: "externalsecrets", versions: ExternalSecretVersions},
		pushes:  &watchedKind{kind: policy.KindPushSecret, resource: "pushsecrets", versions: PushSecretVersions}}
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every replica reviews.
func (ix *Index) NeedLeaderElection() bool { return false }

// Start runs the informers until ctx is done. It implements manager.Runnable.
func (ix *Index) Start(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("usersecrets")
	go ix.pods.Run(ctx.Done())
	for {
		waiting := false
		for _, k := range []*watchedKind{ix.secrets, ix.pushes} {
			if ix.informer(k) != nil {
				continue
			}
			gvr, served, err := ix.served(k)
			switch {
			case err != nil:
				log.Error(err, "asking the API server whether it serves a kind; asking again later", "kind", k.kind)
				waiting = true
			case served:
				ix.watch(ctx, k, gvr)
				log.Info("watching for the Secrets private to users", "kind", k.kind, "version", gvr.Version)
			default:
				waiting = true
			}
		}
		if !waiting {
			<-ctx.Done()
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ix.poke:
		case <-time.After(ix.recheck):
		}
	}
}

// served returns the resource of the first version of a kind the API server serves.
func (ix *Index) served(k *watchedKind) (schema.GroupVersionResource, bool, error) {
	for _, v := range k.versions {
		gv := schema.GroupVersion{Group: "external-secrets.io", Version: v}
		served, err := egress.Serves(ix.disc, gv, k.resource)
		if err != nil {
			return schema.GroupVersionResource{}, false, err
		}
		if served {
			return gv.WithResource(k.resource), true, nil
		}
	}
	return schema.GroupVersionResource{}, false, nil
}

// watch starts the informer of a kind.
func (ix *Index) watch(ctx context.Context, k *watchedKind, gvr schema.GroupVersionResource) {
	indexers := toolscache.Indexers{byRead: indexReads, toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc}
	if k == ix.secrets {
		indexers[byTarget] = indexTarget
	}
	inf := dynamicinformer.NewFilteredDynamicInformer(ix.dynamic, gvr, metav1.NamespaceAll, 0, indexers, nil).Informer()
	if err := inf.SetTransform(secretObjectTransform); err != nil {
		panic(err) // only fails once the informer runs
	}
	if k == ix.secrets {
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{DeleteFunc: ix.deleted}); err != nil {
			panic(err) // only fails once the informer runs
		}
	}
	ix.mu.Lock()
	k.informer = inf
	ix.mu.Unlock()
	go inf.Run(ctx.Done())
}

// informer returns the informer of a kind, nil while it is not served.
func (ix *Index) informer(k *watchedKind) toolscache.SharedIndexInformer {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return k.informer
}

// deleted keeps a deleted ExternalSecret for the grace period.
func (ix *Index) deleted(obj any) {
	if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	e, ok := obj.(*SecretObjectEntry)
	if !ok {
		return
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	key := e.Namespace + "/" + e.Target
	now := ix.now()
	kept := []goneEntry{{entry: e, until: now.Add(ix.grace)}}
	for _, g := range ix.gone[key] {
		if now.Before(g.until) {
			kept = append(kept, g)
		}
	}
	ix.gone[key] = kept
}

// goneWriters returns the ExternalSecrets that wrote a Secret and were deleted within the grace
// period.
func (ix *Index) goneWriters(key string) []*SecretObjectEntry {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	var out []*SecretObjectEntry
	now := ix.now()
	for _, g := range ix.gone[key] {
		if now.Before(g.until) {
			out = append(out, g.entry)
		}
	}
	if len(out) == 0 {
		delete(ix.gone, key)
	}
	return out
}

// Synced returns an error until the informers are synced, for the readiness probe.
func (ix *Index) Synced() error {
	if !ix.pods.HasSynced() {
		return errors.New("the informer of pods (their owners and Secrets) is not synced yet")
	}
	for _, k := range []*watchedKind{ix.secrets, ix.pushes} {
		if _, err := ix.synced(k); err != nil {
			return fmt.Errorf("the informer of %ss (which Secrets are private to users, and who reads them) is not synced yet", k.kind)
		}
	}
	return nil
}

// synced returns the informer of a kind, nil when it is not served, and an error when it is not
// synced.
func (ix *Index) synced(k *watchedKind) (toolscache.SharedIndexInformer, error) {
	inf := ix.informer(k)
	if inf != nil && !inf.HasSynced() {
		return nil, fmt.Errorf("its informer of %ss is not synced yet", k.kind)
	}
	return inf, nil
}

// Watching implements policy.PrivateSecretLookup. While the kind is not watched it asks the API
// server again, at once.
func (ix *Index) Watching(_ context.Context, kind string) error {
	k := ix.secrets
	if kind == policy.KindPushSecret {
		k = ix.pushes
	}
	inf, err := ix.synced(k)
	if err != nil {
		return err
	}
	if inf == nil {
		select {
		case ix.poke <- struct{}{}:
		default:
		}
		return fmt.Errorf("the API server did not serve %ss when iss-webhook last asked, so it does not watch them yet; it asks again now: retry in a few seconds", kind)
	}
	return nil
}

// SecretUsers implements policy.PrivateSecretLookup: the users of the private paths that the
// ExternalSecrets writing the Secret read, and those of the private Secrets they template from.
// Where several ExternalSecrets write one Secret, it is private to all their users.
func (ix *Index) SecretUsers(_ context.Context, namespace, name string) ([]string, error) {
	inf, err := ix.synced(ix.secrets)
	if err != nil || inf == nil {
		return nil, err
	}
	users := map[string]bool{}
	if err := ix.collectUsers(inf.GetIndexer(), namespace, name, map[string]bool{}, users); err != nil {
		return nil, err
	}
	if len(users) == 0 {
		return nil, nil
	}
	out := make([]string, 0, len(users))
	for u := range users {
		out = append(out, u)
	}
	slices.Sort(out)
	return out, nil
}

// collectUsers adds the users a Secret is private to, following templateFrom reads once each.
// The ExternalSecrets deleted within the grace period count.
func (ix *Index) collectUsers(idx toolscache.Indexer, namespace, name string, seen, users map[string]bool) error {
	if seen[name] {
		return nil
	}
	seen[name] = true
	writers, err := idx.ByIndex(byTarget, namespace+"/"+name)
	if err != nil {
		return err
	}
	for _, e := range ix.goneWriters(namespace + "/" + name) {
		writers = append(writers, e)
	}
	for _, obj := range writers {
		e, ok := obj.(*SecretObjectEntry)
		if !ok {
			continue
		}
		for _, u := range e.Users {
			users[u] = true
		}
		for _, r := range e.Reads {
			if err := ix.collectUsers(idx, namespace, r, seen, users); err != nil {
				return err
			}
		}
	}
	return nil
}

// PrivateSecrets implements policy.PrivateSecretLookup.
func (ix *Index) PrivateSecrets(ctx context.Context, namespace string) (map[string][]string, error) {
	inf, err := ix.synced(ix.secrets)
	if err != nil || inf == nil {
		return nil, err
	}
	objs, err := inf.GetIndexer().ByIndex(toolscache.NamespaceIndex, namespace)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, obj := range objs {
		e, ok := obj.(*SecretObjectEntry)
		if !ok {
			continue
		}
		if _, done := out[e.Target]; done {
			continue
		}
		users, err := ix.SecretUsers(ctx, namespace, e.Target)
		if err != nil {
			return nil, err
		}
		if len(users) > 0 {
			out[e.Target] = users
		}
	}
	return out, nil
}

// SecretReaders implements policy.PrivateSecretLookup. A kind the API server does not serve has
// no readers: PushSecrets are admitted only while the index watches them.
func (ix *Index) SecretReaders(_ context.Context, namespace, name string) ([]policy.SecretReader, error) {
	var out []policy.SecretReader
	for _, k := range []*watchedKind{ix.secrets, ix.pushes} {
		inf, err := ix.synced(k)
		if err != nil {
			return nil, err
		}
		if inf == nil {
			continue
		}
		seen := map[string]bool{}
		for _, key := range []string{namespace + "/" + name, namespace + "/" + anySecret} {
			objs, err := inf.GetIndexer().ByIndex(byRead, key)
			if err != nil {
				return nil, err
			}
			for _, obj := range objs {
				e, ok := obj.(*SecretObjectEntry)
				if !ok || seen[e.Name] {
					continue
				}
				seen[e.Name] = true
				out = append(out, policy.SecretReader{Kind: k.kind, Name: e.Name, Initiator: policy.Owner(&e.ObjectMeta), Target: e.Target})
			}
		}
	}
	slices.SortFunc(out, func(a, b policy.SecretReader) int {
		return strings.Compare(a.Kind+"/"+a.Name, b.Kind+"/"+b.Name)
	})
	return out, nil
}

// Pod implements policy.PodLookup.
func (ix *Index) Pod(_ context.Context, namespace, name string) (policy.CachedPod, bool, error) {
	if !ix.pods.HasSynced() {
		return policy.CachedPod{}, false, errors.New("its informer of pods is not synced yet")
	}
	obj, found, err := ix.pods.GetIndexer().GetByKey(namespace + "/" + name)
	if err != nil || !found {
		return policy.CachedPod{}, false, err
	}
	e, ok := obj.(*PodEntry)
	if !ok {
		return policy.CachedPod{}, false, fmt.Errorf("pod %s/%s is cached as %T", namespace, name, obj)
	}
	return e.cached(), true, nil
}

// PodsReferencing implements policy.PodLookup.
func (ix *Index) PodsReferencing(_ context.Context, namespace, secret string) ([]policy.CachedPod, error) {
	if !ix.pods.HasSynced() {
		return nil, errors.New("its informer of pods is not synced yet")
	}
	objs, err := ix.pods.GetIndexer().ByIndex(bySecret, namespace+"/"+secret)
	if err != nil {
		return nil, err
	}
	var out []policy.CachedPod
	for _, obj := range objs {
		if e, ok := obj.(*PodEntry); ok {
			out = append(out, e.cached())
		}
	}
	slices.SortFunc(out, func(a, b policy.CachedPod) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// SecretObjectEntry is what the index keeps of an ExternalSecret or a PushSecret.
type SecretObjectEntry struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	// Target is the Secret an ExternalSecret writes (policy.SecretWrites); empty for a
	// PushSecret.
	Target string
	// Users are those of the users/ paths an ExternalSecret reads (policy.ExternalSecretUsers).
	Users []string
	// Reads are the Secrets it reads by name (policy.SecretReads).
	Reads []string
	// ReadsAny tells that it may read any Secret of its namespace: a PushSecret that selects by
	// labels, or an object the index cannot read.
	ReadsAny bool
}

// DeepCopyObject implements runtime.Object.
func (e *SecretObjectEntry) DeepCopyObject() runtime.Object {
	out := *e
	e.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Users, out.Reads = slices.Clone(e.Users), slices.Clone(e.Reads)
	return &out
}

// PodEntry is what the index keeps of a pod.
type PodEntry struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	// Secrets are the Secrets it references (policy.PodSpecSecretReferences), sorted.
	Secrets []string
}

// DeepCopyObject implements runtime.Object.
func (e *PodEntry) DeepCopyObject() runtime.Object {
	out := *e
	e.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Secrets = slices.Clone(e.Secrets)
	return &out
}

func (e *PodEntry) cached() policy.CachedPod {
	return policy.CachedPod{Name: e.Name, Owner: policy.Owner(&e.ObjectMeta), Secrets: slices.Clone(e.Secrets)}
}

// slimMeta keeps of an object's metadata what the informer and the rules need: its key, its
// version and its owner annotation.
func slimMeta(m metav1.Object) metav1.ObjectMeta {
	out := metav1.ObjectMeta{Name: m.GetName(), Namespace: m.GetNamespace(), UID: m.GetUID(), ResourceVersion: m.GetResourceVersion()}
	if owner, ok := m.GetAnnotations()[policy.AnnotationInitiatorID]; ok {
		out.Annotations = map[string]string{policy.AnnotationInitiatorID: owner}
	}
	return out
}

// podTransform cuts a pod down to a PodEntry as it enters the informer. Anything else (a
// tombstone of an entry) passes as it is.
func podTransform(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	refs, _ := policy.PodSpecSecretReferences(&pod.Spec, nil)
	var names []string
	for _, r := range refs {
		names = append(names, r.Name)
	}
	slices.Sort(names)
	return &PodEntry{ObjectMeta: slimMeta(pod), Secrets: slices.Compact(names)}, nil
}

// secretObjectTransform cuts an ExternalSecret or PushSecret down to a SecretObjectEntry as it
// enters the informer. The index fails closed on one it cannot read (the API server's schema
// makes that unlikely): an ExternalSecret is kept as private to a user nobody is, so that no pod
// may use the Secret it writes, and either kind as reading every Secret of its namespace.
// Anything else (a tombstone of an entry) passes as it is.
func secretObjectTransform(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	entry := &SecretObjectEntry{TypeMeta: metav1.TypeMeta{APIVersion: u.GetAPIVersion(), Kind: u.GetKind()}, ObjectMeta: slimMeta(u)}
	if entry.Kind == policy.KindExternalSecret {
		entry.Target = u.GetName()
	}
	so := &policy.SecretObject{}
	raw, err := json.Marshal(u.Object)
	if err == nil {
		err = json.Unmarshal(raw, so)
	}
	if err != nil || so.ExternalSecret == nil && so.PushSecret == nil {
		entry.ReadsAny = true
		if entry.Kind == policy.KindExternalSecret {
			entry.Users = []string{UnreadableUser}
			if name, _, _ := unstructured.NestedString(u.Object, "spec", "target", "name"); name != "" {
				entry.Target = name
			}
		}
		return entry, nil
	}
	if so.ExternalSecret != nil {
		entry.Target = policy.SecretWrites(so)[0].Name
		entry.Users = policy.ExternalSecretUsers(so.ExternalSecret)
	}
	if so.PushSecret != nil {
		// Secrets selected by labels (admitted before the webhook, or by a trusted identity) may
		// be any of the namespace.
		if s := so.PushSecret.Spec.Selector.Secret; s != nil && s.Selector != nil {
			entry.ReadsAny = true
		}
	}
	for _, r := range policy.SecretReads(so) {
		if r.Name != "" {
			entry.Reads = append(entry.Reads, r.Name)
		}
	}
	slices.Sort(entry.Reads)
	entry.Reads = slices.Compact(entry.Reads)
	return entry, nil
}

// UnreadableUser is the user the Secret of an ExternalSecret the index cannot read is private
// to: nobody, so that no pod may use it.
const UnreadableUser = "(an ExternalSecret iss-webhook cannot read)"

// indexTarget indexes an ExternalSecret by the Secret it writes.
func indexTarget(obj any) ([]string, error) {
	e, ok := obj.(*SecretObjectEntry)
	if !ok {
		return nil, nil
	}
	return []string{e.Namespace + "/" + e.Target}, nil
}

// indexReads indexes an ExternalSecret or PushSecret by the Secrets it reads, and one that may
// read any under anySecret.
func indexReads(obj any) ([]string, error) {
	e, ok := obj.(*SecretObjectEntry)
	if !ok {
		return nil, nil
	}
	keys := make([]string, 0, len(e.Reads)+1)
	for _, r := range e.Reads {
		keys = append(keys, e.Namespace+"/"+r)
	}
	if e.ReadsAny {
		keys = append(keys, e.Namespace+"/"+anySecret)
	}
	return keys, nil
}

// indexPodSecrets indexes a pod by the Secrets it references.
func indexPodSecrets(obj any) ([]string, error) {
	e, ok := obj.(*PodEntry)
	if !ok {
		return nil, nil
	}
	keys := make([]string, len(e.Secrets))
	for i, s := range e.Secrets {
		keys[i] = e.Namespace + "/" + s
	}
	return keys, nil
}
