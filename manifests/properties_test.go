package manifests

import (
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	certmanagerv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
)

// The tests below check the objects Render produces, in both certificate modes, against what an
// install of iss-webhook must be: highly available, locked down, reachable only where it must be,
// unable to lock a cluster out, and given no more RBAC than its code uses.

const (
	// issNamespace is where everything namespaced of the install lives.
	issNamespace = "iss-system"
	// issWebhookName names the ServiceAccount, Deployment, Service and webhook configurations.
	issWebhookName = "iss-webhook"
	// testImage is not DefaultImage, so that the tests see that Render sets the image.
	testImage = "registry.example.com:5000/acme/iss-webhook:v1.2.3"
	// injectCAFromAnnotation is cert-manager's CA injection annotation.
	injectCAFromAnnotation = "cert-manager.io/inject-ca-from"
)

var allCertModes = []string{CertModeCertManager, CertModeSelfSigned}

// renderedByMode renders each mode once for all the tests of the package; the objects are only read.
var renderedByMode = map[string]func() ([]*unstructured.Unstructured, error){
	CertModeCertManager: sync.OnceValues(func() ([]*unstructured.Unstructured, error) { return Render(CertModeCertManager, testImage) }),
	CertModeSelfSigned:  sync.OnceValues(func() ([]*unstructured.Unstructured, error) { return Render(CertModeSelfSigned, testImage) }),
}

// renderedInstall is the rendered install of one certificate mode.
type renderedInstall struct {
	mode string
	objs []*unstructured.Unstructured
}

func renderInstall(t *testing.T, mode string) *renderedInstall {
	t.Helper()
	objs, err := renderedByMode[mode]()
	if err != nil {
		t.Fatalf("Render(%s, %s): %v", mode, testImage, err)
	}
	return &renderedInstall{mode: mode, objs: objs}
}

