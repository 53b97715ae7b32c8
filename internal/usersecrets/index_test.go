package usersecrets

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fakediscovery "k8s.io/client-go/discovery/fake"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"

	"github.com/iss-platform/iss-webhook/policy"
)

// servedDiscovery answers whether ExternalSecrets are served, as the test switches it.
type servedDiscovery struct {
	*fakediscovery.FakeDiscovery
	mu     sync.Mutex
	served bool
}

func (d *servedDiscovery) ServerResourcesForGroupVersion(gv string) (*metav1.APIResourceList, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	resource := map[string]string{"external-secrets.io/v1": "externalsecrets", "external-secrets.io/v1alpha1": "pushsecrets"}[gv]
	if !d.served || resource == "" {
		return nil, apierrors.NewNotFound(schema.GroupResource{Group: "external-secrets.io"}, gv)
	}
	return &metav1.APIResourceList{GroupVersion: gv, APIResources: []metav1.APIResource{{Name: resource}}}, nil
}

func (d *servedDiscovery) serve() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.served = true
}

func externalSecret(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

var (
	gvr       = schema.GroupVersionResource{Group: "external-secrets.io", Version: "v1", Resource: "externalsecrets"}
	pushesGVR = schema.GroupVersionResource{Group: "external-secrets.io", Version: "v1alpha1", Resource: "pushsecrets"}
)

func newIndex(t *testing.T, served bool, objects []runtime.Object, pods ...runtime.Object) (*Index, *servedDiscovery, *dynamicfake.FakeDynamicClient) {
	t.Helper()
	cs := fake.NewClientset(pods...)
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{gvr: "ExternalSecretList", pushesGVR: "PushSecretList"}, objects...)
	disc := &servedDiscovery{FakeDiscovery: cs.Discovery().(*fakediscovery.FakeDiscovery), served: served}
	ix := NewForClients(cs, dyn, disc, []string{"kube-system"}, time.Hour, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = ix.Start(ctx) }()
	return ix, disc, dyn
}

// eventually polls cond until it holds; a test that never gets there times out.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-time.After(10 * time.Millisecond):
		case <-t.Context().Done():
			t.Fatalf("never: %s", what)
		}
	}
}

