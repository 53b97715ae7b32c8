package policy

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// privates is a PrivateSecretLookup over a fixed table of namespace/name to users, and one of
// namespace/name to the objects that read the Secret.
type privates struct {
	users   map[string][]string
	readers map[string][]SecretReader
	err     error
	// watching and watchingPushes are what Watching returns for ExternalSecrets and PushSecrets.
	watching, watchingPushes error
}

func (f privates) SecretReaders(_ context.Context, namespace, name string) ([]SecretReader, error) {
	return f.readers[namespace+"/"+name], f.err
}

func (f privates) SecretUsers(_ context.Context, namespace, name string) ([]string, error) {
	return f.users[namespace+"/"+name], f.err
}

func (f privates) PrivateSecrets(_ context.Context, namespace string) (map[string][]string, error) {
	out := map[string][]string{}
	for key, u := range f.users {
		if ns, name, _ := strings.Cut(key, "/"); ns == namespace {
			out[name] = u
		}
	}
	return out, f.err
}

func (f privates) Watching(_ context.Context, kind string) error {
	if kind == KindPushSecret {
		return f.watchingPushes
	}
	return f.watching
}

// cachedPods is a PodLookup over a fixed list of team-a-dev's pods.
type cachedPods []CachedPod

func (c cachedPods) Pod(_ context.Context, namespace, name string) (CachedPod, bool, error) {
	for _, p := range c {
		if namespace == "team-a-dev" && p.Name == name {
			return p, true, nil
		}
	}
	return CachedPod{}, false, nil
}

func (c cachedPods) PodsReferencing(_ context.Context, namespace, secret string) ([]CachedPod, error) {
	var out []CachedPod
	for _, p := range c {
		if namespace == "team-a-dev" && slices.Contains(p.Secrets, secret) {
			out = append(out, p)
		}
	}
	return out, nil
}

// teamA: alice's private s and iss-api-token (an engine key), bob's b, a public Secret isn't
// listed.
var teamA = privates{users: map[string][]string{
	"team-a-dev/s":             {"alice"},
	"team-a-dev/iss-api-token": {"alice"},
	"team-a-dev/b":             {"bob"},
	"team-a-dev/both":          {"alice", "bob"},
}}

var teamAPods = cachedPods{
	{Name: "alices", Owner: "alice", Secrets: []string{"s"}},
	{Name: "plain", Owner: "bob", Secrets: []string{"public"}},
	{Name: "bobs-waiting", Owner: "bob", Secrets: []string{"future"}},
	{Name: "bobs-derived", Owner: "bob", Secrets: []string{"alices-derived"}},
}

func userRequest(op Operation, sub, user string) *Request {
	return &Request{Operation: op, SubResource: sub, Namespace: "team-a-dev", Name: "p", User: user,
		Facts: Facts{Namespaces: appNamespaces{}, PrivateSecrets: teamA, Pods: teamAPods}}
}

func ownedPod(owner string, change func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "team-a-dev"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "busybox"}}}}
	if owner != "" {
		p.Annotations = map[string]string{AnnotationInitiatorID: owner}
	}
	if change != nil {
		change(p)
	}
	return p
}

func secretVolume(name string) corev1.Volume {
	return corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: name}}}
}

func secretEnv(name string) corev1.EnvVar {
	return corev1.EnvVar{Name: "E", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: "k"}}}
}

// integrityFields returns the fields of an outcome's integrity findings, and its refusal.
func integrityFields(out Outcome) ([]string, string) {
	var fields []string
	for _, f := range out.Findings {
		if f.Group == RuleIntegrity {
			for _, e := range f.Errors {
				fields = append(fields, e.Field)
			}
		}
	}
	refusal := ""
	if out.Refusal != nil {
		refusal = out.Refusal.Message
	}
	return fields, refusal
}