// all returns the objects of a group and kind.
func (in *renderedInstall) all(group, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range in.objs {
		if gvk := o.GroupVersionKind(); gvk.Group == group && gvk.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

// get returns the object of a group, kind, namespace and name, or nil.
func (in *renderedInstall) get(group, kind, namespace, name string) *unstructured.Unstructured {
	for _, o := range in.all(group, kind) {
		if o.GetNamespace() == namespace && o.GetName() == name {
			return o
		}
	}
	return nil
}

// convertTo converts u into a T, refusing fields that T does not know (a misspelt field in a
// manifest would otherwise be dropped silently, here and by the API server).
func convertTo[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		t.Fatalf("%s %s/%s: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
	return out
}

// mustGet returns the object of a group, kind, namespace and name as a T, failing without it.
func mustGet[T any](t *testing.T, in *renderedInstall, group, kind, namespace, name string) *T {
	t.Helper()
	u := in.get(group, kind, namespace, name)
	if u == nil {
		t.Fatalf("%s: the install renders no %s %s/%s", in.mode, kind, namespace, name)
	}
	return convertTo[T](t, u)
}

func (in *renderedInstall) deployment(t *testing.T) *appsv1.Deployment {
	t.Helper()
	return mustGet[appsv1.Deployment](t, in, "apps", "Deployment", issNamespace, issWebhookName)
}

// webhookContainer returns the container that serves the webhook.
func webhookContainer(t *testing.T, d *appsv1.Deployment) *corev1.Container {
	t.Helper()
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == "webhook" {
			return c
		}
	}
	t.Fatalf("Deployment %s has no container named webhook", d.Name)
	return nil
}

// selectsPods tells whether a selector is not empty (an empty one selects every pod of the
// namespace) and matches the pod labels.
func selectsPods(sel *metav1.LabelSelector, podLabels map[string]string) error {
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		return fmt.Errorf("the selector is empty: it selects every pod of the namespace")
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return err
	}
	if !s.Matches(labels.Set(podLabels)) {
		return fmt.Errorf("the selector %s does not match the webhook's pods %v", s, podLabels)
	}
	return nil
}

// argDefaults are iss-webhook's defaults of the flags the tests read (cmd/iss-webhook/flags.go).
var argDefaults = map[string]string{
	"--webhook-port":              "9443",
	"--metrics-bind-address":      ":8080",
	"--health-probe-bind-address": ":8081",
	"--cert-dir":                  "/tmp/k8s-webhook-server/serving-certs",
	"--cert-mode":                 CertModeCertManager,
}

// argValue returns the value of a --name=value argument (the last one wins, as in package flag), or
// iss-webhook's default.
func argValue(args []string, name string) string {
	v, ok := argDefaults[name]
	if !ok {
		panic("no default for " + name)
	}
	for _, a := range args {
		if rest, found := strings.CutPrefix(a, name+"="); found {
			v = rest
		}
	}
	return v
}

// namedPort returns the number of the container's port of that name.
func namedPort(c *corev1.Container, name string) (int32, bool) {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

// refersToPort tells whether a port reference (by name or by number) is the container's named port.
func refersToPort(ref intstr.IntOrString, c *corev1.Container, name string) bool {
	if ref.Type == intstr.String {
		return ref.StrVal == name
	}
	n, ok := namedPort(c, name)
	return ok && ref.IntVal == n
}

func TestRenderedNamespaces(t *testing.T) {
	// The kinds an install may hold, by scope. A kind defined by a rendered CRD takes the CRD's
	// scope; any other kind must be added here.
	clusterScoped := map[schema.GroupKind]bool{
		{Group: "", Kind: "Namespace"}:                                                  true,
		{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}:               true,
		{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}:                       true,
		{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}:                true,
		{Group: "admissionregistration.k8s.io", Kind: "MutatingWebhookConfiguration"}:   true,
		{Group: "admissionregistration.k8s.io", Kind: "ValidatingWebhookConfiguration"}: true,
		{Group: "", Kind: "ServiceAccount"}:                                             false,
		{Group: "", Kind: "Service"}:                                                    false,
		{Group: "apps", Kind: "Deployment"}:                                             false,
		{Group: "policy", Kind: "PodDisruptionBudget"}:                                  false,
		{Group: "networking.k8s.io", Kind: "NetworkPolicy"}:                             false,
		{Group: "rbac.authorization.k8s.io", Kind: "Role"}:                              false,
		{Group: "rbac.authorization.k8s.io", Kind: "RoleBinding"}:                       false,
		{Group: "cert-manager.io", Kind: "Issuer"}:                                      false,
		{Group: "cert-manager.io", Kind: "Certificate"}:                                 false,
	}
	for _, mode := range allCertModes {
		t.Run(mode, func(t *testing.T) {
			in := renderInstall(t, mode)
			scopes := map[schema.GroupKind]bool{}
			for gk, cluster := range clusterScoped {
				scopes[gk] = cluster
			}
			for _, u := range in.all("apiextensions.k8s.io", "CustomResourceDefinition") {
				crd := convertTo[apiextensionsv1.CustomResourceDefinition](t, u)
				scopes[schema.GroupKind{Group: crd.Spec.Group, Kind: crd.Spec.Names.Kind}] = crd.Spec.Scope == apiextensionsv1.ClusterScoped
			}
			if in.get("", "Namespace", "", issNamespace) == nil {
				t.Errorf("no Namespace %s", issNamespace)
			}
			if in.get("", "ServiceAccount", issNamespace, issWebhookName) == nil {
				t.Errorf("no ServiceAccount %s/%s", issNamespace, issWebhookName)
			}
			for _, o := range in.objs {
				gk := o.GroupVersionKind().GroupKind()
				cluster, known := scopes[gk]
				switch {
				case !known:
					t.Errorf("%s %s: a kind this test does not know the scope of; add it to clusterScoped", gk, o.GetName())
				case cluster && o.GetNamespace() != "":
					t.Errorf("%s %s: cluster-scoped, but in namespace %q", gk, o.GetName(), o.GetNamespace())
				case !cluster && o.GetNamespace() != issNamespace:
					t.Errorf("%s %s: in namespace %q, not %s", gk, o.GetName(), o.GetNamespace(), issNamespace)
				}
			}
		})
	}
}

func TestRenderedDeployment(t *testing.T) {
	checks := []struct {
		name  string
		check func(d *appsv1.Deployment, c *corev1.Container) error
	}{
		{"two replicas", func(d *appsv1.Deployment, _ *corev1.Container) error {
			if ptr.Deref(d.Spec.Replicas, 1) != 2 {
				return fmt.Errorf("replicas %d", ptr.Deref(d.Spec.Replicas, 1))
			}
			return nil
		}},
		{"selector matches the pod template", func(d *appsv1.Deployment, _ *corev1.Container) error {
			return selectsPods(d.Spec.Selector, d.Spec.Template.Labels)
		}},
		{"replicas on different nodes", func(d *appsv1.Deployment, _ *corev1.Container) error {
			a := d.Spec.Template.Spec.Affinity
			if a == nil || a.PodAntiAffinity == nil {
				return fmt.Errorf("no pod anti-affinity")
			}
			terms := slices.Clone(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution)
			for _, w := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
				terms = append(terms, w.PodAffinityTerm)
			}
			for _, term := range terms {
				if term.TopologyKey == corev1.LabelHostname && selectsPods(term.LabelSelector, d.Spec.Template.Labels) == nil {
					return nil
				}
			}
			return fmt.Errorf("no anti-affinity term on %s selects the webhook's own pods", corev1.LabelHostname)
		}},
		{"rolling update keeps every replica", func(d *appsv1.Deployment, _ *corev1.Container) error {
			s := d.Spec.Strategy
			if s.Type != "" && s.Type != appsv1.RollingUpdateDeploymentStrategyType {
				return fmt.Errorf("strategy %s", s.Type)
			}
			if s.RollingUpdate == nil || s.RollingUpdate.MaxUnavailable == nil {
				return fmt.Errorf("maxUnavailable is not set (the default is 25%%)")
			}
			n, err := intstr.GetScaledValueFromIntOrPercent(s.RollingUpdate.MaxUnavailable, int(ptr.Deref(d.Spec.Replicas, 1)), true)
			if err != nil || n != 0 {
				return fmt.Errorf("maxUnavailable %s, not 0", s.RollingUpdate.MaxUnavailable.String())
			}
			return nil
		}},
		{"pod runs as non-root with RuntimeDefault seccomp", func(d *appsv1.Deployment, _ *corev1.Container) error {
			sc := d.Spec.Template.Spec.SecurityContext
			if sc == nil || !ptr.Deref(sc.RunAsNonRoot, false) {
				return fmt.Errorf("runAsNonRoot is not true")
			}
			if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				return fmt.Errorf("seccompProfile is not RuntimeDefault")
			}
			return nil
		}},
		{"containers are locked down", func(d *appsv1.Deployment, _ *corev1.Container) error {
			for _, c := range podContainers(d) {
				sc := c.SecurityContext
				switch {
				case sc == nil:
					return fmt.Errorf("container %s: no securityContext", c.Name)
				case !(sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation):
					return fmt.Errorf("container %s: allowPrivilegeEscalation is not false", c.Name)
				case !ptr.Deref(sc.ReadOnlyRootFilesystem, false):
					return fmt.Errorf("container %s: readOnlyRootFilesystem is not true", c.Name)
				case sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL"):
					return fmt.Errorf("container %s: capabilities do not drop ALL", c.Name)
				case len(sc.Capabilities.Add) > 0:
					return fmt.Errorf("container %s: adds capabilities %v", c.Name, sc.Capabilities.Add)
				case ptr.Deref(sc.Privileged, false):
					return fmt.Errorf("container %s: privileged", c.Name)
				case sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot:
					return fmt.Errorf("container %s: overrides runAsNonRoot with false", c.Name)
				case sc.SeccompProfile != nil && sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
					return fmt.Errorf("container %s: overrides the seccompProfile with %s", c.Name, sc.SeccompProfile.Type)
				}
			}
			return nil
		}},
		{"cpu and memory requests and limits", func(d *appsv1.Deployment, _ *corev1.Container) error {
			for _, c := range podContainers(d) {
				for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
					req, okReq := c.Resources.Requests[r]
					lim, okLim := c.Resources.Limits[r]
					switch {
					case !okReq || req.IsZero():
						return fmt.Errorf("container %s: no %s request", c.Name, r)
					case !okLim || lim.IsZero():
						return fmt.Errorf("container %s: no %s limit", c.Name, r)
					case req.Cmp(lim) > 0:
						return fmt.Errorf("container %s: %s request %s above its limit %s", c.Name, r, req.String(), lim.String())
					}
				}
			}
			return nil
		}},
		{"ports are those the flags listen on", func(_ *appsv1.Deployment, c *corev1.Container) error {
			for name, flagName := range map[string]string{"webhook": "--webhook-port", "metrics": "--metrics-bind-address", "health": "--health-probe-bind-address"} {
				v := argValue(c.Args, flagName)
				if _, port, err := net.SplitHostPort(v); err == nil {
					v = port
				}
				n, ok := namedPort(c, name)
				if !ok || strconv.Itoa(int(n)) != v {
					return fmt.Errorf("the container port %s is %d, but %s listens on %s", name, n, flagName, v)
				}
			}
			return nil
		}},
		{"readiness /readyz and liveness /healthz on the health port", func(_ *appsv1.Deployment, c *corev1.Container) error {
			for _, p := range []struct {
				kind  string
				probe *corev1.Probe
				path  string
			}{{"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/healthz"}} {
				if p.probe == nil || p.probe.HTTPGet == nil {
					return fmt.Errorf("no HTTP %s probe", p.kind)
				}
				if p.probe.HTTPGet.Path != p.path || !refersToPort(p.probe.HTTPGet.Port, c, "health") {
					return fmt.Errorf("the %s probe gets %s on port %s, not %s on the health port", p.kind, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port.String(), p.path)
				}
			}
			return nil
		}},
		{"service account", func(d *appsv1.Deployment, _ *corev1.Container) error {
			if d.Spec.Template.Spec.ServiceAccountName != issWebhookName {
				return fmt.Errorf("serviceAccountName %q", d.Spec.Template.Spec.ServiceAccountName)
			}
			if !ptr.Deref(d.Spec.Template.Spec.AutomountServiceAccountToken, true) {
				return fmt.Errorf("automountServiceAccountToken is false: the webhook talks to the API server")
			}
			return nil
		}},
		{"the image given to Render", func(_ *appsv1.Deployment, c *corev1.Container) error {
			if c.Image != testImage {
				return fmt.Errorf("image %q", c.Image)
			}
			return nil
		}},
	}
	for _, mode := range allCertModes {
		in := renderInstall(t, mode)
		d := in.deployment(t)
		c := webhookContainer(t, d)
		for _, tc := range checks {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				if err := tc.check(d, c); err != nil {
					t.Error(err)
				}
			})
		}
	}
}

