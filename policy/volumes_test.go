package policy

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// TestEngineVolumes tries every way of giving an engine storage its profile does not bound.
func TestEngineVolumes(t *testing.T) {
	claim := func(size string) *corev1.EphemeralVolumeSource {
		return &corev1.EphemeralVolumeSource{VolumeClaimTemplate: &corev1.PersistentVolumeClaimTemplate{Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: resources("storage", size)}}}}
	}
	hostPath := func(p string) corev1.VolumeSource {
		return corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: p}}
	}
	stsOwner := []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "engine", UID: "1", Controller: ptr.To(true)}}
	for _, tc := range []struct {
		name    string
		meta    metav1.ObjectMeta
		volumes []corev1.Volume
		// want are the fields and message fragments of the errors, in order.
		want [][]string
		// warn is a fragment of the one warning, when there is one.
		warn string
		// claims lists the StatefulSet claims the engine is left with.
		claims int
	}{
		{name: "what the chart and the webhook use", volumes: []corev1.Volume{
			{Name: "cm", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}},
			{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "x"}}},
			{Name: "p", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{}}},
			{Name: "d", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{}}},
			{Name: "e", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		}},
		{name: "a generic ephemeral volume of 1Ti", volumes: []corev1.Volume{{Name: "big", VolumeSource: corev1.VolumeSource{Ephemeral: claim("1Ti")}}},
			want: [][]string{{"spec.volumes[0].ephemeral.volumeClaimTemplate.spec.resources.requests[storage]", "ask for 1Ti in all", "10Gi of storage"}}},
		{name: "two generic ephemeral volumes within the profile each, above it together", volumes: []corev1.Volume{
			{Name: "a", VolumeSource: corev1.VolumeSource{Ephemeral: claim("6Gi")}},
			{Name: "b", VolumeSource: corev1.VolumeSource{Ephemeral: claim("6Gi")}},
		}, want: [][]string{{"spec.volumes", "ask for 12Gi in all", `select the profile "high-performance"`}}},
		{name: "a generic ephemeral volume within the profile", volumes: []corev1.Volume{{Name: "cache", VolumeSource: corev1.VolumeSource{Ephemeral: claim("10Gi")}}}},
		{name: "a generic ephemeral volume without a storage request", volumes: []corev1.Volume{{Name: "x", VolumeSource: corev1.VolumeSource{Ephemeral: claim("1Gi")}}}},
		{name: "an existing claim the developer created", volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "mine"}}}},
			want: [][]string{{"spec.volumes[0].persistentVolumeClaim", "existing claim's size can change later", "generic ephemeral volume"}}},
		{name: "a StatefulSet's claim is left to the requester check", meta: metav1.ObjectMeta{Name: "engine-0", OwnerReferences: stsOwner},
			volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data-engine-0"}}}}, claims: 1},
		{name: "a claim named otherwise in a StatefulSet's pod", meta: metav1.ObjectMeta{Name: "engine-0", OwnerReferences: stsOwner},
			volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "big"}}}},
			want:    [][]string{{"spec.volumes[0].persistentVolumeClaim", "may not use"}}},
		{name: "hostPath /", volumes: []corev1.Volume{{Name: "root", VolumeSource: hostPath("/")}},
			want: [][]string{{"spec.volumes[0].hostPath.path", "mounts / of the node", "start with /var/lib/dagger or /var/run/dagger"}}},
		{name: "the chart's release-named cache path", volumes: []corev1.Volume{{Name: "x", VolumeSource: hostPath("/var/lib/dagger-dagger-helm")}},
			warn: "under /var/lib/dagger"},
		{name: "another directory of /var/lib", volumes: []corev1.Volume{{Name: "x", VolumeSource: hostPath("/var/lib/docker")}},
			want: [][]string{{"spec.volumes[0].hostPath.path", "mounts /var/lib/docker"}}},
		{name: "the kubelet's directory", volumes: []corev1.Volume{{Name: "x", VolumeSource: hostPath("/var/lib/kubelet/pods")}},
			want: [][]string{{"spec.volumes[0].hostPath.path"}}},
		{name: "hostPath climbing out of the cache path", volumes: []corev1.Volume{{Name: "x", VolumeSource: hostPath("/var/lib/dagger/../../../etc")}},
			want: [][]string{{"spec.volumes[0].hostPath.path", "mounts /var/lib/dagger/../../../etc"}}},
		{name: "hostPath relative", volumes: []corev1.Volume{{Name: "x", VolumeSource: hostPath("var/lib/dagger")}},
			want: [][]string{{"spec.volumes[0].hostPath.path"}}},
		{name: "the chart's cache path, with a warning", volumes: []corev1.Volume{{Name: "cache", VolumeSource: hostPath("/var/lib/dagger")}},
			warn: "no quota profile bounds"},
		{name: "below the chart's run path", volumes: []corev1.Volume{{Name: "run", VolumeSource: hostPath("/var/run/dagger/")}},
			warn: "under /var/run/dagger"},
		{name: "an NFS share", volumes: []corev1.Volume{{Name: "n", VolumeSource: corev1.VolumeSource{NFS: &corev1.NFSVolumeSource{Server: "x", Path: "/"}}}},
			want: [][]string{{"spec.volumes[0].nfs", "is a nfs volume", "spec.engines.volumes.allowedTypes"}}},
		{name: "an inline CSI volume", volumes: []corev1.Volume{{Name: "c", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: "secrets-store.csi.k8s.io"}}}},
			want: [][]string{{"spec.volumes[0].csi", "inline CSI volume"}}},
		{name: "an image volume", volumes: []corev1.Volume{{Name: "i", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: "x"}}}},
			want: [][]string{{"spec.volumes[0].image", "is a image volume"}}},
		{name: "a volume of a type this build does not know", volumes: []corev1.Volume{{Name: "future"}},
			want: [][]string{{"spec.volumes[0]", "no volume type this build"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			meta, spec := enginePod(func(m *metav1.ObjectMeta, s *corev1.PodSpec) {
				*m = tc.meta
				s.Volumes = tc.volumes
			})
			if tc.name == "a generic ephemeral volume without a storage request" {
				spec.Volumes[0].Ephemeral.VolumeClaimTemplate.Spec.Resources.Requests = nil
				tc.want = [][]string{{"spec.volumes[0].ephemeral.volumeClaimTemplate.spec.resources.requests[storage]", "must request its storage"}}
			}
			eng, _, errs := Default().ReviewEnginePod(meta, spec, nil)
			if len(errs) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(tc.want), errs.ToAggregate())
			}
			for i, w := range tc.want {
				if errs[i].Field != w[0] {
					t.Errorf("error %d at %s, want %s", i, errs[i].Field, w[0])
				}
				for _, frag := range w[1:] {
					if !strings.Contains(errs[i].Detail, frag) {
						t.Errorf("error %d %q lacks %q", i, errs[i].Detail, frag)
					}
				}
			}
			if tc.warn != "" && (len(eng.Warnings) != 1 || !strings.Contains(eng.Warnings[0], tc.warn)) {
				t.Errorf("warnings %q, want one with %q", eng.Warnings, tc.warn)
			}
			if tc.warn == "" && len(eng.Warnings) > 0 {
				t.Errorf("unexpected warnings %q", eng.Warnings)
			}
			if len(eng.StatefulSetClaims) != tc.claims {
				t.Errorf("StatefulSet claims %v, want %d", eng.StatefulSetClaims, tc.claims)
			}
		})
	}
}

// TestStatefulSetClaimsOnlyFromTheController admits a pod with its StatefulSet's claims only
// when the StatefulSet controller creates it: anyone can write the owner reference.
func TestStatefulSetClaimsOnlyFromTheController(t *testing.T) {
	spec := &corev1.PodSpec{Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data-engine-0"}}}}}
	eng := Engine{StatefulSetClaims: []int{0}}
	for _, user := range StatefulSetControllers {
		if errs := ValidateStatefulSetClaims(eng, spec, user); len(errs) != 0 {
			t.Errorf("%s: %v", user, errs)
		}
	}
	errs := ValidateStatefulSetClaims(eng, spec, "alice")
	if len(errs) != 1 || errs[0].Field != "spec.volumes[0].persistentVolumeClaim" || !strings.Contains(errs[0].Detail, "only the StatefulSet controller") {
		t.Errorf("alice: %v", errs)
	}
}