// TestPrivateSecretsOfPods: every field through which a pod uses a Secret, by its owner, another
// user, nobody, a shared engine, on create, update, debug containers and connect.
func TestPrivateSecretsOfPods(t *testing.T) {
	p := Default()
	daemonSet := func(pod *corev1.Pod) {
		pod.Labels = map[string]string{LabelEngine: EngineLabelValue, LabelEgressPolicy: Allowlist{}.Hash()}
		pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "engines", UID: "u", Controller: ptr.To(true)}}
	}
	for _, tc := range []struct {
		name   string
		req    *Request
		pod    *corev1.Pod
		old    *corev1.Pod
		fields []string
		// refusal is part of the refusal's message, when there is one.
		refusal string
	}{
		{"alice's pod mounts her Secret", userRequest(Create, "", "alice"),
			ownedPod("alice", func(p *corev1.Pod) { p.Spec.Volumes = []corev1.Volume{secretVolume("s")} }), nil, nil, ""},
		{"bob's pod mounts alice's", userRequest(Create, "", "bob"),
			ownedPod("bob", func(p *corev1.Pod) { p.Spec.Volumes = []corev1.Volume{secretVolume("s")} }), nil,
			[]string{"spec.volumes[0].secret.secretName"}, ""},
		{"bob's pod projects it", userRequest(Create, "", "bob"), ownedPod("bob", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}}},
			}}}}}
		}), nil, []string{"spec.volumes[0].projected.sources[1].secret.name"}, ""},
		{"bob's pod takes env from it, in every kind of container", userRequest(Create, "", "bob"), ownedPod("bob", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "PLAIN", Value: "x"}, secretEnv("s")}
			p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}}}}
			p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "busybox", Env: []corev1.EnvVar{secretEnv("s")}}}
		}), nil, []string{"spec.initContainers[0].env[0].valueFrom.secretKeyRef.name", "spec.containers[0].envFrom[0].secretRef.name", "spec.containers[0].env[1].valueFrom.secretKeyRef.name"}, ""},
		{"bob's pod pulls images with it and hands it to volume drivers", userRequest(Create, "", "bob"), ownedPod("bob", func(p *corev1.Pod) {
			p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "s"}}
			p.Spec.Volumes = []corev1.Volume{
				{Name: "csi", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: "d", NodePublishSecretRef: &corev1.LocalObjectReference{Name: "s"}}}},
				{Name: "az", VolumeSource: corev1.VolumeSource{AzureFile: &corev1.AzureFileVolumeSource{SecretName: "s", ShareName: "x"}}},
				{Name: "flex", VolumeSource: corev1.VolumeSource{FlexVolume: &corev1.FlexVolumeSource{Driver: "d", SecretRef: &corev1.LocalObjectReference{Name: "s"}}}},
				{Name: "iscsi", VolumeSource: corev1.VolumeSource{ISCSI: &corev1.ISCSIVolumeSource{TargetPortal: "t", IQN: "i", SecretRef: &corev1.LocalObjectReference{Name: "s"}}}},
				{Name: "rbd", VolumeSource: corev1.VolumeSource{RBD: &corev1.RBDVolumeSource{CephMonitors: []string{"m"}, RBDImage: "i", SecretRef: &corev1.LocalObjectReference{Name: "s"}}}},
				{Name: "ceph", VolumeSource: corev1.VolumeSource{CephFS: &corev1.CephFSVolumeSource{Monitors: []string{"m"}, SecretRef: &corev1.LocalObjectReference{Name: "s"}}}},
				{Name: "cinder", VolumeSource: corev1.VolumeSource{Cinder: &corev1.CinderVolumeSource{VolumeID: "v", SecretRef: &corev1.LocalObjectReference{Name: "s"}}}},
				{Name: "scaleio", VolumeSource: corev1.VolumeSource{ScaleIO: &corev1.ScaleIOVolumeSource{Gateway: "g", System: "s", SecretRef: &corev1.LocalObjectReference{Name: "s"}}}},
				{Name: "storageos", VolumeSource: corev1.VolumeSource{StorageOS: &corev1.StorageOSVolumeSource{VolumeName: "v", SecretRef: &corev1.LocalObjectReference{Name: "s"}}}},
			}
		}), nil, []string{"spec.imagePullSecrets[0].name", "spec.volumes[0].csi.nodePublishSecretRef.name", "spec.volumes[1].azureFile.secretName",
			"spec.volumes[2].flexVolume.secretRef.name", "spec.volumes[3].iscsi.secretRef.name", "spec.volumes[4].rbd.secretRef.name",
			"spec.volumes[5].cephfs.secretRef.name", "spec.volumes[6].cinder.secretRef.name", "spec.volumes[7].scaleIO.secretRef.name", "spec.volumes[8].storageos.secretRef.name"}, ""},
		{"a Secret private to two users is nobody's to use", userRequest(Create, "", "alice"),
			ownedPod("alice", func(p *corev1.Pod) { p.Spec.Volumes = []corev1.Volume{secretVolume("both")} }), nil, []string{"spec.volumes[0].secret.secretName"}, ""},
		{"public Secrets are anyone's", userRequest(Create, "", "bob"),
			ownedPod("bob", func(p *corev1.Pod) { p.Spec.Volumes = []corev1.Volume{secretVolume("public")} }), nil, nil, ""},
		{"a pod without owner uses no private Secret, even a trusted identity's", func() *Request {
			r := userRequest(Create, "", "admin")
			r.Trusted = true
			return r
		}(), ownedPod("", func(p *corev1.Pod) { p.Spec.Volumes = []corev1.Volume{secretVolume("s")} }), nil, []string{"spec.volumes[0].secret.secretName"}, ""},
		{"bob forges alice as the owner", userRequest(Create, "", "bob"),
			ownedPod("alice", func(p *corev1.Pod) { p.Spec.Volumes = []corev1.Volume{secretVolume("s")} }), nil,
			[]string{"metadata.annotations[iss.platform/initiator-id]"}, ""},
		{"the ReplicaSet controller copies alice's template", userRequest(Create, "", "system:serviceaccount:kube-system:statefulset-controller"),
			ownedPod("alice", func(p *corev1.Pod) { p.Spec.Volumes = []corev1.Volume{secretVolume("s")} }), nil, nil, ""},
		{"a pod copied from bob's template that uses a Secret made alice's since", userRequest(Create, "", "system:serviceaccount:kube-system:replicaset-controller"),
			ownedPod("bob", func(p *corev1.Pod) { p.Spec.Volumes = []corev1.Volume{secretVolume("s")} }), nil, []string{"spec.volumes[0].secret.secretName"}, ""},
		{"a shared engine with alice's Secret, by its key and by a volume", userRequest(Create, "", "system:serviceaccount:kube-system:daemon-set-controller"),
			ownedPod("alice", func(p *corev1.Pod) {
				daemonSet(p)
				p.Annotations[AnnotationSecrets] = "API_TOKEN"
				p.Spec.Containers[0] = corev1.Container{Name: "dagger-engine", Image: "registry.dagger.io/engine:v0.19.7"}
				p.Spec.Volumes = []corev1.Volume{secretVolume("s"), secretVolume("public")}
			}), nil, []string{"spec.volumes[0].secret.secretName", "metadata.annotations[iss.platform/secrets]"}, ""},
		{"a volume type this build does not know, beside another user's Secrets", userRequest(Create, "", "bob"),
			ownedPod("bob", func(p *corev1.Pod) { p.Spec.Volumes = []corev1.Volume{{Name: "future"}} }), nil, []string{"spec.volumes[0]"}, ""},
		{"the index cannot tell", func() *Request {
			r := userRequest(Create, "", "bob")
			r.Facts.PrivateSecrets = privates{err: errors.New("not synced")}
			return r
		}(), ownedPod("bob", func(p *corev1.Pod) { p.Spec.Volumes = []corev1.Volume{secretVolume("public")} }), nil, nil, "cannot tell which Secrets are private"},

		{"bob changes the image of alice's pod", userRequest(Update, "", "bob"),
			ownedPod("alice", func(p *corev1.Pod) {
				p.Spec.Volumes = []corev1.Volume{secretVolume("s")}
				p.Spec.Containers[0].Image = "evil"
			}),
			ownedPod("alice", func(p *corev1.Pod) { p.Spec.Volumes = []corev1.Volume{secretVolume("s")} }), []string{"spec.volumes[0].secret.secretName"}, ""},
		{"alice changes the image of her pod", userRequest(Update, "", "alice"),
			ownedPod("alice", func(p *corev1.Pod) {
				p.Spec.Volumes = []corev1.Volume{secretVolume("s")}
				p.Spec.Containers[0].Image = "new"
			}),
			ownedPod("alice", func(p *corev1.Pod) { p.Spec.Volumes = []corev1.Volume{secretVolume("s")} }), nil, ""},
		{"bob labels alice's pod", userRequest(Update, "", "bob"),
			ownedPod("alice", func(p *corev1.Pod) {
				p.Spec.Volumes = []corev1.Volume{secretVolume("s")}
				p.Labels = map[string]string{"team": "a"}
			}),
			ownedPod("alice", func(p *corev1.Pod) { p.Spec.Volumes = []corev1.Volume{secretVolume("s")} }), nil, ""},
		{"bob debugs alice's pod", userRequest(Update, "ephemeralcontainers", "bob"),
			ownedPod("alice", func(p *corev1.Pod) {
				p.Spec.Volumes = []corev1.Volume{secretVolume("s")}
				p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox"}}}
			}),
			ownedPod("alice", func(p *corev1.Pod) { p.Spec.Volumes = []corev1.Volume{secretVolume("s")} }), []string{"spec.volumes[0].secret.secretName"}, ""},
		{"alice debugs her pod, but takes bob's Secret into the debug container", userRequest(Update, "ephemeralcontainers", "alice"),
			ownedPod("alice", func(p *corev1.Pod) {
				p.Spec.Volumes = []corev1.Volume{secretVolume("s")}
				p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox", Env: []corev1.EnvVar{secretEnv("b")}}}}
			}),
			ownedPod("alice", func(p *corev1.Pod) { p.Spec.Volumes = []corev1.Volume{secretVolume("s")} }), []string{"spec.ephemeralContainers[0].env[0].valueFrom.secretKeyRef.name"}, ""},

		{"bob execs into alice's pod", func() *Request { r := userRequest(Connect, "exec", "bob"); r.Name = "alices"; return r }(), nil, nil, nil,
			`pod team-a-dev/alices uses Secrets synced from private paths of other users: "s" (private to "alice"); you are "bob", and only those users (or a trusted identity) may exec into it`},
		{"bob attaches to alice's pod", func() *Request { r := userRequest(Connect, "attach", "bob"); r.Name = "alices"; return r }(), nil, nil, nil, "may attach to it"},
		{"bob port-forwards to alice's pod", func() *Request { r := userRequest(Connect, "portforward", "bob"); r.Name = "alices"; return r }(), nil, nil, nil, "may port-forward to it"},
		{"alice execs into hers", func() *Request { r := userRequest(Connect, "exec", "alice"); r.Name = "alices"; return r }(), nil, nil, nil, ""},
		{"bob execs into a pod of public Secrets", func() *Request { r := userRequest(Connect, "exec", "bob"); r.Name = "plain"; return r }(), nil, nil, nil, ""},
		{"a pod the cache does not know", func() *Request { r := userRequest(Connect, "exec", "bob"); r.Name = "nowhere"; return r }(), nil, nil, nil, ""},
		{"a trusted identity execs", func() *Request {
			r := userRequest(Connect, "exec", "admin")
			r.Name = "alices"
			r.Trusted = true
			return r
		}(), nil, nil, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := AdmitPodSecrets(context.Background(), p, tc.req, tc.pod, tc.old)
			fields, refusal := integrityFields(out)
			slices.Sort(fields)
			want := slices.Sorted(slices.Values(tc.fields))
			if !slices.Equal(fields, want) {
				t.Errorf("integrity fields %v, want %v (%+v)", fields, want, out.Findings)
			}
			if tc.refusal == "" && refusal != "" || !strings.Contains(refusal, tc.refusal) {
				t.Errorf("refusal %q, want one with %q", refusal, tc.refusal)
			}
		})
	}
}

