package buildrecord

// These tests write and collect records against a real kube-apiserver (the control plane of
// e2e/devenv, built by make controlplane), through a real informer cache restricted as the
// webhook restricts it: create-if-absent and the preconditions of deletes are the API server's,
// not a fake's.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/iss-platform/iss-webhook/e2e/devenv"
	"github.com/iss-platform/iss-webhook/policy"
	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
	"github.com/iss-platform/iss-webhook/webhook"
)

const recordsNamespace = "iss-system"

var (
	admin   client.Client
	adminRC *rest.Config
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		cp, err := devenv.StartControlPlane("../..", nil, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer cp.Stop()
		dir, err := os.MkdirTemp("", "buildrecord-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		if adminRC, err = cp.WriteKubeconfig(filepath.Join(dir, "kubeconfig"), "test-admin", "system:masters"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if admin, err = client.New(adminRC, client.Options{Scheme: webhook.NewScheme()}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for _, ns := range []string{recordsNamespace, "team-a-dev", "team-a-prod", "gc"} {
			if err := admin.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		return m.Run()
	}())
}

// startCache starts an informer cache restricted as the webhook's, synced.
func startCache(t *testing.T) cache.Cache {
	t.Helper()
	c, err := cache.New(adminRC, cache.Options{Scheme: webhook.NewScheme(), ByObject: CacheOptions(recordsNamespace)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for _, obj := range CachedObjects() {
		if _, err := c.GetInformer(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		t.Fatal("cache not synced")
	}
	return c
}

// eventually retries cond for up to 30s.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func record(namespace, build, hash string) policy.BuildRecord {
	return policy.BuildRecord{Namespace: namespace, BuildID: build, CodeHash: hash, Workload: "orders-worker-" + build, Code: []byte(`{"spec":{}}`)}
}

func getRecord(t *testing.T, namespace, build string) (*corev1.ConfigMap, error) {
	t.Helper()
	cm := &corev1.ConfigMap{}
	err := admin.Get(context.Background(), client.ObjectKey{Namespace: recordsNamespace, Name: policy.BuildRecordName(namespace, build)}, cm)
	return cm, err
}

func withMode(mode v1alpha1.EnforcementMode) *policy.Policy {
	p := policy.Default()
	p.Enforcement[policy.RuleTemporalWorkers] = mode
	return p
}

func TestEnsure(t *testing.T) {
	ctx := context.Background()
	c := startCache(t)
	s := NewStore(admin, admin, c, recordsNamespace)
	pol := policy.Default()
	v7 := &policy.BuildRecordWrite{Record: record("team-a-dev", "v7", "sha256:aaaa"), Judge: true}

	if _, err := s.Ensure(ctx, v7, pol); err != nil {
		t.Fatal(err)
	}
	cm, err := getRecord(t, "team-a-dev", "v7")
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := Record(cm); err != nil || rec.CodeHash != "sha256:aaaa" || rec.Workload != "orders-worker-v7" || rec.Recorded.IsZero() || string(rec.Code) != `{"spec":{}}` {
		t.Fatalf("record %+v, %v", rec, err)
	}
	if !RecordSelector().Matches(k8slabels.Set(cm.Labels)) {
		t.Errorf("the record's labels %v are not selected by the cache", cm.Labels)
	}
	eventually(t, "the cache holds the record", func() error {
		rec, err := s.BuildRecord(ctx, "team-a-dev", "v7")
		if err == nil && rec == nil {
			err = errors.New("not yet")
		}
		return err
	})

	// The same code again: nothing written.
	version := cm.ResourceVersion
	if _, err := s.Ensure(ctx, v7, pol); err != nil {
		t.Fatal(err)
	}
	if cm, _ := getRecord(t, "team-a-dev", "v7"); cm.ResourceVersion != version {
		t.Errorf("the same code rewrote the record")
	}

	// Other code under the same build id: denied, warned, logged by the mode; never recorded.
	other := &policy.BuildRecordWrite{Record: record("team-a-dev", "v7", "sha256:bbbb"), Judge: true}
	var conflict *policy.BuildRecordConflict
	if _, err := s.Ensure(ctx, other, pol); !errors.As(err, &conflict) {
		t.Errorf("other code: %v, want a conflict", err)
	}
	if warnings, err := s.Ensure(ctx, other, withMode(v1alpha1.Warn)); err != nil || len(warnings) != 1 {
		t.Errorf("other code in Warn mode: %v, %v", warnings, err)
	}
	if warnings, err := s.Ensure(ctx, other, withMode(v1alpha1.Audit)); err != nil || len(warnings) != 0 {
		t.Errorf("other code in Audit mode: %v, %v", warnings, err)
	}
	unjudged := *other
	unjudged.Judge = false
	if _, err := s.Ensure(ctx, &unjudged, pol); err != nil {
		t.Errorf("an update's write of other code: %v", err)
	}
	if cm, _ := getRecord(t, "team-a-dev", "v7"); cm.Data[keyCodeHash] != "sha256:aaaa" || cm.ResourceVersion != version {
		t.Errorf("other code changed the record: %v", cm.Data)
	}

	// Another namespace is another build.
	if _, err := s.Ensure(ctx, &policy.BuildRecordWrite{Record: record("team-a-prod", "v7", "sha256:bbbb"), Judge: true}, pol); err != nil {
		t.Errorf("the build id in another namespace: %v", err)
	}

	// A record last used half the retention ago is marked used.
	s.now = func() time.Time { return time.Now().Add(pol.TemporalWorkers.BuildRecordRetention) }
	if _, err := s.Ensure(ctx, v7, pol); err != nil {
		t.Fatal(err)
	}
	if cm, _ := getRecord(t, "team-a-dev", "v7"); !LastUsed(cm).After(time.Now().Add(pol.TemporalWorkers.BuildRecordRetention / 2)) {
		t.Errorf("a stale record was not marked used: %v", cm.Annotations)
	}

	// A ConfigMap of the record's name that is not a record: denied, never overwritten.
	squatter := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: recordsNamespace, Name: policy.BuildRecordName("team-a-dev", "v9")}}
	if err := admin.Create(ctx, squatter); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ensure(ctx, &policy.BuildRecordWrite{Record: record("team-a-dev", "v9", "sha256:aaaa"), Judge: true}, pol); err == nil || errors.As(err, &conflict) {
		t.Errorf("a ConfigMap that is not a record: %v, want a failed write", err)
	}
}

