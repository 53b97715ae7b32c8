package policy

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestValidateWorkload(t *testing.T) {
	engine := corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "dagger-engine", Image: "registry.dagger.io/engine:v0.19.7"}}}}
	greedy := *engine.DeepCopy()
	greedy.Spec.Containers[0].Resources.Limits = resources("cpu", "8")
	labelled := *engine.DeepCopy()
	labelled.Labels = map[string]string{LabelEgressPolicy: "x"}
	turbo := *engine.DeepCopy()
	turbo.Annotations = map[string]string{AnnotationProfile: "turbo"}
	plain := corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx", Resources: corev1.ResourceRequirements{Limits: resources("cpu", "64")}}}}}
	bigClaim := corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data"},
		Spec: corev1.PersistentVolumeClaimSpec{Resources: corev1.VolumeResourceRequirements{Requests: resources("storage", "100Gi")}}}

	var fiveClaims []corev1.PersistentVolumeClaim
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		fiveClaims = append(fiveClaims, corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: n},
			Spec: corev1.PersistentVolumeClaimSpec{Resources: corev1.VolumeResourceRequirements{Requests: resources("storage", "10Gi")}}})
	}
	for _, tc := range []struct {
		name string
		obj  any
		want []wantErr
	}{
		{"conforming chart DaemonSet", &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{Template: engine}}, nil},
		{"off-profile Deployment", &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Template: greedy}},
			[]wantErr{{"spec.template.spec.containers[0].resources.limits[cpu]", "fixes it at 2"}}},
		{"StatefulSet with a claim above the profile's storage", &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Template: engine, VolumeClaimTemplates: []corev1.PersistentVolumeClaim{bigClaim}}},
			[]wantErr{{"spec.volumeClaimTemplates[0].spec.resources.requests[storage]", `ask for 100Gi in all`}}},
		{"StatefulSet with five claims, each within the profile's storage, 50Gi in all", &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Template: engine, VolumeClaimTemplates: fiveClaims}},
			[]wantErr{{"spec.volumeClaimTemplates", `ask for 50Gi in all`}}},
		{"CronJob with an unknown profile", &batchv1.CronJob{Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: turbo}}}},
			[]wantErr{{"spec.jobTemplate.spec.template.metadata.annotations[iss.platform/profile]", "unknown quota profile"}}},
		{"egress label in a template", &batchv1.Job{Spec: batchv1.JobSpec{Template: labelled}},
			[]wantErr{{"spec.template.metadata.labels[iss.platform/egress-policy]", "remove it from the template"}}},
		{"plain ReplicaSet", &appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{Template: plain}}, nil},
		{"not a workload", &corev1.Pod{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs, _ := Default().ValidateWorkload(tc.obj)
			checkErrs(t, errs, tc.want)
		})
	}
}
