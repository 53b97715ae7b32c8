package policy

import (
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ValidateWorkload checks the pod template of a Deployment, StatefulSet, DaemonSet, ReplicaSet,
// Job, CronJob, ReplicationController or PodTemplate with the engine pod rules (design.md section 1), so that `kubectl apply` of a
// chart with an off-profile engine fails at once, with the field path inside the template,
// instead of its controller failing to create pods later. Templates are validated, never
// mutated: their pods are mutated when they are created. It returns nil for other objects, and
// the warnings of what the rules admit but cannot bound.
func (p *Policy) ValidateWorkload(obj any) (field.ErrorList, []string) {
	tmpl, root, claims := PodTemplate(obj)
	if tmpl == nil {
		return nil, nil
	}
	eng, _, errs := p.reviewEnginePod(&tmpl.ObjectMeta, &tmpl.Spec, claims, root)
	if _, has := tmpl.Labels[LabelEgressPolicy]; has {
		// The webhook sets it on each pod; in a template (copied from a pod) it would be
		// overwritten, and if a selector used it the controller would create pods without end.
		errs = append(errs, field.Forbidden(root.Child("metadata", "labels").Key(LabelEgressPolicy),
			"iss-webhook sets this label on each engine pod: remove it from the template"))
	}
	return errs, eng.Warnings
}

// PodTemplate returns the pod template of a workload, its field path, and the volume claim
// templates of a StatefulSet; a nil template for objects of other kinds. It is the one place
// that knows where each kind keeps its template.
func PodTemplate(obj any) (*corev1.PodTemplateSpec, *field.Path, []corev1.PersistentVolumeClaim) {
	template := field.NewPath("spec", "template")
	switch w := obj.(type) {
	case *appsv1.Deployment:
		return &w.Spec.Template, template, nil
	case *appsv1.StatefulSet:
		return &w.Spec.Template, template, w.Spec.VolumeClaimTemplates
	case *appsv1.DaemonSet:
		return &w.Spec.Template, template, nil
	case *appsv1.ReplicaSet:
		return &w.Spec.Template, template, nil
	case *batchv1.Job:
		return &w.Spec.Template, template, nil
	case *batchv1.CronJob:
		return &w.Spec.JobTemplate.Spec.Template, field.NewPath("spec", "jobTemplate", "spec", "template"), nil
	case *corev1.ReplicationController:
		if w.Spec.Template == nil {
			return nil, nil, nil
		}
		return w.Spec.Template, template, nil
	case *corev1.PodTemplate:
		// A PodTemplate creates no pod itself; controllers copy it, so it fails fast like a
		// workload's template.
		return &w.Template, field.NewPath("template"), nil
	}
	return nil, nil, nil
}

// WorkloadTemplate returns what of a workload decides the pods it creates: its pod template and,
// for a StatefulSet, its volume claim templates. It returns nil for other objects.
func WorkloadTemplate(obj any) any {
	tmpl, _, claims := PodTemplate(obj)
	if tmpl == nil {
		return nil
	}
	return []any{tmpl, claims}
}
