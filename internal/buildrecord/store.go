package buildrecord

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/iss-platform/iss-webhook/policy"
	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
)

// Store reads the build records from the informer cache and writes them during admission. It
// implements policy.BuildRecordLookup and webhook.BuildRecordWriter.
type Store struct {
	client    client.Client
	apiReader client.Reader
	cache     client.Reader
	namespace string
	now       func() time.Time
}

// NewStore returns a store of the records in namespace (iss-webhook's own) that writes with c,
// reads from cache (which holds the records and the metadata of the Deployments and ReplicaSets
// of builds, see CacheOptions), and reads a record from the API server itself (apiReader) only
// when a create found it there before the cache did.
func NewStore(c client.Client, apiReader, cache client.Reader, namespace string) *Store {
	return &Store{client: c, apiReader: apiReader, cache: cache, namespace: namespace, now: time.Now}
}

// Namespace returns the namespace of the records.
func (s *Store) Namespace() string { return s.namespace }

// BuildRecord implements policy.BuildRecordLookup: the cached record of a build, nil when there
// is none.
func (s *Store) BuildRecord(ctx context.Context, namespace, buildID string) (*policy.BuildRecord, error) {
	cm := &corev1.ConfigMap{}
	err := s.cache.Get(ctx, client.ObjectKey{Namespace: s.namespace, Name: policy.BuildRecordName(namespace, buildID)}, cm)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return Record(cm)
}

// BuildInUse implements policy.BuildRecordLookup: the cached Deployments and ReplicaSets of a
// build.
func (s *Store) BuildInUse(ctx context.Context, namespace, buildID string) (int, error) {
	n := 0
	for _, gvk := range []*metadataKind{deployments, replicaSets} {
		list := metadataList(gvk.gvk)
		if err := s.cache.List(ctx, list, client.InNamespace(namespace), client.MatchingLabels{policy.LabelBuildID: buildID}); err != nil {
			return 0, fmt.Errorf("listing %s: %w", gvk.plural, err)
		}
		n += len(list.Items)
	}
	return n, nil
}

// Ensure implements webhook.BuildRecordWriter: it makes the record of the build exist, creating
// it if absent. A record of the same code that the cache holds costs no API call, unless it was
// last used half the retention ago: then it is marked used, so that the Collector, whose deletes
// carry the resourceVersion they read, cannot delete it under a Deployment being admitted. A
// record of other code denies when the write is judged, under the mode of the temporalWorkers
// rules.
func (s *Store) Ensure(ctx context.Context, w *policy.BuildRecordWrite, pol *policy.Policy) ([]string, error) {
	key := client.ObjectKey{Namespace: s.namespace, Name: policy.BuildRecordName(w.Record.Namespace, w.Record.BuildID)}
	have := &corev1.ConfigMap{}
	err := s.cache.Get(ctx, key, have)
	switch {
	case err == nil:
		return s.held(ctx, have, w, pol, true)
	case !apierrors.IsNotFound(err):
		// The cache cannot answer (not synced): the API server is the authority.
		logf.FromContext(ctx).Info("cache lookup of a build record failed; creating", "record", key, "error", err.Error())
	}
	return s.create(ctx, w, pol)
}

// create writes the record if absent; if another write was first, the record it wrote decides.
func (s *Store) create(ctx context.Context, w *policy.BuildRecordWrite, pol *policy.Policy) ([]string, error) {
	want := ConfigMap(s.namespace, w.Record, s.now())
	for attempt := 0; ; attempt++ {
		err := s.client.Create(ctx, want.DeepCopy(), client.FieldOwner(FieldOwner))
		if err == nil {
			logf.FromContext(ctx).Info("recorded the code of a build", "namespace", w.Record.Namespace, "buildID", w.Record.BuildID, "codeHash", w.Record.CodeHash, "record", want.Name)
			return nil, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, s.failed(w, err)
		}
		have := &corev1.ConfigMap{}
		err = s.apiReader.Get(ctx, client.ObjectKeyFromObject(want), have)
		switch {
		case err == nil:
			return s.held(ctx, have, w, pol, false)
		case apierrors.IsNotFound(err) && attempt == 0:
			// Collected between the create and the read: create again.
			continue
		}
		return nil, s.failed(w, err)
	}
}

// held judges the record that exists against the one to write, and marks it used when it is
// the same and was last used half the retention ago. touch is false for a record just read from
// the API server after a conflict, which is not marked again.
func (s *Store) held(ctx context.Context, have *corev1.ConfigMap, w *policy.BuildRecordWrite, pol *policy.Policy, touch bool) ([]string, error) {
	rec, err := Record(have)
	if err != nil {
		return nil, s.failed(w, fmt.Errorf("%w: a cluster admin must delete it", err))
	}
	if rec.CodeHash != w.Record.CodeHash {
		return s.conflict(ctx, rec, w, pol)
	}
	now := s.now()
	if !touch || now.Sub(LastUsed(have)) < pol.TemporalWorkers.BuildRecordRetention/2 {
		return nil, nil
	}
	err = s.client.Update(ctx, touched(have, now), client.FieldOwner(FieldOwner))
	switch {
	case err == nil:
		return nil, nil
	case apierrors.IsNotFound(err):
		return s.create(ctx, w, pol)
	case apierrors.IsConflict(err):
		fresh := &corev1.ConfigMap{}
		if err := s.apiReader.Get(ctx, client.ObjectKeyFromObject(have), fresh); err != nil {
			if apierrors.IsNotFound(err) {
				return s.create(ctx, w, pol)
			}
			return nil, s.failed(w, err)
		}
		return s.held(ctx, fresh, w, pol, false)
	}
	return nil, s.failed(w, err)
}

// conflict answers a write that found its build recorded with other code: a denial, a warning
// or a log line by the temporalWorkers rules' mode when the write is judged; nothing otherwise.
func (s *Store) conflict(ctx context.Context, rec *policy.BuildRecord, w *policy.BuildRecordWrite, pol *policy.Policy) ([]string, error) {
	if !w.Judge {
		return nil, nil
	}
	msg := fmt.Sprintf("the pod template of Deployment %s is not the recorded code of its build: %s", w.Record.Workload, policy.RecordedElsewhere(rec))
	switch pol.Mode(policy.RuleTemporalWorkers) {
	case v1alpha1.Enforce:
		return nil, &policy.BuildRecordConflict{Message: msg}
	case v1alpha1.Warn:
		return []string{msg}, nil
	}
	logf.FromContext(ctx).Info("admitted in Audit mode: "+msg, "rule", policy.RuleTemporalWorkers)
	return nil, nil
}

// failed is the error of a record that could not be written.
func (s *Store) failed(w *policy.BuildRecordWrite, err error) error {
	return fmt.Errorf("iss-webhook could not write the record of build %s=%s in %s (%v); the Deployment is denied so that its build id cannot come to stand for two codes: retry, and if it persists ask the platform team",
		policy.LabelBuildID, w.Record.BuildID, w.Record.Namespace, err)
}

// metadataKind is a kind whose metadata the records read.
type metadataKind struct {
	gvk    schema.GroupVersionKind
	plural string
}

var (
	deployments = &metadataKind{appsv1.SchemeGroupVersion.WithKind("Deployment"), "deployments"}
	replicaSets = &metadataKind{appsv1.SchemeGroupVersion.WithKind("ReplicaSet"), "replicasets"}
	pods        = &metadataKind{corev1.SchemeGroupVersion.WithKind("Pod"), "pods"}
)