func podContainers(d *appsv1.Deployment) []corev1.Container {
	return slices.Concat(d.Spec.Template.Spec.InitContainers, d.Spec.Template.Spec.Containers)
}

func TestRenderedDisruptionBudgetAndService(t *testing.T) {
	for _, mode := range allCertModes {
		t.Run(mode, func(t *testing.T) {
			in := renderInstall(t, mode)
			d := in.deployment(t)
			c := webhookContainer(t, d)

			pdb := mustGet[policyv1.PodDisruptionBudget](t, in, "policy", "PodDisruptionBudget", issNamespace, issWebhookName)
			if m := pdb.Spec.MinAvailable; m == nil || m.Type != intstr.Int || m.IntVal != 1 {
				t.Errorf("PodDisruptionBudget: minAvailable %v, not 1", m)
			} else if m.IntVal >= ptr.Deref(d.Spec.Replicas, 1) {
				t.Errorf("PodDisruptionBudget: minAvailable %d leaves no replica to evict: node drains would block", m.IntVal)
			}
			if pdb.Spec.MaxUnavailable != nil {
				t.Errorf("PodDisruptionBudget: maxUnavailable is set besides minAvailable")
			}
			if err := selectsPods(pdb.Spec.Selector, d.Spec.Template.Labels); err != nil {
				t.Errorf("PodDisruptionBudget: %v", err)
			}

			svc := mustGet[corev1.Service](t, in, "", "Service", issNamespace, issWebhookName)
			if len(svc.Spec.Selector) == 0 {
				t.Errorf("Service: no selector")
			}
			for k, v := range svc.Spec.Selector {
				if d.Spec.Template.Labels[k] != v {
					t.Errorf("Service: the selector %s=%s does not match the webhook's pods", k, v)
				}
			}
			if svc.Spec.Type != "" && svc.Spec.Type != corev1.ServiceTypeClusterIP {
				t.Errorf("Service: type %s exposes the webhook outside the cluster", svc.Spec.Type)
			}
			exposed := slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool {
				return p.Port == 443 && (p.Protocol == "" || p.Protocol == corev1.ProtocolTCP) && refersToPort(p.TargetPort, c, "webhook")
			})
			if !exposed {
				t.Errorf("Service: no TCP port 443 to the container's webhook port: %+v", svc.Spec.Ports)
			}
		})
	}
}

