package policy

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func worker(build, tmplBuild, image string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "orders-worker-v7", Labels: map[string]string{LabelComponent: TemporalWorkerComponent, LabelBuildID: build}},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{LabelBuildID: tmplBuild}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "worker", Image: image, Args: []string{"--queue", "orders"}}}},
		}},
	}
}

func TestValidateTemporalWorker(t *testing.T) {
	v7 := worker("v7", "v7", "registry.example.org/orders:v7")
	scaled := v7.DeepCopy()
	scaled.Spec.Replicas = ptr.To[int32](10)
	restarted := v7.DeepCopy()
	restarted.Spec.Template.Annotations = map[string]string{"kubectl.kubernetes.io/restartedAt": "2026-11-28T18:00:00Z"}
	restarted.Spec.Template.Spec.Containers[0].Resources.Limits = resources("cpu", "2")
	newImage := v7.DeepCopy()
	newImage.Spec.Template.Spec.Containers[0].Image = "registry.example.org/orders:v8"
	newEnv := v7.DeepCopy()
	newEnv.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "FLAG", Value: "1"}}
	newBuild := worker("v8", "v8", "registry.example.org/orders:v7")
	notWorker := v7.DeepCopy()
	delete(notWorker.Labels, LabelComponent)

	for _, tc := range []struct {
		name     string
		old, cur *appsv1.Deployment
		want     []wantErr
	}{
		{"new worker", nil, v7, nil},
		{"build id missing", nil, worker("", "", "x"), []wantErr{{"metadata.labels[iss.platform/build-id]", "set it here and on the pod template"}}},
		{"template build id differs", nil, worker("v7", "v6", "x"), []wantErr{{"spec.template.metadata.labels[iss.platform/build-id]", `must equal the Deployment's iss.platform/build-id "v7"`}}},
		{"kubectl scale", v7, scaled, nil},
		{"kubectl rollout restart and a resource change", v7, restarted, nil},
		{"kubectl set image", v7, newImage, []wantErr{{"spec.template.spec.containers[0].image", "deploy the new build as a new Deployment"}}},
		{"env change", v7, newEnv, []wantErr{{"spec.template.spec.containers[0].env", "blue/green"}}},
		{"build id change", v7, newBuild, []wantErr{{"metadata.labels[iss.platform/build-id]", `changed from "v7" to "v8"`}}},
		{"no longer a worker", v7, notWorker, []wantErr{{"metadata.labels", "stays one"}}},
		{"not a worker", nil, notWorker, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := DefaultTemporalPolicy()
			checkErrs(t, tp.ValidateTemporalWorker(tc.old, tc.cur), tc.want)
		})
	}
}