// TestPrivateSecretMessages: a denial says whose the Secret is, who the pod's owner is and what
// to do.
func TestPrivateSecretMessages(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    PrivateSecretCheck
		want string
	}{
		{"another owner", PrivateSecretCheck{Owner: "bob"}, `this pod mounts it, but Secret "s" is private to "alice" (an ExternalSecret syncs it from users/alice/...), and its owner (iss.platform/initiator-id at metadata.annotations[iss.platform/initiator-id]) is "bob": only the user's own pods may use it`},
		{"no owner", PrivateSecretCheck{}, `a pod without owner (iss.platform/initiator-id) may use no private Secret: create it as "alice"`},
		{"shared", PrivateSecretCheck{Owner: "alice", Shared: true}, "shared engines may carry no private Secret"},
		{"another requester", PrivateSecretCheck{Owner: "alice", Requester: "bob", Action: "change this pod"}, `only "alice" (or a trusted identity) may change this pod, which could make it reveal the Secret, and you are "bob"`},
	} {
		c := tc.c
		c.Namespace, c.What, c.OwnerPath = "team-a-dev", "pod", field.NewPath("metadata", "annotations").Key(AnnotationInitiatorID)
		c.Refs = []SecretReference{{Name: "s", Field: field.NewPath("spec", "volumes").Index(0), Use: "mounts it"}}
		errs, _ := ValidatePrivateSecrets(context.Background(), teamA, c)
		if len(errs) != 1 || !strings.Contains(errs[0].Detail, tc.want) {
			t.Errorf("%s: %v, want one error with %q", tc.name, errs, tc.want)
		}
	}
}