// notCached is a cache that has not seen any record yet, as each replica's may not have when two
// Deployments of one build are admitted at once.
type notCached struct{ client.Reader }

func (notCached) Get(_ context.Context, key client.ObjectKey, _ client.Object, _ ...client.GetOption) error {
	return apierrors.NewNotFound(corev1.Resource("configmaps"), key.Name)
}

// TestConcurrentCreates admits many Deployments of one new build at once, with caches that
// have not seen each other's records: of those with other code only one passes; those with the
// same code all do.
func TestConcurrentCreates(t *testing.T) {
	ctx := context.Background()
	s := NewStore(admin, admin, notCached{admin}, recordsNamespace)
	pol := policy.Default()
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.Ensure(ctx, &policy.BuildRecordWrite{Record: record("team-a-dev", "race", fmt.Sprintf("sha256:%d", i)), Judge: true}, pol)
		})
	}
	wg.Wait()
	passed := 0
	for i, err := range errs {
		var conflict *policy.BuildRecordConflict
		switch {
		case err == nil:
			passed++
		case !errors.As(err, &conflict):
			t.Errorf("create %d: %v, want a conflict", i, err)
		}
	}
	if passed != 1 {
		t.Errorf("%d of %d creates of other code passed, want 1", passed, n)
	}
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.Ensure(ctx, &policy.BuildRecordWrite{Record: record("team-a-dev", "same", "sha256:same"), Judge: true}, pol)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("create %d of the same code: %v", i, err)
		}
	}
}

// frozenCache hands out the records as they were when it was made, as an informer that has not
// seen the latest writes does.
type frozenCache struct {
	client.Reader
	records *corev1.ConfigMapList
}

func (f frozenCache) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if l, ok := list.(*corev1.ConfigMapList); ok {
		f.records.DeepCopyInto(l)
		return nil
	}
	return f.Reader.List(ctx, list, opts...)
}

