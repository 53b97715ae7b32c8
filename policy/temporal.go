package policy

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/distribution/reference"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// TemporalWorkerComponent is the value of the iss.platform/component label of a Temporal worker.
const TemporalWorkerComponent = "temporal-worker"

// blueGreen says how to roll out a new build of a worker, for every denial of a change.
const blueGreen = "Temporal workers are deployed blue/green (ISS-001 section 5): deploy the new build as a new Deployment with a new " +
	LabelBuildID + ", and let this one drain the workflows it started; scaling, restarts, resources and scheduling stay allowed"

// controllerMade says who makes the ReplicaSets and pods of workers, for every denial of one
// made or changed by hand.
const controllerMade = "the ReplicaSets and pods of a Temporal build are made by the Deployment and ReplicaSet controllers from the worker's Deployment, whose code the build id stands for: " +
	"change the Deployment (scale, restart, resources, scheduling) or deploy a new build as a new Deployment with a new " + LabelBuildID

// DefaultBuildRecordRetention is how long a build record is kept, by default, after the last
// Deployment or ReplicaSet of its build is gone.
const DefaultBuildRecordRetention = 30 * 24 * time.Hour

// TemporalPolicy says which Deployments are Temporal workers, and how their builds are held to
// one code.
type TemporalPolicy struct {
	// Selector selects worker Deployments by their labels.
	Selector *metav1.LabelSelector
	selector labels.Selector
	// BuildRecordRetention is how long the record of a build's code is kept after the last
	// Deployment or ReplicaSet of the build in its namespace is gone.
	BuildRecordRetention time.Duration
	// AllowImageTags admits worker images by tag; by default they are pinned by digest, since a
	// tag can be pushed again with other code.
	AllowImageTags bool
}

// DefaultTemporalPolicy selects Deployments labelled iss.platform/component: temporal-worker,
// keeps build records for 30 days and requires images pinned by digest.
func DefaultTemporalPolicy() TemporalPolicy {
	t, err := NewTemporalPolicy(&metav1.LabelSelector{MatchLabels: map[string]string{LabelComponent: TemporalWorkerComponent}})
	if err != nil {
		panic(err) // a constant, valid selector
	}
	return t
}

// NewTemporalPolicy returns the default policy of workers that sel selects. An empty selector,
// which would select every Deployment, is an error.
func NewTemporalPolicy(sel *metav1.LabelSelector) (TemporalPolicy, error) {
	t := TemporalPolicy{BuildRecordRetention: DefaultBuildRecordRetention}
	return t, t.SetSelector(sel)
}

// SetSelector makes sel select the workers. An empty selector, which would select every
// Deployment, is an error, and leaves the policy as it was.
func (t *TemporalPolicy) SetSelector(sel *metav1.LabelSelector) error {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return err
	}
	if s.Empty() {
		return errors.New("an empty selector would make every Deployment a Temporal worker: select the workers, such as matchLabels: {iss.platform/component: temporal-worker}")
	}
	t.Selector, t.selector = sel.DeepCopy(), s
	return nil
}

// IsWorker tells whether the policy selects a Deployment as a Temporal worker.
func (t *TemporalPolicy) IsWorker(d *appsv1.Deployment) bool {
	return d != nil && t.selector != nil && t.selector.Matches(labels.Set(d.Labels))
}

// Governs tells whether the blue/green rules hold a Deployment: the policy selects it as a
// worker, or it carries a build id on itself or its pod template. A build id stands for one code
// whatever else the Deployment's labels say, so that dropping the worker label from a copy does
// not make the copy's code another of the same build.
func (t *TemporalPolicy) Governs(d *appsv1.Deployment) bool {
	if d == nil {
		return false
	}
	_, own := d.Labels[LabelBuildID]
	_, tmpl := d.Spec.Template.Labels[LabelBuildID]
	return own || tmpl || t.IsWorker(d)
}

