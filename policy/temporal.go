package policy

import (
	"errors"
	"fmt"

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
	LabelBuildID + ", and let this one drain the workflows it started; scaling, restarts and resource changes stay allowed"

// TemporalPolicy says which Deployments are Temporal workers.
type TemporalPolicy struct {
	// Selector selects worker Deployments by their labels.
	Selector *metav1.LabelSelector
	selector labels.Selector
}

// DefaultTemporalPolicy selects Deployments labelled iss.platform/component: temporal-worker.
func DefaultTemporalPolicy() TemporalPolicy {
	t, err := NewTemporalPolicy(&metav1.LabelSelector{MatchLabels: map[string]string{LabelComponent: TemporalWorkerComponent}})
	if err != nil {
		panic(err) // a constant, valid selector
	}
	return t
}

// NewTemporalPolicy returns the policy of workers that sel selects. An empty selector, which
// would select every Deployment, is an error.
func NewTemporalPolicy(sel *metav1.LabelSelector) (TemporalPolicy, error) {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return TemporalPolicy{}, err
	}
	if s.Empty() {
		return TemporalPolicy{}, errors.New("an empty selector would make every Deployment a Temporal worker: select the workers, such as matchLabels: {iss.platform/component: temporal-worker}")
	}
	return TemporalPolicy{Selector: sel.DeepCopy(), selector: s}, nil
}

// IsWorker tells whether a Deployment is a Temporal worker.
func (t *TemporalPolicy) IsWorker(d *appsv1.Deployment) bool {
	return d != nil && t.selector != nil && t.selector.Matches(labels.Set(d.Labels))
}

// ValidateTemporalWorker checks a Temporal worker Deployment (design.md 4.5): its build id, on
// itself and on its pod template, equal; and, on update, the same build id and the same images,
// commands, args, env and envFrom in every container. old is nil on create.
func (t *TemporalPolicy) ValidateTemporalWorker(old, cur *appsv1.Deployment) field.ErrorList {
	if !t.IsWorker(cur) && !t.IsWorker(old) {
		return nil
	}
	labelsPath := field.NewPath("metadata", "labels")
	if t.IsWorker(old) && !t.IsWorker(cur) {
		return field.ErrorList{field.Forbidden(labelsPath, fmt.Sprintf("a Temporal worker stays one (the policy selects workers by %s): %s", metav1.FormatLabelSelector(t.Selector), blueGreen))}
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
	if old == nil {
		return errs
	}
	if before := old.Labels[LabelBuildID]; before != "" && before != build {
		errs = append(errs, field.Forbidden(labelsPath.Key(LabelBuildID), fmt.Sprintf("changed from %q to %q: %s", before, build, blueGreen)))
	}
	spec := field.NewPath("spec", "template", "spec")
	errs = append(errs, sameContainers(old.Spec.Template.Spec.InitContainers, cur.Spec.Template.Spec.InitContainers, spec.Child("initContainers"))...)
	errs = append(errs, sameContainers(old.Spec.Template.Spec.Containers, cur.Spec.Template.Spec.Containers, spec.Child("containers"))...)
	return errs
}

// sameContainers denies changed images, commands, args and env, and added or removed containers.
func sameContainers(old, cur []corev1.Container, path *field.Path) field.ErrorList {
	if len(old) != len(cur) {
		return field.ErrorList{field.Forbidden(path, fmt.Sprintf("%d containers became %d: %s", len(old), len(cur), blueGreen))}
	}
	var errs field.ErrorList
	for i := range cur {
		o, c := &old[i], &cur[i]
		p := path.Index(i)
		if o.Name != c.Name {
			errs = append(errs, field.Forbidden(p.Child("name"), fmt.Sprintf("container %q became %q: %s", o.Name, c.Name, blueGreen)))
			continue
		}
		if o.Image != c.Image {
			errs = append(errs, field.Forbidden(p.Child("image"), fmt.Sprintf("image changed from %s to %s: %s", o.Image, c.Image, blueGreen)))
		}
		for _, f := range []struct {
			name     string
			old, cur any
		}{{"command", o.Command, c.Command}, {"args", o.Args, c.Args}, {"env", o.Env, c.Env}, {"envFrom", o.EnvFrom, c.EnvFrom}} {
			if !equality.Semantic.DeepEqual(f.old, f.cur) {
				errs = append(errs, field.Forbidden(p.Child(f.name), fmt.Sprintf("the %s of container %q changed: %s", f.name, c.Name, blueGreen)))
			}
		}
	}
	return errs
}