func TestRenderedNetworkPolicy(t *testing.T) {
	for _, mode := range allCertModes {
		t.Run(mode, func(t *testing.T) {
			in := renderInstall(t, mode)
			d := in.deployment(t)
			c := webhookContainer(t, d)
			allowed := map[string]bool{"webhook": true, "metrics": true, "health": true}

			var selecting int
			for _, u := range in.all("networking.k8s.io", "NetworkPolicy") {
				np := convertTo[networkingv1.NetworkPolicy](t, u)
				if selectsPods(&np.Spec.PodSelector, d.Spec.Template.Labels) != nil {
					continue
				}
				selecting++
				if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
					t.Errorf("NetworkPolicy %s: policyTypes %v, not [Ingress]", np.Name, np.Spec.PolicyTypes)
				}
				if len(np.Spec.Ingress) == 0 {
					t.Errorf("NetworkPolicy %s: no ingress rule: the API server could not reach the webhook", np.Name)
				}
				open := map[string]bool{}
				for i, rule := range np.Spec.Ingress {
					if len(rule.Ports) == 0 {
						t.Errorf("NetworkPolicy %s: ingress rule %d names no port: it allows every port", np.Name, i)
					}
					for _, p := range rule.Ports {
						if p.Port == nil || p.EndPort != nil {
							t.Errorf("NetworkPolicy %s: ingress rule %d allows a range or every port", np.Name, i)
							continue
						}
						if p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP {
							t.Errorf("NetworkPolicy %s: ingress rule %d allows %s", np.Name, i, *p.Protocol)
						}
						name := ""
						for n := range allowed {
							if refersToPort(*p.Port, c, n) {
								name = n
							}
						}
						if name == "" {
							t.Errorf("NetworkPolicy %s: ingress rule %d allows port %s, not the webhook, metrics or health port", np.Name, i, p.Port.String())
							continue
						}
						open[name] = true
					}
				}
				for n := range allowed {
					if !open[n] {
						t.Errorf("NetworkPolicy %s: the %s port is not allowed", np.Name, n)
					}
				}
			}
			if selecting == 0 {
				t.Errorf("no NetworkPolicy selects the webhook's pods")
			}
		})
	}
}

func TestRenderedPolicyAndCRD(t *testing.T) {
	for _, mode := range allCertModes {
		t.Run(mode, func(t *testing.T) {
			in := renderInstall(t, mode)
			crdAt, policyAt := -1, -1
			for i, o := range in.objs {
				switch gvk := o.GroupVersionKind(); {
				case gvk.Kind == "CustomResourceDefinition" && o.GetName() == "isspolicies.iss.platform":
					crdAt = i
				case gvk.GroupKind() == v1alpha1.GroupVersion.WithKind("ISSPolicy").GroupKind() && o.GetName() == v1alpha1.PolicyName:
					policyAt = i
				}
			}
			if crdAt < 0 || policyAt < 0 {
				t.Fatalf("the CRD isspolicies.iss.platform (at %d) or the ISSPolicy %s (at %d) is not rendered", crdAt, v1alpha1.PolicyName, policyAt)
			}
			if crdAt > policyAt {
				t.Errorf("the ISSPolicy comes before its CRD: a single apply fails")
			}
			crd := convertTo[apiextensionsv1.CustomResourceDefinition](t, in.objs[crdAt])
			pol := in.objs[policyAt]
			gv := pol.GroupVersionKind().GroupVersion()
			if crd.Spec.Group != gv.Group || crd.Spec.Names.Kind != pol.GetKind() || crd.Spec.Scope != apiextensionsv1.ClusterScoped {
				t.Errorf("the CRD defines %s %s (%s), the ISSPolicy is %s", crd.Spec.Group, crd.Spec.Names.Kind, crd.Spec.Scope, pol.GroupVersionKind())
			}
			if !slices.ContainsFunc(crd.Spec.Versions, func(v apiextensionsv1.CustomResourceDefinitionVersion) bool {
				return v.Name == gv.Version && v.Served
			}) {
				t.Errorf("the CRD does not serve %s, the version of the ISSPolicy", gv.Version)
			}
		})
	}
}

// webhookView is what the tests check of a mutating or validating webhook.
type webhookView struct {
	kind               string
	name               string
	clientConfig       admissionregistrationv1.WebhookClientConfig
	rules              []admissionregistrationv1.RuleWithOperations
	failurePolicy      *admissionregistrationv1.FailurePolicyType
	matchPolicy        *admissionregistrationv1.MatchPolicyType
	namespaceSelector  *metav1.LabelSelector
	sideEffects        *admissionregistrationv1.SideEffectClass
	timeoutSeconds     *int32
	matchConditions    []admissionregistrationv1.MatchCondition
	reinvocationPolicy *admissionregistrationv1.ReinvocationPolicyType
	objectSelector     *metav1.LabelSelector
}

// writingWebhookName is the only mutating webhook with side effects: it writes the engine's
// egress policies.
const writingWebhookName = "engine-pods.mutate.iss.platform"

// recordsWritingWebhookName is the only validating webhook with side effects: it writes the
// records of Temporal builds' code.
const recordsWritingWebhookName = "workloads.validate.iss.platform"

// recordsGuardName is the one webhook sent objects of iss-webhook's own namespace: the build
// records it guards, selected by their label.
const recordsGuardName = "build-records.validate.iss.platform"

// excludedNamespaceNames are never sent to the webhook: the control plane's and its own.
var excludedNamespaceNames = []string{"iss-system", "kube-node-lease", "kube-public", "kube-system"}

