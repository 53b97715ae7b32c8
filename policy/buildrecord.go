package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// BuildRecord is what iss-webhook keeps of a Temporal build: the code that its build id stands
// for in a namespace, from the first Deployment admitted with it. A build id stands for exactly
// one code in its namespace, across Deployments and over time, for as long as the record is kept
// (the policy's temporalWorkers.buildRecordRetention after the last Deployment or ReplicaSet of
// the build is gone).
type BuildRecord struct {
	// Namespace and BuildID name the build.
	Namespace, BuildID string
	// CodeHash is the hash of the worker code (WorkerCodeHash).
	CodeHash string
	// Code is the worker code itself (WorkerCodeJSON), so that a denial can name the fields that
	// differ; empty when it was too large to keep.
	Code []byte
	// Workload is the name of the Deployment the build was first recorded from.
	Workload string
	// Recorded is when the record was written; zero in a record still to be written.
	Recorded time.Time
}

// BuildRecordWrite is a record the adapter makes exist during admission, before the Deployment is
// admitted, unless the request is a dry run.
type BuildRecordWrite struct {
	Record BuildRecord
	// Judge tells that a record of other code denies the Deployment (under the temporalWorkers
	// rules' mode): a Deployment created, or becoming a worker. On other updates the change is
	// judged instead, and a record is only written where none is.
	Judge bool
}

// BuildRecordConflict is the error of a record write that found the build recorded with other
// code; its message says what to do.
type BuildRecordConflict struct {
	Message string
}

func (c *BuildRecordConflict) Error() string { return c.Message }

// BuildRecordName returns the name of the record of a build in a namespace: deterministic, so that
// two replicas that write the record of one build at once write one object, and the API server
// admits only the first (create-if-absent).
func BuildRecordName(namespace, buildID string) string {
	sum := sha256.Sum256([]byte(namespace + "/" + buildID))
	return BuildRecordNamePrefix + hex.EncodeToString(sum[:20])
}

// BuildRecordNamePrefix starts the name of every build record.
const BuildRecordNamePrefix = "iss-build-"

// LabelBuildNamespace is the label of a build record that names the namespace of its build; it
// marks the ConfigMaps that are build records.
const LabelBuildNamespace = Prefix + "build-namespace"

// restartAnnotations are the pod template annotations that tools set to restart a Deployment's
// pods without changing their code: kubectl rollout restart (and k9s, Lens), Rancher's redeploy,
// Stakater Reloader's annotation strategy. They are the only template annotations that may change.
var restartAnnotations = []string{"kubectl.kubernetes.io/restartedAt", "cattle.io/timestamp", "reloader.stakater.com/last-reloaded-from"}

// MaxRecordedCode is the largest worker code a build record keeps beside its hash, so that the
// records cached in memory stay small; a larger one is recorded by its hash alone.
const MaxRecordedCode = 64 << 10

