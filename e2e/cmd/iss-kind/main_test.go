package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/iss-platform/iss-webhook/e2e/devenv"
	"github.com/iss-platform/iss-webhook/policy"
)

func TestDockerUnavailable(t *testing.T) {
	ctx := context.Background()
	found := func(string) (string, error) { return "/usr/bin/docker", nil }
	missing := func(string) (string, error) { return "", exec.ErrNotFound }
	answers := func(context.Context, string, ...string) (string, error) { return "28.2.2\n", nil }
	noDaemon := func(context.Context, string, ...string) (string, error) {
		return "", errors.New("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\nmore")
	}
	if got := dockerUnavailable(ctx, missing, answers); got != "docker is not on PATH" {
		t.Errorf("docker missing: got %q", got)
	}
	if got, want := dockerUnavailable(ctx, found, noDaemon), "docker info failed: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"; got != want {
		t.Errorf("no daemon: got %q, want %q", got, want)
	}
	if got := dockerUnavailable(ctx, found, answers); got != "" {
		t.Errorf("daemon answers: got %q, want none", got)
	}
}

const rendered = `apiVersion: v1
kind: Namespace
metadata:
  name: iss-system
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: isspolicies.iss.platform
spec:
  group: iss.platform
---
# a comment only
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: iss-webhook
  namespace: iss-system
spec:
  replicas: 2
  template:
    spec:
      containers:
        - name: webhook
          image: iss-webhook:latest
          ports:
            - containerPort: 9443
        - name: other
          image: busybox:1.37
---
apiVersion: iss.platform/v1alpha1
kind: ISSPolicy
metadata:
  name: default
spec: {}
`

func TestSplitInstall(t *testing.T) {
	p, err := splitInstall([]byte(rendered), manifestImage, kindImage)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(p.crds); !strings.Contains(got, "name: isspolicies.iss.platform") || strings.Contains(got, "kind: Deployment") {
		t.Errorf("crds:\n%s", got)
	}
	if got := string(p.policies); !strings.Contains(got, "kind: ISSPolicy") || strings.Count(got, "---\n") != 1 {
		t.Errorf("policies:\n%s", got)
	}
	rest := string(p.rest)
	for _, want := range []string{"kind: Namespace", "image: " + kindImage, "image: busybox:1.37", "containerPort: 9443", "replicas: 2"} {
		if !strings.Contains(rest, want) {
			t.Errorf("rest has no %q:\n%s", want, rest)
		}
	}
	if strings.Contains(rest, manifestImage) || strings.Contains(rest, "CustomResourceDefinition") || strings.Contains(rest, "ISSPolicy") {
		t.Errorf("rest:\n%s", rest)
	}
	if !bytes.HasPrefix(p.all(), p.crds) {
		t.Error("all() does not start with the CRDs")
	}

	if _, err := splitInstall([]byte(rendered), "iss-webhook:other", kindImage); err == nil {
		t.Error("no error when no container runs the image to replace")
	}
}

// TestSplitInstallManifests renders the real install with kubectl, as the command does.
func TestSplitInstallManifests(t *testing.T) {
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Skip("kubectl is not on PATH")
	}
	out, err := exec.Command("kubectl", "kustomize", filepath.Join("..", "..", "..", "manifests")).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v", err)
	}
	p, err := splitInstall(out, manifestImage, kindImage)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(p.crds), "name: isspolicies.iss.platform") {
		t.Error("the ISSPolicy CRD is not among the CRDs")
	}
	for _, want := range []string{"kind: Deployment", "image: " + kindImage, "kind: ValidatingWebhookConfiguration", "cert-manager.io/inject-ca-from"} {
		if !strings.Contains(string(p.rest), want) {
			t.Errorf("the install has no %q", want)
		}
	}
}

func TestTrustedKubeconfig(t *testing.T) {
	kind := clientcmdapi.NewConfig()
	kind.Clusters["kind-iss-e2e"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:40001", CertificateAuthorityData: []byte("ca")}
	kind.AuthInfos["kind-iss-e2e"] = &clientcmdapi.AuthInfo{ClientCertificateData: []byte("admin-cert"), ClientKeyData: []byte("admin-key")}
	kind.Contexts["kind-iss-e2e"] = &clientcmdapi.Context{Cluster: "kind-iss-e2e", AuthInfo: "kind-iss-e2e"}
	kind.CurrentContext = "kind-iss-e2e"
	super := clientcmdapi.NewConfig()
	super.Clusters["kubernetes"] = &clientcmdapi.Cluster{Server: "https://iss-e2e-control-plane:6443", CertificateAuthorityData: []byte("ca")}
	super.AuthInfos["kubernetes-super-admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: []byte("super-cert"), ClientKeyData: []byte("super-key")}
	super.Contexts["kubernetes-super-admin@kubernetes"] = &clientcmdapi.Context{Cluster: "kubernetes", AuthInfo: "kubernetes-super-admin"}
	super.CurrentContext = "kubernetes-super-admin@kubernetes"
	kindData, err := clientcmd.Write(*kind)
	if err != nil {
		t.Fatal(err)
	}
	superData, err := clientcmd.Write(*super)
	if err != nil {
		t.Fatal(err)
	}

	out, err := trustedKubeconfig(kindData, superData)
	if err != nil {
		t.Fatal(err)
	}
	got, err := clientcmd.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.NewDefaultClientConfig(*got, nil).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "https://127.0.0.1:40001" || string(cfg.CertData) != "super-cert" || string(cfg.KeyData) != "super-key" {
		t.Errorf("got host %s, cert %q, key %q", cfg.Host, cfg.CertData, cfg.KeyData)
	}
	if len(got.AuthInfos) != 1 {
		t.Errorf("the kind admin's credentials are still there: %v", got.AuthInfos)
	}

	super.AuthInfos["kubernetes-super-admin"] = &clientcmdapi.AuthInfo{Token: "t"}
	superData, _ = clientcmd.Write(*super)
	if _, err := trustedKubeconfig(kindData, superData); err == nil {
		t.Error("no error for a super-admin.conf without a client certificate")
	}
}

func TestControlPlaneNode(t *testing.T) {
	node, err := controlPlaneNode("iss-e2e-worker\niss-e2e-control-plane\niss-e2e-control-plane2\n", "iss-e2e")
	if err != nil || node != "iss-e2e-control-plane" {
		t.Errorf("got %q, %v", node, err)
	}
	if _, err := controlPlaneNode("other-control-plane\n", "iss-e2e"); err == nil {
		t.Error("no error without the cluster's control-plane node")
	}
}

func TestPrefixWriter(t *testing.T) {
	var b bytes.Buffer
	w := &prefixWriter{w: &b, prefix: "p: "}
	for _, s := range []string{"one\ntw", "o\n", "three\nfour\n"} {
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := b.String(), "p: one\np: two\np: three\np: four\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestPrepareCluster(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	o := devenv.DefaultOptions("/repo", "/state", nil)
	if err := devenv.PrepareClusterWith(ctx, cs, o); err != nil {
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
	if err := devenv.PrepareClusterWith(ctx, cs, o); err != nil {
		t.Fatal(err)
	}

	for _, want := range devenv.DefaultNamespaces() {
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