// webhooks returns the configurations of the install and their webhooks.
func (in *renderedInstall) webhooks(t *testing.T) (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration, []webhookView) {
	t.Helper()
	const group = "admissionregistration.k8s.io"
	if m, v := len(in.all(group, "MutatingWebhookConfiguration")), len(in.all(group, "ValidatingWebhookConfiguration")); m != 1 || v != 1 {
		t.Fatalf("%d mutating and %d validating webhook configurations, not one of each", m, v)
	}
	// Both are named iss-webhook: --webhook-configuration, the self-signed ClusterRole's
	// resourceNames and the cert-manager patches name them so.
	mutating := mustGet[admissionregistrationv1.MutatingWebhookConfiguration](t, in, group, "MutatingWebhookConfiguration", "", issWebhookName)
	validating := mustGet[admissionregistrationv1.ValidatingWebhookConfiguration](t, in, group, "ValidatingWebhookConfiguration", "", issWebhookName)
	var out []webhookView
	for _, w := range mutating.Webhooks {
		out = append(out, webhookView{"mutating", w.Name, w.ClientConfig, w.Rules, w.FailurePolicy, w.MatchPolicy, w.NamespaceSelector, w.SideEffects, w.TimeoutSeconds, w.MatchConditions, w.ReinvocationPolicy, w.ObjectSelector})
	}
	for _, w := range validating.Webhooks {
		out = append(out, webhookView{"validating", w.Name, w.ClientConfig, w.Rules, w.FailurePolicy, w.MatchPolicy, w.NamespaceSelector, w.SideEffects, w.TimeoutSeconds, w.MatchConditions, nil, w.ObjectSelector})
	}
	return mutating, validating, out
}

func TestRenderedWebhookConfigurations(t *testing.T) {
	checks := []struct {
		name  string
		check func(w webhookView) error
	}{
		{"fails closed", func(w webhookView) error {
			if w.failurePolicy == nil || *w.failurePolicy != admissionregistrationv1.Fail {
				return fmt.Errorf("failurePolicy is not Fail")
			}
			return nil
		}},
		{"answers within 5s", func(w webhookView) error {
			if w.timeoutSeconds == nil || *w.timeoutSeconds > 5 {
				return fmt.Errorf("timeoutSeconds is not at most 5 (the default is 10)")
			}
			return nil
		}},
		{"matches equivalent versions", func(w webhookView) error {
			if w.matchPolicy == nil || *w.matchPolicy != admissionregistrationv1.Equivalent {
				return fmt.Errorf("matchPolicy is not Equivalent")
			}
			return nil
		}},
		{"excludes exactly the protected namespaces", func(w webhookView) error {
			sel := w.namespaceSelector
			if sel == nil {
				return fmt.Errorf("no namespaceSelector")
			}
			if _, ok := sel.MatchLabels[corev1.LabelMetadataName]; ok {
				return fmt.Errorf("namespaceSelector matches %s by label", corev1.LabelMetadataName)
			}
			var byName []metav1.LabelSelectorRequirement
			for _, e := range sel.MatchExpressions {
				if e.Key == corev1.LabelMetadataName {
					byName = append(byName, e)
				}
			}
			if w.name == recordsGuardName {
				// Its own namespace only, and there only the labelled records: nothing the
				// webhook runs on waits for it.
				if len(byName) != 1 || byName[0].Operator != metav1.LabelSelectorOpIn || !slices.Equal(byName[0].Values, []string{issNamespace}) {
					return fmt.Errorf("namespaceSelector is not exactly %s In [%s]: %v", corev1.LabelMetadataName, issNamespace, byName)
				}
				os := w.objectSelector
				if os == nil || len(os.MatchLabels) > 0 || len(os.MatchExpressions) != 1 || os.MatchExpressions[0].Key != "iss.platform/build-namespace" || os.MatchExpressions[0].Operator != metav1.LabelSelectorOpExists {
					return fmt.Errorf("objectSelector is not exactly iss.platform/build-namespace Exists: %v", os)
				}
				return nil
			}
			if w.objectSelector != nil {
				return fmt.Errorf("an objectSelector %v: the webhooks select objects by matchConditions, which see both sides of an update", w.objectSelector)
			}
			if len(byName) != 1 || byName[0].Operator != metav1.LabelSelectorOpNotIn {
				return fmt.Errorf("namespaceSelector has not exactly one NotIn on %s: %v", corev1.LabelMetadataName, byName)
			}
			values := slices.Sorted(slices.Values(byName[0].Values))
			if !slices.Equal(values, excludedNamespaceNames) {
				return fmt.Errorf("namespaceSelector excludes %v, not %v", values, excludedNamespaceNames)
			}
			return nil
		}},
		{"declares its side effects", func(w webhookView) error {
			want := admissionregistrationv1.SideEffectClassNone
			if w.kind == "mutating" && w.name == writingWebhookName || w.kind == "validating" && w.name == recordsWritingWebhookName {
				want = admissionregistrationv1.SideEffectClassNoneOnDryRun
			}
			if w.sideEffects == nil || *w.sideEffects != want {
				return fmt.Errorf("sideEffects %v, not %s", ptr.Deref(w.sideEffects, ""), want)
			}
			return nil
		}},
		{"mutating webhooks are reinvoked", func(w webhookView) error {
			if w.kind == "mutating" && ptr.Deref(w.reinvocationPolicy, "") != admissionregistrationv1.IfNeededReinvocationPolicy {
				return fmt.Errorf("reinvocationPolicy is not IfNeeded")
			}
			return nil
		}},
		{"pod webhooks have matchConditions", func(w webhookView) error {
			for _, r := range w.rules {
				for _, res := range r.Resources {
					if (res == "pods" || strings.HasPrefix(res, "pods/")) && len(w.matchConditions) == 0 {
						return fmt.Errorf("rules on %s without matchConditions: every pod of the cluster costs a call", res)
					}
				}
			}
			return nil
		}},
		{"no wildcard rules", func(w webhookView) error {
			if len(w.rules) == 0 {
				return fmt.Errorf("no rules")
			}
			for _, r := range w.rules {
				if slices.Contains(r.Operations, admissionregistrationv1.OperationAll) {
					return fmt.Errorf("a rule on %v has operation *", r.Resources)
				}
				for _, res := range r.Resources {
					if strings.Contains(res, "*") {
						return fmt.Errorf("a rule has resource %q", res)
					}
				}
			}
			return nil
		}},
		{"calls the Service iss-system/iss-webhook on 443", func(w webhookView) error {
			cc := w.clientConfig
			switch {
			case cc.URL != nil:
				return fmt.Errorf("clientConfig has a URL")
			case cc.Service == nil:
				return fmt.Errorf("clientConfig has no service")
			case cc.Service.Namespace != issNamespace || cc.Service.Name != issWebhookName || ptr.Deref(cc.Service.Port, 443) != 443:
				return fmt.Errorf("clientConfig calls %s/%s:%d", cc.Service.Namespace, cc.Service.Name, ptr.Deref(cc.Service.Port, 443))
			case ptr.Deref(cc.Service.Path, "") == "":
				return fmt.Errorf("clientConfig has no path")
			}
			return nil
		}},
	}
	for _, mode := range allCertModes {
		in := renderInstall(t, mode)
		_, _, webhooks := in.webhooks(t)
		if !slices.ContainsFunc(webhooks, func(w webhookView) bool { return w.kind == "mutating" && w.name == writingWebhookName }) {
			t.Errorf("%s: no mutating webhook %s", mode, writingWebhookName)
		}
		for _, tc := range checks {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				for _, w := range webhooks {
					if err := tc.check(w); err != nil {
						t.Errorf("%s webhook %s: %v", w.kind, w.name, err)
					}
				}
			})
		}
	}
}