// TestPrivateSecretsOfTemplates: the same for the pod templates of workloads, with the owner's
// binding on update and shared engine DaemonSets.
func TestPrivateSecretsOfTemplates(t *testing.T) {
	p := Default()
	deployment := func(owner string, change func(*corev1.PodTemplateSpec)) *appsv1.Deployment {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "team-a-dev"}}
		pod := ownedPod(owner, nil)
		d.Spec.Template = corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Annotations: pod.Annotations}, Spec: pod.Spec}
		if change != nil {
			change(&d.Spec.Template)
		}
		return d
	}
	mounts := func(name string) func(*corev1.PodTemplateSpec) {
		return func(t *corev1.PodTemplateSpec) { t.Spec.Volumes = []corev1.Volume{secretVolume(name)} }
	}
	for _, tc := range []struct {
		name     string
		req      *Request
		obj, old any
		fields   []string
	}{
		{"alice's Deployment mounts her Secret", userRequest(Create, "", "alice"), deployment("alice", mounts("s")), nil, nil},
		{"bob's Deployment mounts alice's", userRequest(Create, "", "bob"), deployment("bob", mounts("s")), nil, []string{"spec.template.spec.volumes[0].secret.secretName"}},
		{"bob's Deployment names alice its owner", userRequest(Create, "", "bob"), deployment("alice", mounts("s")), nil, []string{"spec.template.metadata.annotations[iss.platform/initiator-id]"}},
		{"bob changes alice's Deployment that mounts her Secret", userRequest(Update, "", "bob"),
			deployment("alice", func(t *corev1.PodTemplateSpec) {
				mounts("s")(t)
				t.Spec.Containers[0].Command = []string{"cat", "/s/k"}
			}),
			deployment("alice", mounts("s")), []string{"spec.template.spec.volumes[0].secret.secretName"}},
		{"bob takes alice's Deployment over", userRequest(Update, "", "bob"), deployment("bob", mounts("s")), deployment("alice", mounts("s")),
			[]string{"spec.template.metadata.annotations[iss.platform/initiator-id]", "spec.template.spec.volumes[0].secret.secretName"}},
		{"bob changes alice's Deployment of public Secrets", userRequest(Update, "", "bob"),
			deployment("alice", func(t *corev1.PodTemplateSpec) { mounts("public")(t); t.Spec.Containers[0].Image = "new" }), deployment("alice", mounts("public")), nil},
		{"alice changes hers", userRequest(Update, "", "alice"),
			deployment("alice", func(t *corev1.PodTemplateSpec) { mounts("s")(t); t.Spec.Containers[0].Image = "new" }), deployment("alice", mounts("s")), nil},
		{"the Deployment controller makes alice's ReplicaSet", userRequest(Create, "", "system:serviceaccount:kube-system:deployment-controller"),
			&appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{Template: deployment("alice", mounts("s")).Spec.Template}}, nil, nil},
		{"bob's CronJob", userRequest(Create, "", "bob"),
			&batchv1.CronJob{Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: deployment("bob", mounts("s")).Spec.Template}}}}, nil,
			[]string{"spec.jobTemplate.spec.template.spec.volumes[0].secret.secretName"}},
		{"alice's engine DaemonSet carries her key", userRequest(Create, "", "alice"),
			&appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{Template: deployment("alice", func(t *corev1.PodTemplateSpec) {
				t.Annotations[AnnotationSecrets] = "API_TOKEN"
				t.Spec.Containers[0] = corev1.Container{Name: "dagger-engine", Image: "registry.dagger.io/engine:v0.19.7"}
			}).Spec.Template}}, nil, []string{"spec.template.metadata.annotations[iss.platform/secrets]"}},
		{"alice's DaemonSet that is no engine mounts her Secret", userRequest(Create, "", "alice"),
			&appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{Template: deployment("alice", mounts("s")).Spec.Template}}, nil, nil},
		{"a PodTemplate without owner", userRequest(Create, "", "admin"), &corev1.PodTemplate{Template: deployment("", mounts("s")).Spec.Template}, nil, []string{"template.spec.volumes[0].secret.secretName"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := tc.obj.(metav1.Object)
			var old metav1.Object
			if tc.old != nil {
				old = tc.old.(metav1.Object)
			}
			fields, refusal := integrityFields(AdmitWorkloadSecrets(context.Background(), p, tc.req, obj, old))
			slices.Sort(fields)
			want := slices.Sorted(slices.Values(tc.fields))
			if !slices.Equal(fields, want) || refusal != "" {
				t.Errorf("integrity fields %v (refusal %q), want %v", fields, refusal, want)
			}
		})
	}
}