func TestIndexOfPrivateSecrets(t *testing.T) {
	ctx := context.Background()
	objects := []runtime.Object{
		externalSecret(t, `{apiVersion: external-secrets.io/v1, kind: ExternalSecret, metadata: {name: alices, namespace: team-a-dev},
  spec: {target: {name: s}, data: [{secretKey: k, remoteRef: {key: artifacts/team-a/users/alice/secrets/db}}]}}`),
		// Named after itself, public: private to nobody.
		externalSecret(t, `{apiVersion: external-secrets.io/v1, kind: ExternalSecret, metadata: {name: public, namespace: team-a-dev},
  spec: {data: [{secretKey: k, remoteRef: {key: artifacts/team-a/public/secrets/db}}]}}`),
		// Templates from alice's: private to her too.
		externalSecret(t, `{apiVersion: external-secrets.io/v1, kind: ExternalSecret, metadata: {name: derived, namespace: team-a-dev},
  spec: {target: {name: derived, template: {templateFrom: [{secret: {name: s, items: [{key: k}]}}]}}, data: [{secretKey: k, remoteRef: {key: artifacts/team-a/public/secrets/x}}]}}`),
		// A second writer of s, from bob's path (dataFrom): s is private to both.
		externalSecret(t, `{apiVersion: external-secrets.io/v1, kind: ExternalSecret, metadata: {name: bobs, namespace: team-a-dev},
  spec: {target: {name: s}, dataFrom: [{extract: {key: /artifacts/team-a/users/bob/secrets/db}}]}}`),
		// Another namespace's s.
		externalSecret(t, `{apiVersion: external-secrets.io/v1, kind: ExternalSecret, metadata: {name: s, namespace: team-b-dev},
  spec: {data: [{secretKey: k, remoteRef: {key: artifacts/team-b/users/carol/secrets/db}}]}}`),
		// A cycle of templates.
		externalSecret(t, `{apiVersion: external-secrets.io/v1, kind: ExternalSecret, metadata: {name: loop, namespace: team-a-dev},
  spec: {target: {template: {templateFrom: [{secret: {name: loop}}]}}}}`),
		// One the index cannot read: the Secret it writes is private to nobody.
		externalSecret(t, `{apiVersion: external-secrets.io/v1, kind: ExternalSecret, metadata: {name: odd, namespace: team-a-dev},
  spec: {target: {name: odd-target}, data: "not a list"}}`),
		// PushSecrets: of a Secret by name, of its template's Secret, of Secrets selected by
		// labels, and one the index cannot read, which may read any.
		externalSecret(t, `{apiVersion: external-secrets.io/v1alpha1, kind: PushSecret, metadata: {name: push-s, namespace: team-a-dev, annotations: {iss.platform/initiator-id: bob}},
  spec: {selector: {secret: {name: s}}}}`),
		externalSecret(t, `{apiVersion: external-secrets.io/v1alpha1, kind: PushSecret, metadata: {name: push-tmpl, namespace: team-a-dev},
  spec: {selector: {generatorRef: {apiVersion: generators.external-secrets.io/v1alpha1, kind: Password, name: p}}, template: {templateFrom: [{secret: {name: public}}]}}}`),
		externalSecret(t, `{apiVersion: external-secrets.io/v1alpha1, kind: PushSecret, metadata: {name: by-labels, namespace: team-a-dev, annotations: {iss.platform/initiator-id: bob}},
  spec: {selector: {secret: {selector: {matchLabels: {a: b}}}}}}`),
		externalSecret(t, `{apiVersion: external-secrets.io/v1alpha1, kind: PushSecret, metadata: {name: odd-push, namespace: team-a-dev},
  spec: {selector: "not an object"}}`),
		externalSecret(t, `{apiVersion: external-secrets.io/v1alpha1, kind: PushSecret, metadata: {name: push-s, namespace: team-b-dev},
  spec: {selector: {secret: {name: s}}}}`),
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "team-a-dev", Annotations: map[string]string{policy.AnnotationInitiatorID: "alice", "other": "dropped"}},
		Spec: corev1.PodSpec{Volumes: []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s"}}}},
			Containers: []corev1.Container{{Name: "c", Image: "busybox", Env: []corev1.EnvVar{{Name: "E", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "k"}}}}}}}}
	ix, _, _ := newIndex(t, true, objects, pod)
	eventually(t, "synced", func() bool {
		return ix.Synced() == nil && ix.Watching(ctx, policy.KindExternalSecret) == nil && ix.Watching(ctx, policy.KindPushSecret) == nil
	})

	for _, tc := range []struct {
		ns, name string
		want     []string
	}{
		{"team-a-dev", "s", []string{"alice", "bob"}},
		{"team-a-dev", "public", nil},
		{"team-a-dev", "derived", []string{"alice", "bob"}},
		{"team-a-dev", "loop", nil},
		{"team-a-dev", "odd-target", []string{UnreadableUser}},
		{"team-a-dev", "nobody-writes-this", nil},
		{"team-b-dev", "s", []string{"carol"}},
	} {
		got, err := ix.SecretUsers(ctx, tc.ns, tc.name)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("SecretUsers(%s, %s) = %v, %v; want %v", tc.ns, tc.name, got, err, tc.want)
		}
	}
	all, err := ix.PrivateSecrets(ctx, "team-a-dev")
	if err != nil || len(all) != 3 || all["derived"] == nil || all["s"] == nil || all["odd-target"] == nil {
		t.Errorf("PrivateSecrets = %v, %v; want s, derived and odd-target", all, err)
	}

	got, found, err := ix.Pod(ctx, "team-a-dev", "p")
	if err != nil || !found || got.Owner != "alice" || !slices.Equal(got.Secrets, []string{"s"}) {
		t.Errorf("Pod = %+v, %v, %v; want alice's, using s once", got, found, err)
	}
	if _, found, err := ix.Pod(ctx, "team-a-dev", "gone"); err != nil || found {
		t.Errorf("Pod(gone) found %v, %v", found, err)
	}
	users, err := ix.PodsReferencing(ctx, "team-a-dev", "s")
	if err != nil || len(users) != 1 || users[0].Name != "p" {
		t.Errorf("PodsReferencing(s) = %v, %v", users, err)
	}
	for _, tc := range []struct {
		name string
		want []policy.SecretReader
	}{
		{"s", []policy.SecretReader{
			{Kind: policy.KindExternalSecret, Name: "derived", Target: "derived"},
			{Kind: policy.KindExternalSecret, Name: "odd", Target: "odd-target"},
			{Kind: policy.KindPushSecret, Name: "by-labels", Initiator: "bob"},
			{Kind: policy.KindPushSecret, Name: "odd-push"},
			{Kind: policy.KindPushSecret, Name: "push-s", Initiator: "bob"},
		}},
		{"public", []policy.SecretReader{
			{Kind: policy.KindExternalSecret, Name: "odd", Target: "odd-target"},
			{Kind: policy.KindPushSecret, Name: "by-labels", Initiator: "bob"},
			{Kind: policy.KindPushSecret, Name: "odd-push"},
			{Kind: policy.KindPushSecret, Name: "push-tmpl"},
		}},
		{"loop", []policy.SecretReader{
			{Kind: policy.KindExternalSecret, Name: "loop", Target: "loop"},
			{Kind: policy.KindExternalSecret, Name: "odd", Target: "odd-target"},
			{Kind: policy.KindPushSecret, Name: "by-labels", Initiator: "bob"},
			{Kind: policy.KindPushSecret, Name: "odd-push"},
		}},
	} {
		got, err := ix.SecretReaders(ctx, "team-a-dev", tc.name)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("SecretReaders(%s) = %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
	if got, err := ix.SecretReaders(ctx, "team-b-dev", "s"); err != nil || len(got) != 1 || got[0].Name != "push-s" {
		t.Errorf("SecretReaders(team-b-dev, s) = %+v, %v; want its own push-s alone", got, err)
	}

	obj, _, _ := ix.pods.GetIndexer().GetByKey("team-a-dev/p")
	if e := obj.(*PodEntry); len(e.Annotations) != 1 {
		t.Errorf("the cached pod keeps more than its owner: %+v", e)
	}
}

func TestIndexBeforeExternalSecretsAreServed(t *testing.T) {
	ctx := context.Background()
	objects := []runtime.Object{externalSecret(t, `{apiVersion: external-secrets.io/v1, kind: ExternalSecret, metadata: {name: s, namespace: team-a-dev},
  spec: {data: [{secretKey: k, remoteRef: {key: artifacts/team-a/users/alice/secrets/db}}]}}`)}
	ix, disc, _ := newIndex(t, false, objects)
	eventually(t, "synced", func() bool { return ix.Synced() == nil })
	// No ExternalSecret can exist that the API server does not serve: nothing is private.
	if users, err := ix.SecretUsers(ctx, "team-a-dev", "s"); err != nil || users != nil {
		t.Errorf("SecretUsers = %v, %v before ExternalSecrets are served; want none", users, err)
	}
	for _, kind := range []string{policy.KindExternalSecret, policy.KindPushSecret} {
		if err := ix.Watching(ctx, kind); err == nil {
			t.Errorf("Watching(%s) is nil before it is served", kind)
		}
	}
	if readers, err := ix.SecretReaders(ctx, "team-a-dev", "s"); err != nil || readers != nil {
		t.Errorf("SecretReaders = %v, %v before PushSecrets are served; want none", readers, err)
	}
	// Served now: the next review of an ExternalSecret makes the index look again at once.
	disc.serve()
	eventually(t, "watching once served", func() bool {
		return ix.Watching(ctx, policy.KindExternalSecret) == nil && ix.Watching(ctx, policy.KindPushSecret) == nil
	})
	if users, err := ix.SecretUsers(ctx, "team-a-dev", "s"); err != nil || !slices.Equal(users, []string{"alice"}) {
		t.Errorf("SecretUsers = %v, %v once served; want alice", users, err)
	}
}

// TestDeletedExternalSecretsKeepTheirSecretPrivate: the garbage collector deletes the Secret of a
// deleted ExternalSecret a little later; until the grace period is over it stays private.
func TestDeletedExternalSecretsKeepTheirSecretPrivate(t *testing.T) {
	ctx := context.Background()
	objects := []runtime.Object{externalSecret(t, `{apiVersion: external-secrets.io/v1, kind: ExternalSecret, metadata: {name: s, namespace: team-a-dev},
  spec: {data: [{secretKey: k, remoteRef: {key: artifacts/team-a/users/alice/secrets/db}}]}}`)}
	ix, _, dyn := newIndex(t, true, objects)
	eventually(t, "synced", func() bool { return ix.Synced() == nil && ix.Watching(ctx, policy.KindExternalSecret) == nil })
	if err := dyn.Resource(gvr).Namespace("team-a-dev").Delete(ctx, "s", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deletion seen", func() bool {
		_, found, _ := ix.secrets.informer.GetIndexer().GetByKey("team-a-dev/s")
		return !found
	})
	if users, err := ix.SecretUsers(ctx, "team-a-dev", "s"); err != nil || !slices.Equal(users, []string{"alice"}) {
		t.Errorf("SecretUsers = %v, %v within the grace period; want alice", users, err)
	}
	ix.mu.Lock()
	ix.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	ix.mu.Unlock()
	if users, err := ix.SecretUsers(ctx, "team-a-dev", "s"); err != nil || users != nil {
		t.Errorf("SecretUsers = %v, %v after the grace period; want none", users, err)
	}
}