// certDirVolume returns the volume the webhook container mounts at --cert-dir, and its mount.
func certDirVolume(t *testing.T, d *appsv1.Deployment) (*corev1.Volume, *corev1.VolumeMount) {
	t.Helper()
	c := webhookContainer(t, d)
	dir := argValue(c.Args, "--cert-dir")
	for i := range c.VolumeMounts {
		m := &c.VolumeMounts[i]
		if m.MountPath != dir {
			continue
		}
		for j := range d.Spec.Template.Spec.Volumes {
			if v := &d.Spec.Template.Spec.Volumes[j]; v.Name == m.Name {
				return v, m
			}
		}
		t.Fatalf("the volume %s mounted at --cert-dir %s does not exist", m.Name, dir)
	}
	t.Fatalf("nothing is mounted at --cert-dir %s", dir)
	return nil, nil
}

func TestRenderedCertificateModes(t *testing.T) {
	t.Run(CertModeCertManager, func(t *testing.T) {
		in := renderInstall(t, CertModeCertManager)
		d := in.deployment(t)
		c := webhookContainer(t, d)
		mutating, validating, _ := in.webhooks(t)

		if len(in.all("cert-manager.io", "Issuer"))+len(in.all("cert-manager.io", "ClusterIssuer")) == 0 {
			t.Errorf("no cert-manager Issuer")
		}
		if len(in.all("cert-manager.io", "Certificate")) == 0 {
			t.Errorf("no cert-manager Certificate")
		}
		for _, o := range []metav1.Object{mutating, validating} {
			if got := o.GetAnnotations()[injectCAFromAnnotation]; got != issNamespace+"/"+issWebhookName {
				t.Errorf("%T: %s is %q, not %s/%s", o, injectCAFromAnnotation, got, issNamespace, issWebhookName)
			}
		}
		// The annotation names this Certificate; it must be the one the webhook serves.
		cert := mustGet[certmanagerv1.Certificate](t, in, "cert-manager.io", "Certificate", issNamespace, issWebhookName)
		if !slices.Contains(cert.Spec.DNSNames, issWebhookName+"."+issNamespace+".svc") {
			t.Errorf("Certificate: dnsNames %v lack %s.%s.svc, the name the API server calls", cert.Spec.DNSNames, issWebhookName, issNamespace)
		}
		ref := cert.Spec.IssuerRef
		if (ref.Kind == "" || ref.Kind == "Issuer") && in.get("cert-manager.io", "Issuer", issNamespace, ref.Name) == nil {
			t.Errorf("Certificate: its Issuer %s is not rendered", ref.Name)
		}
		vol, _ := certDirVolume(t, d)
		if vol.Secret == nil || vol.Secret.SecretName != cert.Spec.SecretName {
			t.Errorf("--cert-dir is volume %s, not the Certificate's Secret %s", vol.Name, cert.Spec.SecretName)
		}
		if m := argValue(c.Args, "--cert-mode"); m != CertModeCertManager {
			t.Errorf("the Deployment runs --cert-mode=%s", m)
		}
		for _, kind := range []string{"Role", "ClusterRole"} {
			for _, o := range in.all("rbac.authorization.k8s.io", kind) {
				if strings.Contains(o.GetName(), "self-signed") {
					t.Errorf("the self-signed %s %s is rendered", kind, o.GetName())
				}
			}
		}
	})

	t.Run(CertModeSelfSigned, func(t *testing.T) {
		in := renderInstall(t, CertModeSelfSigned)
		d := in.deployment(t)
		c := webhookContainer(t, d)
		for _, o := range in.objs {
			if gvk := o.GroupVersionKind(); strings.HasSuffix(gvk.Group, "cert-manager.io") {
				t.Errorf("%s %s/%s: a cert-manager object", gvk.Kind, o.GetNamespace(), o.GetName())
			}
			if _, ok := o.GetAnnotations()[injectCAFromAnnotation]; ok {
				t.Errorf("%s %s: carries %s", o.GetKind(), o.GetName(), injectCAFromAnnotation)
			}
		}
		if !slices.Contains(c.Args, "--cert-mode=self-signed") || argValue(c.Args, "--cert-mode") != CertModeSelfSigned {
			t.Errorf("the Deployment's args %v lack --cert-mode=self-signed", c.Args)
		}
		vol, mount := certDirVolume(t, d)
		if vol.EmptyDir == nil || vol.Secret != nil {
			t.Errorf("--cert-dir is volume %s, not an emptyDir", vol.Name)
		}
		if vol.Name != "tls" {
			t.Errorf("--cert-dir is volume %s, not tls", vol.Name)
		}
		if mount.ReadOnly {
			t.Errorf("--cert-dir is mounted read-only: the webhook writes its serving certificate there")
		}
		if in.get("rbac.authorization.k8s.io", "Role", issNamespace, "iss-webhook-self-signed") == nil {
			t.Errorf("no Role %s/iss-webhook-self-signed", issNamespace)
		}
		if in.get("rbac.authorization.k8s.io", "ClusterRole", "", "iss-webhook-self-signed") != nil {
			t.Errorf("a ClusterRole iss-webhook-self-signed: the base RBAC grants what the mode needs cluster-wide")
		}
	})
}