// TestPrivateSecretsOfExternalSecrets: PushSecrets and ExternalSecrets that read or write a
// Secret private to another user than their initiator, or would make private a Secret that
// pods of others use.
func TestPrivateSecretsOfExternalSecrets(t *testing.T) {
	p := Default()
	object := func(doc string) *SecretObject {
		obj := &SecretObject{}
		if err := obj.UnmarshalJSON([]byte(doc)); err != nil {
			t.Fatal(err)
		}
		return obj
	}
	es := func(initiator, spec string) *SecretObject {
		return object(`{"apiVersion":"external-secrets.io/v1","kind":"ExternalSecret","metadata":{"name":"es","namespace":"team-a-dev","annotations":{"iss.platform/initiator-id":"` + initiator + `"}},
			"spec":{"secretStoreRef":{"kind":"ClusterSecretStore","name":"openbao-dev"},` + spec + `}}`)
	}
	push := func(initiator, selector string) *SecretObject {
		return object(`{"apiVersion":"external-secrets.io/v1alpha1","kind":"PushSecret","metadata":{"name":"ps","namespace":"team-a-dev","annotations":{"iss.platform/initiator-id":"` + initiator + `"}},
			"spec":{"secretStoreRefs":[{"kind":"ClusterSecretStore","name":"openbao-dev"}],"selector":` + selector + `,
			"data":[{"match":{"secretKey":"k","remoteRef":{"remoteKey":"artifacts/team-a/public/secrets/out"}}}]}}`)
	}
	public := `"data":[{"secretKey":"k","remoteRef":{"key":"artifacts/team-a/public/secrets/x"}}]`
	alices := `"data":[{"secretKey":"k","remoteRef":{"key":"artifacts/team-a/users/alice/secrets/x"}}]`
	// Objects that already read Secrets nobody has made private yet.
	read := privates{users: teamA.users, readers: map[string][]SecretReader{
		"team-a-dev/pushed":   {{Kind: KindPushSecret, Name: "bobs-push", Initiator: "bob"}},
		"team-a-dev/rendered": {{Kind: KindExternalSecret, Name: "bobs-render", Initiator: "bob", Target: "bobs"}},
		"team-a-dev/old":      {{Kind: KindPushSecret, Name: "from-before", Initiator: ""}},
		"team-a-dev/hers":     {{Kind: KindPushSecret, Name: "alices-push", Initiator: "alice"}, {Kind: KindExternalSecret, Name: "alices-render", Initiator: "alice", Target: "alices-copy"}},
		"team-a-dev/chain":    {{Kind: KindExternalSecret, Name: "alices-chain", Initiator: "alice", Target: "alices-derived"}},
		"team-a-dev/chain2":   {{Kind: KindExternalSecret, Name: "alices-chain2", Initiator: "alice", Target: "chain3"}},
		"team-a-dev/chain3":   {{Kind: KindPushSecret, Name: "bobs-push3", Initiator: "bob"}},
		"team-a-dev/own":      {{Kind: KindExternalSecret, Name: "es", Initiator: "alice", Target: "own"}},
	}}
	for _, tc := range []struct {
		name    string
		user    string
		obj     *SecretObject
		lookup  PrivateSecretLookup
		fields  []string
		refusal string
	}{
		{"bob pushes alice's Secret", "bob", push("bob", `{"secret":{"name":"s"}}`), teamA, []string{"spec.selector.secret.name"}, ""},
		{"alice pushes hers", "alice", push("alice", `{"secret":{"name":"s"}}`), teamA, nil, ""},
		{"bob pushes Secrets selected by labels", "bob", push("bob", `{"secret":{"selector":{"matchLabels":{"a":"b"}}}}`), teamA, []string{"spec.selector.secret.selector"}, ""},
		{"bob templates alice's Secret into his", "bob", es("bob", `"target":{"name":"mine","template":{"templateFrom":[{"configMap":{"name":"c"}},{"secret":{"name":"s"}}]}},`+public), teamA,
			[]string{"spec.target.template.templateFrom[0].configMap", "spec.target.template.templateFrom[1].secret.name"}, ""},
		{"alice renders her private path with a ConfigMap's template anyone may rewrite", "alice", es("alice", `"target":{"name":"s","template":{"templateFrom":[{"configMap":{"name":"c"}}]}},`+alices), teamA,
			[]string{"spec.target.template.templateFrom[0].configMap"}, ""},
		{"alice renders her private path with a template from a Secret private to nobody", "alice", es("alice", `"target":{"name":"s","template":{"templateFrom":[{"secret":{"name":"public"}}]}},`+alices), teamA,
			[]string{"spec.target.template.templateFrom[0].secret.name"}, ""},
		{"alice renders her private path with her own private template", "alice", es("alice", `"target":{"name":"s","template":{"templateFrom":[{"secret":{"name":"s"}}],"data":{"k":"{{ .k }}"}}},`+alices), teamA, nil, ""},
		{"alice renders her public path with a ConfigMap's template", "alice", es("alice", `"target":{"name":"public","template":{"templateFrom":[{"configMap":{"name":"c"}}]}},`+public), teamA, nil, ""},
		{"alice pushes hers with a ConfigMap's template", "alice", object(`{"apiVersion":"external-secrets.io/v1alpha1","kind":"PushSecret","metadata":{"name":"ps","namespace":"team-a-dev","annotations":{"iss.platform/initiator-id":"alice"}},
			"spec":{"secretStoreRefs":[{"kind":"ClusterSecretStore","name":"openbao-dev"}],"selector":{"secret":{"name":"s"}},"template":{"templateFrom":[{"configMap":{"name":"c"}}]},
			"data":[{"match":{"secretKey":"k","remoteRef":{"remoteKey":"artifacts/team-a/users/alice/secrets/out"}}}]}}`), teamA, []string{"spec.template.templateFrom[0].configMap"}, ""},
		{"bob writes into alice's Secret", "bob", es("bob", `"target":{"name":"s","creationPolicy":"Merge"},`+public), teamA, []string{"spec.target.name"}, ""},
		{"bob's ExternalSecret named like alice's Secret", "bob", object(`{"apiVersion":"external-secrets.io/v1","kind":"ExternalSecret","metadata":{"name":"s","namespace":"team-a-dev","annotations":{"iss.platform/initiator-id":"bob"}},
			"spec":{"secretStoreRef":{"kind":"ClusterSecretStore","name":"openbao-dev"},` + public + `}}`), teamA, []string{"spec.target.name"}, ""},
		{"alice syncs her path into a Secret a pod of bob's waits for", "alice", es("alice", `"target":{"name":"future"},`+alices), teamA, []string{"spec.target.name"}, ""},
		{"alice syncs her path into her own Secret", "alice", es("alice", `"target":{"name":"s"},`+alices), teamA, nil, ""},
		{"alice templates hers into a Secret bob's pod waits for", "alice", es("alice", `"target":{"name":"future","template":{"templateFrom":[{"secret":{"name":"s"}}]}},`+public), teamA, []string{"spec.target.name"}, ""},
		{"alice's private path into a Secret that would outlive her ExternalSecret", "alice", es("alice", `"target":{"name":"s","creationPolicy":"Orphan"},`+alices), teamA,
			[]string{"spec.target.creationPolicy"}, ""},
		{"alice's public path merged into a Secret", "alice", es("alice", `"target":{"name":"public","creationPolicy":"Merge"},`+public), teamA, nil, ""},
		{"alice syncs her path into a Secret bob's PushSecret pushes", "alice", es("alice", `"target":{"name":"pushed"},`+alices), read, []string{"spec.target.name"}, ""},
		{"alice syncs her path into a Secret bob's ExternalSecret templates from", "alice", es("alice", `"target":{"name":"rendered"},`+alices), read, []string{"spec.target.name"}, ""},
		{"alice syncs her path into a Secret a PushSecret from before the webhook pushes", "alice", es("alice", `"target":{"name":"old"},`+alices), read, []string{"spec.target.name"}, ""},
		{"alice syncs her path into a Secret only her own objects read", "alice", es("alice", `"target":{"name":"hers"},`+alices), read, nil, ""},
		{"alice's Secret templated by her own ExternalSecret into one bob's pod uses", "alice", es("alice", `"target":{"name":"chain"},`+alices), read, []string{"spec.target.name"}, ""},
		{"alice's Secret templated by her own ExternalSecret into one bob pushes", "alice", es("alice", `"target":{"name":"chain2"},`+alices), read, []string{"spec.target.name"}, ""},
		{"alice's ExternalSecret templates from its own target", "alice", es("alice", `"target":{"name":"own"},`+alices), read, nil, ""},
		{"bob pushes his own Secret while the index does not watch PushSecrets", "bob", push("bob", `{"secret":{"name":"public"}}`),
			privates{users: teamA.users, watchingPushes: errors.New("not yet")}, nil, "not yet"},
		{"a private path while the index does not watch ExternalSecrets", "alice", es("alice", `"target":{"name":"new"},`+alices),
			privates{users: teamA.users, watching: errors.New("not yet")}, nil, "not yet"},
		{"a public path while the index does not watch ExternalSecrets", "alice", es("alice", `"target":{"name":"new"},`+public),
			privates{users: teamA.users, watching: errors.New("not yet")}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := userRequest(Create, "", tc.user)
			req.Facts.PrivateSecrets = tc.lookup
			out := AdmitExternalSecret(context.Background(), p, req, tc.obj, nil)
			fields, refusal := integrityFields(out)
			slices.Sort(fields)
			want := slices.Sorted(slices.Values(tc.fields))
			if !slices.Equal(fields, want) {
				t.Errorf("integrity fields %v, want %v (%+v)", fields, want, out.Findings)
			}
			if tc.refusal == "" && refusal != "" || !strings.Contains(refusal, tc.refusal) {
				t.Errorf("refusal %q, want one with %q", refusal, tc.refusal)
			}
		})
	}
	// In an exempt namespace pods are not checked: the admission says so.
	exempt := Default()
	exempt.ExemptNamespaces = []string{"team-a-dev"}
	out := AdmitExternalSecret(context.Background(), exempt, userRequest(Create, "", "alice"), es("alice", `"target":{"name":"s"},`+alices), nil)
	if len(out.Warnings) != 1 || !strings.Contains(out.Warnings[0], "is not kept from the pods of other users there") {
		t.Errorf("warnings %v in an exempt namespace", out.Warnings)
	}
}