// WorkerCode returns what of a pod template is a worker's code: all of it except an allowlist
// of fields that are safe to change without a new build. Safe are the resources (the
// containers' and the pod's, with the containers' resize policies and the RuntimeClass's
// overhead), the scheduling (nodeSelector, affinity, tolerations, topologySpreadConstraints,
// priorityClassName and the priority and preemption policy derived from it, schedulingGates,
// nodeName), the restart annotations, and the pod-template-hash label that the Deployment
// controller adds to its ReplicaSets. Everything else, volumes, workingDir, lifecycle hooks,
// probes, init and ephemeral containers, security contexts, the service account, commands,
// args, env, images and every field a later Kubernetes adds, is code. Of the metadata, the
// labels, annotations and finalizers are kept: the ReplicaSet controller copies them into pods.
func WorkerCode(tmpl *corev1.PodTemplateSpec) *corev1.PodTemplateSpec {
	code := &corev1.PodTemplateSpec{Spec: *tmpl.Spec.DeepCopy()}
	code.Labels = withoutKeys(tmpl.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	code.Annotations = withoutKeys(tmpl.Annotations, restartAnnotations...)
	code.Finalizers = slices.Clone(tmpl.Finalizers)
	s := &code.Spec
	s.Resources, s.Overhead = nil, nil
	s.NodeSelector, s.Affinity, s.Tolerations, s.TopologySpreadConstraints = nil, nil, nil, nil
	s.PriorityClassName, s.Priority, s.PreemptionPolicy, s.SchedulingGates, s.NodeName = "", nil, nil, nil, ""
	for _, list := range [][]corev1.Container{s.Containers, s.InitContainers} {
		for i := range list {
			list[i].Resources, list[i].ResizePolicy = corev1.ResourceRequirements{}, nil
		}
	}
	for i := range s.EphemeralContainers {
		s.EphemeralContainers[i].Resources, s.EphemeralContainers[i].ResizePolicy = corev1.ResourceRequirements{}, nil
	}
	return code
}

// withoutKeys returns a copy of m without the keys; nil when nothing is left.
func withoutKeys(m map[string]string, keys ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if !slices.Contains(keys, k) {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// WorkerCodeJSON returns the worker code of a pod template (WorkerCode) as normalised JSON: keys
// sorted, and nulls, empty objects and empty lists left out, so that fields a later Kubernetes
// adds to the types, empty until set, do not change what a record compares.
func WorkerCodeJSON(tmpl *corev1.PodTemplateSpec) []byte {
	raw, err := json.Marshal(WorkerCode(tmpl))
	if err != nil {
		panic(err) // a typed object always encodes
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		panic(err)
	}
	out, err := json.Marshal(pruneEmpty(v))
	if err != nil {
		panic(err)
	}
	return out
}

// WorkerCodeHash returns the hash a build record keeps of worker code (WorkerCodeJSON).
func WorkerCodeHash(code []byte) string {
	sum := sha256.Sum256(code)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// pruneEmpty drops nulls, empty objects and empty lists from decoded JSON, depth first.
func pruneEmpty(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if e = pruneEmpty(e); e == nil {
				delete(t, k)
			} else {
				t[k] = e
			}
		}
		if len(t) == 0 {
			return nil
		}
	case []any:
		for i, e := range t {
			if e = pruneEmpty(e); e == nil {
				// An empty element keeps its place: the index of the others means something.
				e = map[string]any{}
			}
			t[i] = e
		}
		if len(t) == 0 {
			return nil
		}
	}
	return v
}

// diffCode returns a Forbidden error for every place where two worker codes (decoded
// WorkerCodeJSON) differ, under path, each with what changed and the fix. Lists of the same
// length are compared entry by entry, others as a whole; map keys of labels and annotations
// are named as keys.
func diffCode(old, cur any, path *field.Path, fix string) field.ErrorList {
	var errs field.ErrorList
	var walk func(old, cur any, path *field.Path, mapKeys bool)
	walk = func(old, cur any, path *field.Path, mapKeys bool) {
		if reflect.DeepEqual(old, cur) {
			return
		}
		om, oIsMap := old.(map[string]any)
		cm, cIsMap := cur.(map[string]any)
		ol, oIsList := old.([]any)
		cl, cIsList := cur.([]any)
		switch {
		case oIsMap && cIsMap || oIsMap && cur == nil || old == nil && cIsMap:
			keys := slices.Sorted(maps.Keys(om))
			for k := range cm {
				if _, ok := om[k]; !ok {
					keys = append(keys, k)
				}
			}
			slices.Sort(keys)
			for _, k := range keys {
				child := path.Child(k)
				if mapKeys {
					child = path.Key(k)
				}
				walk(om[k], cm[k], child, k == "labels" || k == "annotations" || k == "volumeAttributes")
			}
		case oIsList && cIsList && len(ol) == len(cl):
			for i := range ol {
				walk(ol[i], cl[i], path.Index(i), false)
			}
		case oIsList && cIsList:
			errs = append(errs, field.Forbidden(path, fmt.Sprintf("%d entries became %d: %s", len(ol), len(cl), fix)))
		case old == nil:
			errs = append(errs, field.Forbidden(path, fmt.Sprintf("added (%s): %s", shortJSON(cur), fix)))
		case cur == nil:
			errs = append(errs, field.Forbidden(path, fmt.Sprintf("removed (was %s): %s", shortJSON(old), fix)))
		default:
			errs = append(errs, field.Forbidden(path, fmt.Sprintf("changed from %s to %s: %s", shortJSON(old), shortJSON(cur), fix)))
		}
	}
	walk(old, cur, path, false)
	return errs
}

// shortJSON returns a value as JSON, shortened to a length a message can carry.
func shortJSON(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	const max = 120
	if len(raw) > max {
		return fmt.Sprintf("%s... (%d bytes)", raw[:max], len(raw))
	}
	return string(raw)
}

// decodeCode decodes WorkerCodeJSON for diffCode.
func decodeCode(code []byte) (any, error) {
	var v any
	err := json.Unmarshal(code, &v)
	return v, err
}

// IsBuildRecord tells whether a ConfigMap is a build record: it carries the label that names the
// namespace of its build (the guard's webhook selects ConfigMaps by it).
func IsBuildRecord(cm *corev1.ConfigMap) bool {
	if cm == nil {
		return false
	}
	_, ok := cm.Labels[LabelBuildNamespace]
	return ok
}

// AdmitBuildRecord guards the build records, ConfigMaps in iss-webhook's own namespace that
// namespace editors have no RBAC for anyway. Only iss-webhook creates and changes them; trusted
// identities may delete one (to let a build id stand for other code) once no Deployment or
// ReplicaSet of its build is left in its namespace, and remove finalizers; nobody else may do
// anything to them. Without the records, deleting a worker Deployment and creating it anew
// would give its build id other code.
func AdmitBuildRecord(ctx context.Context, _ *Policy, req *Request, obj, old *corev1.ConfigMap) Outcome {
	if req.Self {
		return Outcome{Skip: "iss-webhook"}
	}
	if !IsBuildRecord(obj) && !IsBuildRecord(old) {
		return Outcome{Skip: "not a build record"}
	}
	rec := obj
	if rec == nil || !IsBuildRecord(rec) {
		rec = old
	}
	ns, build := rec.Labels[LabelBuildNamespace], rec.Labels[LabelBuildID]
	what := fmt.Sprintf("ConfigMap %s/%s is the record iss-webhook keeps of the code of Temporal build %s=%s in namespace %s (ISS-001 section 5)", req.Namespace, req.Name, LabelBuildID, build, ns)
	refuse := func(msg string) Outcome {
		return Outcome{Refusal: &Refusal{Group: RuleIntegrity, Message: what + ": " + msg}}
	}
	switch req.Operation {
	case Delete:
		if !req.Trusted {
			return refuse("only iss-webhook and trusted identities may delete it; it is deleted by itself once no Deployment or ReplicaSet of the build has been left for the policy's temporalWorkers.buildRecordRetention")
		}
		if req.Facts.BuildRecords == nil {
			return Outcome{Skip: "trusted identity"}
		}
		n, err := req.Facts.BuildRecords.BuildInUse(ctx, ns, build)
		if err != nil {
			return Outcome{Refusal: &Refusal{Group: RuleIntegrity, Unavailable: true, Message: fmt.Sprintf("iss-webhook cannot tell whether Deployments of build %s=%s are left in %s: %v; retry", LabelBuildID, build, ns, err)}}
		}
		if n > 0 {
			return refuse(fmt.Sprintf("%d Deployment(s) and ReplicaSet(s) of the build are still in %s, whose code it holds: delete them first (kubectl -n %s get deployments,replicasets -l %s=%s)", n, ns, ns, LabelBuildID, build))
		}
		return Outcome{Skip: "trusted identity"}
	case Update:
		if req.Trusted && onlyFinalizersChanged(old, obj) {
			// The garbage collector removes the finalizer of a foreground deletion.
			return Outcome{Skip: "trusted identity"}
		}
		return refuse("only iss-webhook may change it; to let the build id stand for other code, a trusted identity deletes the record once no Deployment or ReplicaSet of the build is left")
	}
	return refuse("only iss-webhook writes build records: choose another name and leave out the " + LabelBuildNamespace + " label")
}

// onlyFinalizersChanged tells whether an update changes nothing of a ConfigMap but its
// finalizers (and the fields the API server keeps).
func onlyFinalizersChanged(old, cur *corev1.ConfigMap) bool {
	if old == nil || cur == nil {
		return false
	}
	a, b := old.DeepCopy(), cur.DeepCopy()
	for _, c := range []*corev1.ConfigMap{a, b} {
		c.Finalizers, c.ResourceVersion, c.ManagedFields, c.Generation, c.DeletionTimestamp, c.DeletionGracePeriodSeconds = nil, "", nil, 0, nil, nil
	}
	return equality.Semantic.DeepEqual(a, b)
}