// rbacGrant is one verb on one resource that the webhook's ServiceAccount holds.
type rbacGrant struct {
	namespace string // "" for every namespace
	group     string
	resource  string
	verb      string
	names     string // the resourceNames, comma-separated; "" for any name
}

func (g rbacGrant) String() string {
	scope := "cluster-wide"
	if g.namespace != "" {
		scope = "in " + g.namespace
	}
	resource := g.resource
	if g.group != "" {
		resource += "." + g.group
	}
	s := fmt.Sprintf("%s %s %s", g.verb, resource, scope)
	if g.names != "" {
		s += " named " + g.names
	}
	return s
}

// allowedPermission is an entry of the allow-list: verbs on a resource, in a namespace or cluster-wide,
// of any name or of the names listed.
type allowedPermission struct {
	selfSignedOnly bool
	namespace      string
	group          string
	resource       string
	verbs          []string
	names          []string
}

// allowedPermissions are all the permissions the install grants the webhook, each with what uses
// it. A permission the manifests add must be added here, with its reason.
var allowedPermissions = []allowedPermission{
	// The informer of engine pods (cacheOptions, CachedEngines, the egress Collector), and the
	// Collectors' uncached Lists before they delete a policy or a build record. Every read goes
	// through informers (list, watch): nothing asks for a single pod, so nothing is granted get.
	{group: "", resource: "pods", verbs: []string{"list", "watch"}},
	// The index of user-private Secrets (internal/usersecrets): informers of ExternalSecrets
	// (which Secrets they sync from users/ paths, and which they template from), of PushSecrets
	// (which Secrets they push, for an ExternalSecret that would make one private) and of pods
	// (which Secrets they use, for exec, attach and port-forward), the latter covered by the
	// pods' grant above.
	{group: "external-secrets.io", resource: "externalsecrets", verbs: []string{"list", "watch"}},
	{group: "external-secrets.io", resource: "pushsecrets", verbs: []string{"list", "watch"}},
	// The metadata informer of namespaces, for their ISS labels (CachedNamespaces).
	{group: "", resource: "namespaces", verbs: []string{"list", "watch"}},
	// The egress Writer applies the generated NetworkPolicies server-side (patch, and create when
	// the apply creates), reads them from its informer (list, watch), and the Collector deletes
	// those no engine selects.
	{group: "networking.k8s.io", resource: "networkpolicies", verbs: []string{"list", "watch", "create", "patch", "delete"}},
	// The same for the FQDN policies of the cilium backend, when the cluster serves them.
	{group: "cilium.io", resource: "ciliumnetworkpolicies", verbs: []string{"list", "watch", "create", "patch", "delete"}},
	// The same for the FQDN policies of the clusternetworkpolicy backend.
	{group: "policy.networking.k8s.io", resource: "clusternetworkpolicies", verbs: []string{"list", "watch", "create", "patch", "delete"}},
	// The build records' metadata informers of the Deployments and ReplicaSets that carry a
	// build id (buildrecord.CacheOptions), and the Collector's uncached List before it deletes
	// a record.
	{group: "apps", resource: "deployments", verbs: []string{"list", "watch"}},
	{group: "apps", resource: "replicasets", verbs: []string{"list", "watch"}},
	// The build records themselves, ConfigMaps in the webhook's namespace: the Store creates
	// them during admission, gets one from the API server when a concurrent create was first,
	// marks them used (update); the informer lists and watches them; the Collector deletes them.
	{namespace: issNamespace, group: "", resource: "configmaps", verbs: []string{"get", "list", "watch", "create", "update", "delete"}},
	// whoAmI: the webhook learns its user name once, to recognise its own writes.
	{group: "authentication.k8s.io", resource: "selfsubjectreviews", verbs: []string{"create"}},
	// The ISSPolicy controller's informer (reload.Reconciler).
	{group: "iss.platform", resource: "isspolicies", verbs: []string{"list", "watch"}},
	// The Reconciler reports in the ISSPolicy's status whether it is enforced.
	{group: "iss.platform", resource: "isspolicies/status", verbs: []string{"update"}},
	// Leader election of the Collector and the self-signed Keeper: client-go's LeaseLock gets,
	// creates and updates the Lease.
	{namespace: issNamespace, group: "coordination.k8s.io", resource: "leases", verbs: []string{"get", "create", "update"}},
	// Leader election records its events through controller-runtime's core/v1 event recorder,
	// which creates events and patches them when they repeat.
	{namespace: issNamespace, group: "", resource: "events", verbs: []string{"create", "patch"}},

	// Self-signed mode: the Keeper and Bootstrap create the Secret of the CA and serving
	// certificate on first start (a create cannot be restricted by name).
	{selfSignedOnly: true, namespace: issNamespace, group: "", resource: "secrets", verbs: []string{"create"}},
	// The Keeper and Bootstrap read the Secret from the API server and rotate it (get, update);
	// the informer that holds it for the Syncer lists and watches it with the field selector
	// metadata.name (cacheOptions), which the name restriction admits.
	{selfSignedOnly: true, namespace: issNamespace, group: "", resource: "secrets", verbs: []string{"get", "list", "watch", "update"}, names: []string{"iss-webhook-tls"}},
	// The configsync Syncer keeps the engine image tests of its own webhook configurations in
	// step with the policy (get, update), and in self-signed mode the Keeper injects its CA
	// bundle into them.
	{group: "admissionregistration.k8s.io", resource: "mutatingwebhookconfigurations", verbs: []string{"get", "update"}, names: []string{issWebhookName}},
	{group: "admissionregistration.k8s.io", resource: "validatingwebhookconfigurations", verbs: []string{"get", "update"}, names: []string{issWebhookName}},
}