func TestPathUser(t *testing.T) {
	for key, want := range map[string]string{
		"artifacts/team-a/users/alice/secrets/x":   "alice",
		"/other-root/team-a/users/a@b.c/secrets/x": "a@b.c",
		"artifacts/team-a/public/secrets/x":        "",
		"artifacts/team-a/users//secrets/x":        "",
		"artifacts/team-a/users/alice/secrets":     "",
		"secret/data/alice":                        "",
	} {
		if got := PathUser(key); got != want {
			t.Errorf("PathUser(%q) = %q, want %q", key, got, want)
		}
	}
}

// TestExternalSecretDeletions: a deletion that would orphan a private ExternalSecret's Secret is
// denied to everyone untrusted; a plain one, or one of a public ExternalSecret, is not judged.
func TestExternalSecretDeletions(t *testing.T) {
	p := Default()
	es := func(name, key string) *SecretObject {
		obj := &SecretObject{}
		if err := obj.UnmarshalJSON([]byte(`{"apiVersion":"external-secrets.io/v1","kind":"ExternalSecret","metadata":{"name":"` + name + `","namespace":"team-a-dev","annotations":{"iss.platform/initiator-id":"alice"}},
			"spec":{"secretStoreRef":{"kind":"ClusterSecretStore","name":"openbao-dev"},"data":[{"secretKey":"k","remoteRef":{"key":"` + key + `"}}]}}`)); err != nil {
			t.Fatal(err)
		}
		return obj
	}
	for _, tc := range []struct {
		name    string
		user    string
		orphan  bool
		trusted bool
		old     *SecretObject
		denied  bool
	}{
		{"bob orphans alice's private Secret", "bob", true, false, es("x", "artifacts/team-a/users/alice/secrets/x"), true},
		{"alice orphans her own", "alice", true, false, es("x", "artifacts/team-a/users/alice/secrets/x"), true},
		{"a public ExternalSecret's target the index knows private (templated)", "bob", true, false, es("s", "artifacts/team-a/public/secrets/x"), true},
		{"a trusted identity orphans it", "admin", true, true, es("x", "artifacts/team-a/users/alice/secrets/x"), false},
		{"a plain deletion", "bob", false, false, es("x", "artifacts/team-a/users/alice/secrets/x"), false},
		{"a public ExternalSecret orphaned", "bob", true, false, es("pub", "artifacts/team-a/public/secrets/x"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := userRequest(Delete, "", tc.user)
			req.Orphan, req.Trusted = tc.orphan, tc.trusted
			req.Facts.PrivateSecrets = teamA
			out := AdmitExternalSecret(context.Background(), p, req, nil, tc.old)
			fields, _ := integrityFields(out)
			if got := len(fields) > 0; got != tc.denied {
				t.Errorf("denied %v, want %v (%+v)", got, tc.denied, out)
			}
		})
	}
}
