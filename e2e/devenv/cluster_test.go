package devenv

import (
	"context"
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/iss-platform/iss-webhook/policy"
)

// TestPrepareCluster prepares a cluster twice, the second time after a namespace lost its labels
// and a binding its subjects: it puts them back.
func TestPrepareCluster(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	o := DefaultOptions("/repo", "/state", nil)
	if err := PrepareClusterWith(ctx, cs, o); err != nil {
		t.Fatal(err)
	}
	// Again, after a namespace lost its labels and a binding its subjects: it puts them back.
	ns, _ := cs.CoreV1().Namespaces().Get(ctx, "team-b-staging", metav1.GetOptions{})
	ns.Labels = map[string]string{"other": "x"}
	if _, err := cs.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb, _ := cs.RbacV1().RoleBindings("team-a-prod").Get(ctx, "developer-edit", metav1.GetOptions{})
	rb.Subjects = nil
	if _, err := cs.RbacV1().RoleBindings("team-a-prod").Update(ctx, rb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := PrepareClusterWith(ctx, cs, o); err != nil {
		t.Fatal(err)
	}

	for _, want := range DefaultNamespaces() {
		ns, err := cs.CoreV1().Namespaces().Get(ctx, want.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ns.Labels[policy.LabelAppID] != want.AppID || ns.Labels[policy.LabelEnvironment] != want.Environment {
			t.Errorf("namespace %s has labels %v", want.Name, ns.Labels)
		}
	}
	role, err := cs.RbacV1().ClusterRoles().Get(ctx, "external-secrets-edit", metav1.GetOptions{})
	if err != nil || role.Labels["rbac.authorization.k8s.io/aggregate-to-edit"] != "true" {
		t.Fatalf("external-secrets-edit: %v %v", role, err)
	}
	for _, ns := range []string{"team-a-dev", "team-a-prod"} {
		for name, clusterRole := range map[string]string{"developer-edit": "edit", "developer-external-secrets-edit": "external-secrets-edit"} {
			rb, err := cs.RbacV1().RoleBindings(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var users []string
			for _, s := range rb.Subjects {
				if s.Kind == rbacv1.UserKind {
					users = append(users, s.Name)
				}
			}
			if rb.RoleRef.Name != clusterRole || !slices.Equal(users, []string{"alice", "bob"}) {
				t.Errorf("%s/%s binds %v to %s", ns, name, users, rb.RoleRef.Name)
			}
		}
	}
	if _, err := cs.RbacV1().RoleBindings("team-b-staging").Get(ctx, "developer-edit", metav1.GetOptions{}); err == nil {
		t.Error("developers may edit in team-b-staging")
	}
}