// ValidateTemporalWorker checks a Deployment under the blue/green rules (design.md 4.5); old is
// nil on create, recorded the record of the build in the namespace (nil when there is none, or
// unknown offline). Every Deployment they govern carries its build id, on itself and on its pod
// template, equal, and stays governed. A Deployment judged as new (created, or becoming governed)
// selects its pods by the build id, pins its images by digest unless the policy allows tags, and
// has the recorded code of its build, if any. Any other update keeps the build id and the code:
// everything of the pod template but the fields that are safe to change (WorkerCode).
func (t *TemporalPolicy) ValidateTemporalWorker(old, cur *appsv1.Deployment, recorded *BuildRecord) field.ErrorList {
	if !t.Governs(cur) && !t.Governs(old) {
		return nil
	}
	labelsPath := field.NewPath("metadata", "labels")
	if t.Governs(old) && !t.Governs(cur) {
		return field.ErrorList{field.Forbidden(labelsPath, fmt.Sprintf("a Temporal worker stays one (the policy selects workers by %s, and a Deployment with a %s is one): %s", metav1.FormatLabelSelector(t.Selector), LabelBuildID, blueGreen))}
	}
	var errs field.ErrorList
	build, tmplBuild := cur.Labels[LabelBuildID], cur.Spec.Template.Labels[LabelBuildID]
	tmplLabels := field.NewPath("spec", "template", "metadata", "labels").Key(LabelBuildID)
	switch {
	case build == "":
		errs = append(errs, field.Required(labelsPath.Key(LabelBuildID), "a Temporal worker serves one Temporal BuildID: set it here and on the pod template"))
	case tmplBuild != build:
		errs = append(errs, field.Invalid(tmplLabels, tmplBuild, fmt.Sprintf("must equal the Deployment's %s %q, so that its pods say which build they serve", LabelBuildID, build)))
	}
	if old == nil || !t.Governs(old) {
		errs = append(errs, t.validateNewBuild(cur, recorded)...)
		return errs
	}
	if before := old.Labels[LabelBuildID]; before != "" && build != "" && before != build {
		errs = append(errs, field.Forbidden(labelsPath.Key(LabelBuildID), fmt.Sprintf("changed from %q to %q: %s", before, build, blueGreen)))
	}
	return append(errs, diffTemplates(&old.Spec.Template, &cur.Spec.Template, field.NewPath("spec", "template"), blueGreen)...)
}

// validateNewBuild checks what a Deployment judged as new must be: selecting its pods by its
// build id, its images pinned by digest (unless the policy allows tags), and the recorded code.
func (t *TemporalPolicy) validateNewBuild(d *appsv1.Deployment, recorded *BuildRecord) field.ErrorList {
	var errs field.ErrorList
	build := d.Labels[LabelBuildID]
	if build == "" {
		return nil
	}
	if d.Spec.Selector == nil || d.Spec.Selector.MatchLabels[LabelBuildID] != build {
		errs = append(errs, field.Required(field.NewPath("spec", "selector", "matchLabels").Key(LabelBuildID), fmt.Sprintf(
			"a Temporal worker selects its pods by its build id: add %s: %q, so that no pod of other code labelled for this Deployment is adopted into its build (the selector cannot change later: create the Deployment anew)", LabelBuildID, build)))
	}
	if !t.AllowImageTags {
		spec := field.NewPath("spec", "template", "spec")
		for _, list := range []struct {
			name       string
			containers []corev1.Container
		}{{"initContainers", d.Spec.Template.Spec.InitContainers}, {"containers", d.Spec.Template.Spec.Containers}} {
			for i, c := range list.containers {
				errs = append(errs, validateDigest(c.Image, spec.Child(list.name).Index(i).Child("image"))...)
			}
		}
	}
	if recorded != nil && d.Spec.Template.Labels[LabelBuildID] == build {
		errs = append(errs, ValidateRecordedCode(recorded, &d.Spec.Template, field.NewPath("spec", "template"))...)
	}
	return errs
}

// validateDigest requires an image reference pinned by digest.
func validateDigest(image string, path *field.Path) field.ErrorList {
	ref, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return field.ErrorList{field.Invalid(path, image, fmt.Sprintf("is not an image reference a registry client can pull (%v): pin the image by digest, such as registry.example.org/orders-worker@sha256:<64 hex digits>", err))}
	}
	if _, ok := ref.(reference.Digested); !ok {
		return field.ErrorList{field.Invalid(path, image, "a Temporal worker's image is pinned by digest, since a tag can be pushed again with other code under the same build id: use "+
			reference.TrimNamed(ref).String()+"@sha256:<digest> (docker buildx imagetools inspect prints it), or ask the platform team to allow tags (spec.temporalWorkers.allowImageTags)")}
	}
	return nil
}

