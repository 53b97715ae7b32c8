package buildrecord

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/iss-platform/iss-webhook/policy"
)

// The data keys of a record's ConfigMap.
const (
	keyNamespace = "namespace"
	keyBuildID   = "buildID"
	keyCodeHash  = "codeHash"
	keyCode      = "code"
	keyWorkload  = "deployment"
	keyRecorded  = "recorded"
)

// FieldOwner is the field manager of the webhook's writes of records.
const FieldOwner = "iss-webhook"

// RecordSelector selects the build records among the ConfigMaps of the records' namespace: the
// webhook's, labelled with the namespace of their build.
func RecordSelector() labels.Selector {
	return labels.SelectorFromSet(labels.Set{policy.LabelManagedBy: policy.ManagedByValue}).Add(exists(policy.LabelBuildNamespace))
}

// BuildSelector selects the Deployments and ReplicaSets the caches hold: those that carry a
// build id (a Deployment's ReplicaSets carry its template's labels).
func BuildSelector() labels.Selector { return labels.NewSelector().Add(exists(policy.LabelBuildID)) }

func exists(key string) labels.Requirement {
	r, err := labels.NewRequirement(key, selection.Exists, nil)
	if err != nil {
		panic(err) // a constant, valid label key
	}
	return *r
}

// DeploymentMetadata and ReplicaSetMetadata are the empty objects under which the cache holds
// the metadata of the Deployments and ReplicaSets of builds: their labels are all the records
// need, and metadata costs less memory than whole objects.
func DeploymentMetadata() *metav1.PartialObjectMetadata { return metadataOf(deployments.gvk) }

// ReplicaSetMetadata: see DeploymentMetadata.
func ReplicaSetMetadata() *metav1.PartialObjectMetadata { return metadataOf(replicaSets.gvk) }

func metadataOf(gvk schema.GroupVersionKind) *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(gvk)
	return m
}

// metadataList returns an empty list of the metadata of a kind.
func metadataList(gvk schema.GroupVersionKind) *metav1.PartialObjectMetadataList {
	l := &metav1.PartialObjectMetadataList{}
	l.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	return l
}

// CachedObjects are the objects the webhook keeps informers for, for the records: the records,
// and the metadata of the Deployments and ReplicaSets of builds.
func CachedObjects() []client.Object {
	return []client.Object{&corev1.ConfigMap{}, DeploymentMetadata(), ReplicaSetMetadata()}
}

// CacheOptions restrict those informers: ConfigMaps to the records in namespace, Deployments
// and ReplicaSets to those that carry a build id.
func CacheOptions(namespace string) map[client.Object]cache.ByObject {
	return map[client.Object]cache.ByObject{
		&corev1.ConfigMap{}:  {Namespaces: map[string]cache.Config{namespace: {LabelSelector: RecordSelector()}}},
		DeploymentMetadata(): {Label: BuildSelector()},
		ReplicaSetMetadata(): {Label: BuildSelector()},
	}
}

// ConfigMap returns the ConfigMap in namespace that holds a record, used at now.
func ConfigMap(namespace string, r policy.BuildRecord, now time.Time) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{
			Name: policy.BuildRecordName(r.Namespace, r.BuildID), Namespace: namespace,
			Labels: map[string]string{policy.LabelManagedBy: policy.ManagedByValue, policy.LabelBuildNamespace: r.Namespace, policy.LabelBuildID: r.BuildID},
			Annotations: map[string]string{
				policy.Prefix + "description": "ISS-001 section 5: the code that this build id stands for in its namespace; written by iss-webhook, kept until the build has been gone for the ISSPolicy's temporalWorkers.buildRecordRetention",
				policy.AnnotationLastUsed:     now.UTC().Format(time.RFC3339),
			},
		},
		Data: map[string]string{
			keyNamespace: r.Namespace, keyBuildID: r.BuildID, keyCodeHash: r.CodeHash, keyWorkload: r.Workload,
			keyRecorded: now.UTC().Format(time.RFC3339),
		},
	}
	if len(r.Code) > 0 {
		cm.Data[keyCode] = string(r.Code)
	}
	return cm
}

// Record reads the record a ConfigMap holds; an error when it is not a whole record.
func Record(cm *corev1.ConfigMap) (*policy.BuildRecord, error) {
	d := cm.Data
	r := &policy.BuildRecord{Namespace: d[keyNamespace], BuildID: d[keyBuildID], CodeHash: d[keyCodeHash], Workload: d[keyWorkload]}
	if d[keyCode] != "" {
		r.Code = []byte(d[keyCode])
	}
	r.Recorded, _ = time.Parse(time.RFC3339, d[keyRecorded])
	switch {
	case r.Namespace == "" || r.BuildID == "" || r.CodeHash == "":
		return nil, fmt.Errorf("ConfigMap %s/%s is not a build record: it lacks the namespace, build id or code hash", cm.Namespace, cm.Name)
	case cm.Labels[policy.LabelBuildNamespace] != r.Namespace || cm.Labels[policy.LabelBuildID] != r.BuildID || cm.Name != policy.BuildRecordName(r.Namespace, r.BuildID):
		return nil, fmt.Errorf("ConfigMap %s/%s is not a build record: its name and labels are not those of build %s in %s", cm.Namespace, cm.Name, r.BuildID, r.Namespace)
	}
	return r, nil
}

// LastUsed returns when a record's build was last seen in use or admitted: its last-used
// annotation, else its creation.
func LastUsed(cm *corev1.ConfigMap) time.Time {
	if t, err := time.Parse(time.RFC3339, cm.Annotations[policy.AnnotationLastUsed]); err == nil {
		return t
	}
	return cm.CreationTimestamp.Time
}

// touched returns a copy of cm marked used at now, for an update that carries cm's
// resourceVersion.
func touched(cm *corev1.ConfigMap, now time.Time) *corev1.ConfigMap {
	c := cm.DeepCopy()
	if c.Annotations == nil {
		c.Annotations = map[string]string{}
	}
	c.Annotations[policy.AnnotationLastUsed] = now.UTC().Format(time.RFC3339)
	return c
}