func TestCollector(t *testing.T) {
	ctx := context.Background()
	c := startCache(t)
	pol := policy.Default()
	retention := pol.TemporalWorkers.BuildRecordRetention
	start := time.Now()
	s := NewStore(admin, admin, c, recordsNamespace)
	write := func(build string, lastUsed time.Time) {
		t.Helper()
		s.now = func() time.Time { return lastUsed }
		if _, err := s.Ensure(ctx, &policy.BuildRecordWrite{Record: record("gc", build, "sha256:"+build), Judge: true}, pol); err != nil {
			t.Fatal(err)
		}
	}
	long := start.Add(-retention - time.Hour)
	write("in-use", long)
	write("recent", start.Add(-retention/2))
	write("gone", long)
	write("orphan-pod", long)
	write("orphan-rs", long)
	write("touched", long)
	labels := map[string]string{"app": "w"}
	mk := func(obj client.Object, build string) {
		t.Helper()
		obj.SetNamespace("gc")
		obj.SetLabels(map[string]string{"app": "w", policy.LabelBuildID: build})
		if err := admin.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	podSpec := corev1.PodSpec{Containers: []corev1.Container{{Name: "w", Image: "w"}}}
	mk(&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "in-use"}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec}}}, "in-use")
	mk(&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "orphan-rs"}, Spec: appsv1.ReplicaSetSpec{
		Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec}}}, "orphan-rs")
	mk(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "orphan-pod"}, Spec: podSpec}, "orphan-pod")
	notRecord := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: recordsNamespace, Name: "labelled",
		Labels: map[string]string{policy.LabelManagedBy: policy.ManagedByValue, policy.LabelBuildNamespace: "gc"}}}
	if err := admin.Create(ctx, notRecord); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the cache holds the records and the builds", func() error {
		if n, err := s.BuildInUse(ctx, "gc", "in-use"); err != nil || n != 1 {
			return fmt.Errorf("in use %d, %v", n, err)
		}
		if n, err := s.BuildInUse(ctx, "gc", "orphan-rs"); err != nil || n != 1 {
			return fmt.Errorf("orphan-rs in use %d, %v", n, err)
		}
		list := &corev1.ConfigMapList{}
		if err := c.List(ctx, list, client.InNamespace(recordsNamespace), client.MatchingLabels{policy.LabelBuildNamespace: "gc"}); err != nil || len(list.Items) != 7 {
			return fmt.Errorf("%d records cached, %v", len(list.Items), err)
		}
		return nil
	})

	// The cache the collector reads was made before an admission marked "touched" used: its
	// delete carries the old resourceVersion and fails.
	frozen := &corev1.ConfigMapList{}
	if err := c.List(ctx, frozen, client.InNamespace(recordsNamespace)); err != nil {
		t.Fatal(err)
	}
	cm, _ := getRecord(t, "gc", "touched")
	if err := admin.Update(ctx, touched(cm, start)); err != nil {
		t.Fatal(err)
	}
	col := NewCollector(admin, admin, frozenCache{c, frozen}, recordsNamespace, policy.NewHolder(pol))
	col.now = func() time.Time { return start }
	if err := col.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	for build, kept := range map[string]bool{"in-use": true, "recent": true, "gone": false, "orphan-pod": true, "orphan-rs": true, "touched": true} {
		cm, err := getRecord(t, "gc", build)
		switch {
		case kept && err != nil:
			t.Errorf("record of %s deleted: %v", build, err)
		case !kept && !apierrors.IsNotFound(err):
			t.Errorf("record of %s kept: %v", build, err)
		case kept && build != "recent" && !LastUsed(cm).Equal(start.Truncate(time.Second)) && build != "touched":
			t.Errorf("record of %s in use, last used %s, want it marked used at %s", build, LastUsed(cm), start)
		}
	}
	if err := admin.Get(ctx, client.ObjectKeyFromObject(notRecord), &corev1.ConfigMap{}); err != nil {
		t.Errorf("a ConfigMap that is not a record was deleted: %v", err)
	}

	// Once the Deployment is gone, its record goes after the retention.
	if err := admin.Delete(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "gc", Name: "in-use"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the cache sees the Deployment go", func() error {
		if n, _ := s.BuildInUse(ctx, "gc", "in-use"); n != 0 {
			return fmt.Errorf("%d left", n)
		}
		return nil
	})
	col = NewCollector(admin, admin, c, recordsNamespace, policy.NewHolder(pol))
	eventually(t, "the record of the gone build is collected after the retention", func() error {
		col.now = func() time.Time { return start.Add(retention / 2) }
		if err := col.Collect(ctx); err != nil {
			return err
		}
		if _, err := getRecord(t, "gc", "in-use"); err != nil {
			return fmt.Errorf("deleted before its retention: %v", err)
		}
		col.now = func() time.Time { return start.Add(retention + time.Second) }
		if err := col.Collect(ctx); err != nil {
			return err
		}
		if _, err := getRecord(t, "gc", "in-use"); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there: %v", err)
		}
		return nil
	})
}

func TestCollectInterval(t *testing.T) {
	for retention, want := range map[time.Duration]time.Duration{
		30 * 24 * time.Hour: 10 * time.Minute, time.Hour: 36 * time.Second, time.Minute: 10 * time.Second,
	} {
		if got := CollectInterval(retention); got != want {
			t.Errorf("CollectInterval(%s) = %s, want %s", retention, got, want)
		}
	}
	if got := refreshInterval(30 * 24 * time.Hour); got != time.Hour {
		t.Errorf("refresh of 30d: %s", got)
	}
}