// ValidateRecordedCode denies a pod template whose worker code is not the code the record of its
// build holds, naming the fields that differ when the record keeps the code. path is the
// template's.
func ValidateRecordedCode(recorded *BuildRecord, tmpl *corev1.PodTemplateSpec, path *field.Path) field.ErrorList {
	code := WorkerCodeJSON(tmpl)
	if WorkerCodeHash(code) == recorded.CodeHash {
		return nil
	}
	fix := RecordedElsewhere(recorded)
	was, err := decodeCode(recorded.Code)
	if len(recorded.Code) > 0 && err == nil {
		now, _ := decodeCode(code)
		if errs := diffCode(was, now, path, fix); len(errs) > 0 {
			return errs
		}
	}
	return field.ErrorList{field.Forbidden(path, "this pod template's code differs from the recorded code of its build: "+fix)}
}

// RecordedElsewhere says what a record of other code means and what to do, for the denials of a
// build that is recorded with other code.
func RecordedElsewhere(r *BuildRecord) string {
	when := ""
	if !r.Recorded.IsZero() {
		when = " on " + r.Recorded.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("the recorded code of build %s=%s in namespace %s is that of Deployment %s (recorded%s, %s), and a build id stands for one code in its namespace, across Deployments and over time: "+
		"give this code a new %s, or deploy the recorded code; the record is kept until the build's last Deployment and ReplicaSet have been gone for the policy's temporalWorkers.buildRecordRetention",
		LabelBuildID, r.BuildID, r.Namespace, r.Workload, when, r.CodeHash, LabelBuildID)
}

// RecordOf returns the record a Deployment's pod template makes of its build in a namespace.
func RecordOf(namespace string, d *appsv1.Deployment) BuildRecord {
	code := WorkerCodeJSON(&d.Spec.Template)
	r := BuildRecord{Namespace: namespace, BuildID: d.Labels[LabelBuildID], CodeHash: WorkerCodeHash(code), Workload: d.Name}
	if len(code) <= MaxRecordedCode {
		r.Code = code
	}
	return r
}

// diffTemplates denies every change of two pod templates' worker code, under path.
func diffTemplates(old, cur *corev1.PodTemplateSpec, path *field.Path, fix string) field.ErrorList {
	oldCode, curCode := WorkerCodeJSON(old), WorkerCodeJSON(cur)
	if bytes.Equal(oldCode, curCode) {
		return nil
	}
	was, err := decodeCode(oldCode)
	if err != nil {
		panic(err) // WorkerCodeJSON writes JSON
	}
	now, err := decodeCode(curCode)
	if err != nil {
		panic(err)
	}
	return diffCode(was, now, path, fix)
}

// carriesBuildID tells whether a workload carries a build id, on itself or on its pod template.
func carriesBuildID(meta metav1.Object, tmpl *corev1.PodTemplateSpec) bool {
	if meta == nil {
		return false
	}
	if _, ok := meta.GetLabels()[LabelBuildID]; ok {
		return true
	}
	_, ok := tmpl.Labels[LabelBuildID]
	return ok
}

// ValidateBuildCarrier checks a workload other than a Deployment that a requester who is not a
// trusted identity writes: the pods of a build are made only by the ReplicaSets the Deployment
// controller makes from the worker's Deployment. A ReplicaSet that carries a build id, on itself
// or its pod template, is not created by hand, and its code does not change; other kinds do not
// carry one in their pod template. old is nil on create.
func (t *TemporalPolicy) ValidateBuildCarrier(obj, old metav1.Object) field.ErrorList {
	if _, ok := obj.(*appsv1.Deployment); ok {
		return nil
	}
	tmpl, root, _ := PodTemplate(obj)
	if tmpl == nil {
		return nil
	}
	labelPath := root.Child("metadata", "labels").Key(LabelBuildID)
	rs, isRS := obj.(*appsv1.ReplicaSet)
	if !isRS {
		if _, ok := tmpl.Labels[LabelBuildID]; ok {
			return field.ErrorList{field.Forbidden(labelPath, "only Temporal worker Deployments carry a build id in their pod template, which their ReplicaSets copy: "+controllerMade)}
		}
		return nil
	}
	prev, _ := old.(*appsv1.ReplicaSet)
	switch {
	case prev == nil && carriesBuildID(rs, &rs.Spec.Template):
		path := labelPath
		if _, ok := rs.Labels[LabelBuildID]; ok {
			path = field.NewPath("metadata", "labels").Key(LabelBuildID)
		}
		return field.ErrorList{field.Forbidden(path, "a ReplicaSet of a Temporal build is not created by hand: "+controllerMade)}
	case prev != nil && (carriesBuildID(prev, &prev.Spec.Template) || carriesBuildID(rs, &rs.Spec.Template)):
		errs := ValidateISSMetadataUnchanged(&metav1.ObjectMeta{Labels: onlyKey(prev.Labels, LabelBuildID)}, &metav1.ObjectMeta{Labels: onlyKey(rs.Labels, LabelBuildID)}, nil)
		return append(errs, diffTemplates(&prev.Spec.Template, &rs.Spec.Template, root, controllerMade)...)
	}
	return nil
}

// onlyKey returns the entry of m under key, alone.
func onlyKey(m map[string]string, key string) map[string]string {
	if v, ok := m[key]; ok {
		return map[string]string{key: v}
	}
	return nil
}

// ValidateWorkerPod checks a pod that a requester who is not a trusted identity creates or
// updates (not through a subresource); old is nil on create. A pod that carries a build id is
// made by its ReplicaSet, not by hand; the code of one (WorkerCode of its spec) does not change,
// whatever the pod's own API lets change (images, activeDeadlineSeconds). Its labels are guarded
// as every pod's ISS labels are.
func (t *TemporalPolicy) ValidateWorkerPod(old, cur *corev1.Pod) field.ErrorList {
	path := field.NewPath("metadata", "labels").Key(LabelBuildID)
	if old == nil {
		if _, ok := cur.Labels[LabelBuildID]; ok {
			return field.ErrorList{field.Forbidden(path, "a pod of a Temporal build is not created by hand: "+controllerMade+
				"; to debug one, kubectl debug --copy-to makes a copy without its labels, outside the build")}
		}
		return nil
	}
	_, was := old.Labels[LabelBuildID]
	_, is := cur.Labels[LabelBuildID]
	if !was && !is {
		return nil
	}
	return diffTemplates(&corev1.PodTemplateSpec{Spec: withoutEphemeral(&old.Spec)}, &corev1.PodTemplateSpec{Spec: withoutEphemeral(&cur.Spec)}, nil, controllerMade)
}

// withoutEphemeral returns a copy of a pod spec without its ephemeral containers, which only
// their subresource changes.
func withoutEphemeral(spec *corev1.PodSpec) corev1.PodSpec {
	s := *spec
	s.EphemeralContainers = nil
	return s
}

// ValidateWorkerEphemeralContainers checks ephemeral containers (kubectl debug) that a requester
// who is not a trusted identity adds to a pod of a Temporal build: denied, since a debug
// container runs other code inside the build, beside its processes and volumes. Trusted
// identities may debug a build's pods; others debug a copy (kubectl debug --copy-to).
func (t *TemporalPolicy) ValidateWorkerEphemeralContainers(old, cur *corev1.Pod) field.ErrorList {
	if _, ok := cur.Labels[LabelBuildID]; !ok {
		if _, ok := old.Labels[LabelBuildID]; !ok {
			return nil
		}
	}
	var errs field.ErrorList
	for i, c := range cur.Spec.EphemeralContainers {
		if i < len(old.Spec.EphemeralContainers) && equality.Semantic.DeepEqual(old.Spec.EphemeralContainers[i], c) {
			continue
		}
		errs = append(errs, field.Forbidden(field.NewPath("spec", "ephemeralContainers").Index(i), fmt.Sprintf(
			"ephemeral container %q would run other code inside a pod of Temporal build %q: debug a copy outside the build (kubectl debug --copy-to, which drops the pod's labels), or ask a cluster admin", c.Name, cur.Labels[LabelBuildID])))
	}
	return errs
}
