package devenv

import (
	"context"
	"fmt"
	"io"
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/iss-platform/iss-webhook/policy"
)

// EditClusterRole is the ClusterRole that PrepareCluster binds developers to: Kubernetes' own
// `edit`, which a cluster's controller manager aggregates from the bootstrap roles and from the
// roles that add-ons label for it.
const EditClusterRole = "edit"

// PrepareCluster prepares a real cluster (kind, or any other) as Start prepares the local
// control plane, so that the examples and the end-to-end suite find what they expect: it creates
// o.Namespaces (DefaultNamespaces() when nil) with their iss.platform labels, and binds
// o.Developers to the ClusterRole edit and to External Secrets' edit role in each namespace of
// o.DeveloperNamespaces. Other fields of o are not used. It is idempotent: namespaces, roles and
// bindings that exist are brought to the state it would create.
//
// The kubeconfig must be of an identity that the ISSPolicy trusts (group system:masters by
// default): when iss-webhook is installed, only trusted identities may set the namespaces' ISS
// labels. Progress lines go to o.Progress without a prefix.
func PrepareCluster(ctx context.Context, kubeconfig string, o Options) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("reading kubeconfig %s: %w", kubeconfig, err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	return PrepareClusterWith(ctx, cs, o)
}

// PrepareClusterWith is PrepareCluster with a client instead of a kubeconfig.
func PrepareClusterWith(ctx context.Context, cs kubernetes.Interface, o Options) error {
	namespaces := o.Namespaces
	if namespaces == nil {
		namespaces = DefaultNamespaces()
	}
	names := make([]string, 0, len(namespaces))
	for _, ns := range namespaces {
		if err := ensureNamespace(ctx, cs, ns); err != nil {
			return err
		}
		names = append(names, ns.Name)
	}
	progressLine(o.Progress, "namespaces %s are labelled with %s and %s", strings.Join(names, ", "), policy.LabelAppID, policy.LabelEnvironment)
	if len(o.Developers) == 0 {
		return nil
	}
	esEdit := externalSecretsEditRole()
	if err := ensureClusterRole(ctx, cs, esEdit); err != nil {
		return err
	}
	for _, ns := range o.DeveloperNamespaces {
		// edit holds External Secrets' kinds too once the controller manager has aggregated the
		// role above into it; the direct binding does not wait for that.
		for _, role := range []string{EditClusterRole, esEdit.Name} {
			if err := ensureRoleBinding(ctx, cs, ns, "developer-"+role, role, o.Developers); err != nil {
				return err
			}
		}
	}
	progressLine(o.Progress, "users %s may edit in %s (kubectl --as=%s)", strings.Join(o.Developers, ", "), strings.Join(o.DeveloperNamespaces, ", "), o.Developers[0])
	return nil
}

// externalSecretsEditRole is the role that the External Secrets chart labels for aggregation into
// edit, for the kinds the developers write. PrepareCluster and the local control plane
// (Env.createNamespaces) both create it.
func externalSecretsEditRole() *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "external-secrets-edit", Labels: map[string]string{"rbac.authorization.k8s.io/aggregate-to-edit": "true"}},
		Rules: []rbacv1.PolicyRule{
			{
				APIGroups: []string{"external-secrets.io"},
				Resources: []string{"externalsecrets", "pushsecrets", "secretstores"},
				Verbs:     []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"},
			},
			{
				// The generators, as the chart's edit role grants them.
				APIGroups: []string{"generators.external-secrets.io"},
				Resources: generatorResources(),
				Verbs:     []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"},
			},
		},
	}
}

// generatorResources are the resources of External Secrets' generators and their states.
func generatorResources() []string {
	var out []string
	for _, g := range policy.GeneratorKinds() {
		out = append(out, g.Resource)
	}
	return append(out, "generatorstates")
}

// ensureNamespace creates the namespace with its ISS labels, or sets them on the namespace that
// exists, keeping its other labels.
func ensureNamespace(ctx context.Context, cs kubernetes.Interface, ns Namespace) error {
	want := map[string]string{policy.LabelAppID: ns.AppID, policy.LabelEnvironment: ns.Environment}
	obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns.Name, Labels: want}}
	_, err := cs.CoreV1().Namespaces().Create(ctx, obj, metav1.CreateOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", ns.Name, err)
	}
	live, err := cs.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading namespace %s: %w", ns.Name, err)
	}
	if hasLabels(live.Labels, want) {
		return nil
	}
	if live.Labels == nil {
		live.Labels = map[string]string{}
	}
	maps.Copy(live.Labels, want)
	if _, err := cs.CoreV1().Namespaces().Update(ctx, live, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("labelling namespace %s: %w", ns.Name, err)
	}
	return nil
}

// ensureClusterRole creates the role, or sets its rules and labels on the one that exists.
func ensureClusterRole(ctx context.Context, cs kubernetes.Interface, role *rbacv1.ClusterRole) error {
	_, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating ClusterRole %s: %w", role.Name, err)
	}
	live, err := cs.RbacV1().ClusterRoles().Get(ctx, role.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading ClusterRole %s: %w", role.Name, err)
	}
	if live.Labels == nil {
		live.Labels = map[string]string{}
	}
	maps.Copy(live.Labels, role.Labels)
	live.Rules = role.Rules
	if _, err := cs.RbacV1().ClusterRoles().Update(ctx, live, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating ClusterRole %s: %w", role.Name, err)
	}
	return nil
}

// ensureRoleBinding binds users to a ClusterRole in a namespace, creating the binding or setting
// its subjects. A binding of that name to another role is an error: its role cannot be changed.
func ensureRoleBinding(ctx context.Context, cs kubernetes.Interface, namespace, name, clusterRole string, users []string) error {
	ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		RoleRef:    ref,
		Subjects:   developerSubjects(users),
	}
	_, err := cs.RbacV1().RoleBindings(namespace).Create(ctx, rb, metav1.CreateOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("binding %s to %s in %s: %w", strings.Join(users, ", "), clusterRole, namespace, err)
	}
	live, err := cs.RbacV1().RoleBindings(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading RoleBinding %s/%s: %w", namespace, name, err)
	}
	if live.RoleRef != ref {
		return fmt.Errorf("RoleBinding %s/%s exists and binds %s %s, not ClusterRole %s: delete it first", namespace, name, live.RoleRef.Kind, live.RoleRef.Name, clusterRole)
	}
	live.Subjects = rb.Subjects
	if _, err := cs.RbacV1().RoleBindings(namespace).Update(ctx, live, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating RoleBinding %s/%s: %w", namespace, name, err)
	}
	return nil
}

func hasLabels(labels, want map[string]string) bool {
	for k, v := range want {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func progressLine(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}