// grants returns every permission the roles bound to the webhook's ServiceAccount hold.
func (in *renderedInstall) grants(t *testing.T) map[rbacGrant]bool {
	t.Helper()
	const group = "rbac.authorization.k8s.io"
	isWebhook := func(s rbacv1.Subject, bindingNamespace string) bool {
		ns := s.Namespace
		if ns == "" {
			ns = bindingNamespace
		}
		return s.Kind == rbacv1.ServiceAccountKind && s.Name == issWebhookName && ns == issNamespace
	}
	rules := func(ref rbacv1.RoleRef, namespace string) ([]rbacv1.PolicyRule, bool) {
		switch ref.Kind {
		case "ClusterRole":
			if u := in.get(group, "ClusterRole", "", ref.Name); u != nil {
				return convertTo[rbacv1.ClusterRole](t, u).Rules, true
			}
		case "Role":
			if u := in.get(group, "Role", namespace, ref.Name); u != nil {
				return convertTo[rbacv1.Role](t, u).Rules, true
			}
		}
		return nil, false
	}
	out := map[rbacGrant]bool{}
	add := func(binding string, ref rbacv1.RoleRef, subjects []rbacv1.Subject, namespace string) {
		if !slices.ContainsFunc(subjects, func(s rbacv1.Subject) bool { return isWebhook(s, namespace) }) {
			return
		}
		rs, ok := rules(ref, namespace)
		if !ok {
			t.Errorf("%s binds the %s %s, which the install does not render", binding, ref.Kind, ref.Name)
			return
		}
		for _, r := range rs {
			if len(r.NonResourceURLs) > 0 {
				t.Errorf("%s: the %s %s grants non-resource URLs %v", binding, ref.Kind, ref.Name, r.NonResourceURLs)
			}
			names := slices.Sorted(slices.Values(r.ResourceNames))
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, v := range r.Verbs {
						out[rbacGrant{namespace, g, res, v, strings.Join(names, ",")}] = true
					}
				}
			}
		}
	}
	for _, u := range in.all(group, "ClusterRoleBinding") {
		b := convertTo[rbacv1.ClusterRoleBinding](t, u)
		add("ClusterRoleBinding "+b.Name, b.RoleRef, b.Subjects, "")
	}
	for _, u := range in.all(group, "RoleBinding") {
		b := convertTo[rbacv1.RoleBinding](t, u)
		add("RoleBinding "+b.Namespace+"/"+b.Name, b.RoleRef, b.Subjects, b.Namespace)
	}
	return out
}

func TestRenderedRBACIsLeastPrivilege(t *testing.T) {
	writeVerbs := []string{"create", "update", "patch", "delete", "deletecollection"}
	checks := []struct {
		name  string
		check func(mode string, g rbacGrant) error
	}{
		{"no wildcards", func(_ string, g rbacGrant) error {
			if strings.Contains(g.verb, "*") || strings.Contains(g.resource, "*") || g.group == "*" {
				return fmt.Errorf("a wildcard")
			}
			return nil
		}},
		{"secrets in iss-system only", func(_ string, g rbacGrant) error {
			if g.group == "" && (g.resource == "secrets" || strings.HasPrefix(g.resource, "secrets/")) && g.namespace != issNamespace {
				return fmt.Errorf("secrets outside %s", issNamespace)
			}
			return nil
		}},
		{"no privilege escalation", func(_ string, g rbacGrant) error {
			if slices.Contains([]string{"escalate", "bind", "impersonate"}, g.verb) {
				return fmt.Errorf("verb %s", g.verb)
			}
			return nil
		}},
		{"webhook configurations written by name only", func(mode string, g rbacGrant) error {
			if g.group != "admissionregistration.k8s.io" || !slices.Contains(writeVerbs, g.verb) {
				return nil
			}
			if g.names != issWebhookName {
				return fmt.Errorf("writes admission configurations not restricted to resourceNames [%s]", issWebhookName)
			}
			return nil
		}},
	}
	for _, mode := range allCertModes {
		t.Run(mode, func(t *testing.T) {
			in := renderInstall(t, mode)
			granted := in.grants(t)
			if len(granted) == 0 {
				t.Fatalf("no role is bound to the ServiceAccount %s/%s", issNamespace, issWebhookName)
			}
			for _, tc := range checks {
				for g := range granted {
					if err := tc.check(mode, g); err != nil {
						t.Errorf("%s: %s: %v", tc.name, g, err)
					}
				}
			}

			allowed := map[rbacGrant]bool{}
			for _, p := range allowedPermissions {
				if p.selfSignedOnly && mode != CertModeSelfSigned {
					continue
				}
				for _, v := range p.verbs {
					allowed[rbacGrant{p.namespace, p.group, p.resource, v, strings.Join(slices.Sorted(slices.Values(p.names)), ",")}] = true
				}
			}
			var extra, missing []string
			for g := range granted {
				if !allowed[g] {
					extra = append(extra, g.String())
				}
			}
			for g := range allowed {
				if !granted[g] {
					missing = append(missing, g.String())
				}
			}
			sort.Strings(extra)
			sort.Strings(missing)
			for _, g := range extra {
				t.Errorf("granted but not in allowedPermissions (add it with what uses it, or remove it from the manifests): %s", g)
			}
			for _, g := range missing {
				t.Errorf("in allowedPermissions but not granted (remove it from the table): %s", g)
			}
		})
	}
}
