package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	. "github.com/onsi/gomega/gstruct"

	"github.com/iss-platform/iss-webhook/policy"
)

// engineWith renders an engine pod with the given ISS annotations.
func engineWith(name, ns string, annotations map[string]string) string {
	var b strings.Builder
	for k, v := range annotations {
		q, _ := json.Marshal(v)
		fmt.Fprintf(&b, "    %s: %s\n", k, q)
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
  annotations:
%s
spec:
  containers:
    - name: dagger-engine
      image: registry.dagger.io/engine:v0.19.7
`, name, ns, b.String())
}

// hashOf is the egress-policy label the webhook gives engines with this annotation.
func hashOf(networkAccess string) string {
	network := policy.DefaultNetworkSection()
	list, errs := network.ParseNetworkAccess(networkAccess)
	Expect(errs).To(BeEmpty())
	return list.Hash()
}

// defaultPrivateRanges are the default policy's private ranges as the generated objects list them.
func defaultPrivateRanges() []any {
	var ranges []any
	for _, r := range policy.DefaultPrivateRanges() {
		ranges = append(ranges, r.String())
	}
	return ranges
}

// getJSON returns an object as a map, or nil when it does not exist.
func getJSON(ctx context.Context, args ...string) map[string]any {
	out, err := kubectl(ctx, "", append([]string{"get", "-o", "json"}, args...)...)
	if err != nil {
		Expect(err).To(MatchError(ContainSubstring("NotFound")))
		return nil
	}
	var obj map[string]any
	Expect(json.Unmarshal([]byte(out), &obj)).To(Succeed())
	return obj
}

func deletePodIn(ns string) func(ctx context.Context, name string) {
	return func(ctx context.Context, name string) {
		_, err := kubectl(ctx, "", "delete", "pod", name, "-n", ns, "--ignore-not-found", "--wait=false")
		Expect(err).NotTo(HaveOccurred())
	}
}

var _ = Describe("Engine secrets", func() {
	It("mounts each logical key from its Secret in one read-only projected volume, with no init container or sidecar", func(ctx SpecContext) {
		DeferCleanup(deletePod, "engine-secrets")
		_, err := kubectl(ctx, engineWith("engine-secrets", namespace, map[string]string{policy.AnnotationSecrets: "API_TOKEN,DB_PASSWORD"}),
			"--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		pod := getJSON(ctx, "pod", "engine-secrets", "-n", namespace)
		spec := pod["spec"].(map[string]any)
		Expect(spec).NotTo(HaveKey("initContainers"))
		Expect(spec["containers"]).To(HaveLen(1))
		Expect(spec["volumes"]).To(ContainElement(MatchKeys(IgnoreExtras, Keys{
			"name": Equal("iss-secrets"),
			"projected": MatchKeys(IgnoreExtras, Keys{"sources": ConsistOf(
				MatchKeys(IgnoreExtras, Keys{"secret": Equal(map[string]any{"name": "iss-api-token", "items": []any{map[string]any{"key": "API_TOKEN", "path": "API_TOKEN"}}})}),
				MatchKeys(IgnoreExtras, Keys{"secret": Equal(map[string]any{"name": "iss-db-password", "items": []any{map[string]any{"key": "DB_PASSWORD", "path": "DB_PASSWORD"}}})}),
			)}),
		})))
		Expect(spec["containers"].([]any)[0]).To(MatchKeys(IgnoreExtras, Keys{"volumeMounts": ContainElement(Equal(map[string]any{
			"name": "iss-secrets", "mountPath": "/var/run/secrets/iss", "readOnly": true,
		}))}))
	})

	It("denies keys that are not environment variable names, and secret-agent sidecars", func(ctx SpecContext) {
		_, err := kubectl(ctx, engineWith("engine-bad-keys", namespace, map[string]string{
			policy.AnnotationSecrets:           "API_TOKEN,1PASSWORD,db-password",
			"vault.hashicorp.com/agent-inject": "true",
		}), "apply", "-f", "-")
		Expect(err).To(MatchError(And(
			ContainSubstring(`metadata.annotations[iss.platform/secrets]: Invalid value: "API_TOKEN,1PASSWORD,db-password": key "1PASSWORD" is not an environment variable name`),
			ContainSubstring(`key "db-password" is not an environment variable name`),
			ContainSubstring(`metadata.annotations[vault.hashicorp.com/agent-inject]: Forbidden: secret-agent sidecars are not allowed on engines: secrets arrive through the External Secrets Operator`),
		)))
	})
})

var _ = Describe("Engine egress", func() {
	const github = `[{"host":"api.github.com","ports":[443]},{"host":"*.pkg.dev"}]`

	It("labels the engine and writes the deny-all-but-DNS NetworkPolicy and the FQDN policy, exactly", func(ctx SpecContext) {
		DeferCleanup(deletePod, "engine-egress")
		_, err := kubectl(ctx, engineWith("engine-egress", namespace, map[string]string{policy.AnnotationNetworkAccess: github}), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		hash := hashOf(github)
		pod := getJSON(ctx, "pod", "engine-egress", "-n", namespace)
		Expect(pod["metadata"].(map[string]any)["labels"]).To(HaveKeyWithValue(policy.LabelEgressPolicy, hash))

		np := getJSON(ctx, "networkpolicy", policy.EgressPolicyName(hash), "-n", namespace)
		Expect(np).NotTo(BeNil())
		Expect(np["metadata"].(map[string]any)["labels"]).To(HaveKeyWithValue(policy.LabelManagedBy, policy.ManagedByValue))
		Expect(np["spec"]).To(Equal(map[string]any{
			"podSelector": map[string]any{"matchLabels": map[string]any{policy.LabelEgressPolicy: hash}},
			"policyTypes": []any{"Egress"},
			"egress": []any{map[string]any{
				"ports": []any{map[string]any{"port": float64(53), "protocol": "UDP"}, map[string]any{"port": float64(53), "protocol": "TCP"}},
				"to": []any{map[string]any{
					"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "kube-system"}},
					"podSelector":       map[string]any{"matchLabels": map[string]any{"k8s-app": "kube-dns"}},
				}},
			}},
		}))

		cnp := getJSON(ctx, "ciliumnetworkpolicy", policy.EgressPolicyName(hash), "-n", namespace)
		Expect(cnp).NotTo(BeNil(), "the local control plane serves CiliumNetworkPolicy, so auto picks cilium")
		Expect(cnp["spec"]).To(Equal(map[string]any{
			"endpointSelector": map[string]any{"matchLabels": map[string]any{policy.LabelEgressPolicy: hash}},
			"egress": []any{
				map[string]any{
					"toEndpoints": []any{map[string]any{"matchLabels": map[string]any{"k8s:io.kubernetes.pod.namespace": "kube-system", "k8s:k8s-app": "kube-dns"}}},
					"toPorts":     []any{map[string]any{"ports": []any{map[string]any{"port": "53", "protocol": "ANY"}}, "rules": map[string]any{"dns": []any{map[string]any{"matchPattern": "*"}}}}},
				},
				map[string]any{
					"toFQDNs": []any{map[string]any{"matchPattern": "**.pkg.dev"}, map[string]any{"matchName": "api.github.com"}},
					"toPorts": []any{map[string]any{"ports": []any{map[string]any{"port": "443", "protocol": "TCP"}}}},
				},
			},
			"egressDeny": []any{map[string]any{"toCIDR": defaultPrivateRanges()}},
		}))
	})

	It("denies wildcards over public suffixes and names that spell an IP address, as an ordinary user, each with its entry and a fix", func(ctx SpecContext) {
		access := `[{"host":"*.co.uk"},{"host":"*.amazonaws.com"},{"host":"169.254.169.254.nip.io","ports":[80]},{"host":"*.nip.io"},{"host":"*.CO.UK."},{"host":"*.pkg.dev"}]`
		_, err := kubectl(ctx, engineWith("engine-wildcards", namespace, map[string]string{policy.AnnotationNetworkAccess: access}), "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(And(
			ContainSubstring(`metadata.annotations[iss.platform/network-access]: Invalid value:`),
			ContainSubstring(`entry [0]: host "*.co.uk": "co.uk" is a public suffix (rule "co.uk" in the ICANN section of the Public Suffix List)`),
			ContainSubstring(`list the hosts you need by name, or put the wildcard before one owner's domain, such as "*.example.co.uk"`),
			ContainSubstring(`entry [1]: host "*.amazonaws.com": the Public Suffix List has public suffixes below "amazonaws.com"`),
			ContainSubstring(`entry [2]: host "169.254.169.254.nip.io": embeds the IP address 169.254.169.254`),
			ContainSubstring(`entry [3]: host "*.nip.io": the policy denies wildcards over "nip.io"`),
			ContainSubstring(`entry [4]: host "*.CO.UK.": must be lower case, must not end with a dot, and "*.co.uk" is not allowed either`),
		)))
		Expect(err.Error()).NotTo(ContainSubstring(`entry [5]`), "*.pkg.dev is one owner's domain")
		Expect(getJSON(ctx, "pod", "engine-wildcards", "-n", namespace)).To(BeNil())

		By("following the fix: one owner's domain and names")
		DeferCleanup(deletePod, "engine-wildcards")
		fixed := `[{"host":"*.example.co.uk"},{"host":"mybucket.s3.amazonaws.com"},{"host":"*.pkg.dev"}]`
		_, err = kubectl(ctx, engineWith("engine-wildcards", namespace, map[string]string{policy.AnnotationNetworkAccess: fixed}), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())

		By("refusing the wildcard as a change of the admitted engine")
		_, err = kubectl(ctx, "", "--as", "alice", "annotate", "--overwrite", "pod", "engine-wildcards", "-n", namespace, policy.AnnotationNetworkAccess+`=[{"host":"*.co.uk"}]`)
		Expect(err).To(MatchError(And(
			ContainSubstring(`metadata.annotations[iss.platform/network-access]: Forbidden: annotation changed from`),
			ContainSubstring(`"co.uk" is a public suffix`),
		)))
	})

	It("denies the private ranges in the generated objects even to an allowed name, and follows the policy's ranges and wildcard bases", func(ctx SpecContext) {
		DeferCleanup(applyPolicy, suitePolicy())
		DeferCleanup(deletePod, "engine-ranges")
		access := `[{"host":"ranges.example.org"}]`
		name := policy.EgressPolicyName(hashOf(access))
		_, err := kubectl(ctx, engineWith("engine-ranges", namespace, map[string]string{policy.AnnotationNetworkAccess: access}), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		egressDeny := func(ctx context.Context) any {
			cnp := getJSON(ctx, "ciliumnetworkpolicy", name, "-n", namespace)
			if cnp == nil {
				return nil
			}
			return cnp["spec"].(map[string]any)["egressDeny"]
		}
		Expect(egressDeny(ctx)).To(Equal([]any{map[string]any{"toCIDR": defaultPrivateRanges()}}))

		By("refusing ranges that are not CIDRs and a base in both lists")
		_, err = kubectl(ctx, policyManifest(suitePolicy()+"  privateRanges: [10.0.0.1/8]\n  wildcardBases: {allow: [nip.io], deny: [nip.io]}\n"), "apply", "-f", "-")
		Expect(err).To(MatchError(And(
			ContainSubstring(`spec.network.privateRanges[0]: Invalid value: "10.0.0.1/8": must be a CIDR with no bits set after the prefix, such as 10.0.0.0/8`),
			ContainSubstring("spec.network.wildcardBases: Invalid value: a domain may not be in both allow and deny"),
		)))

		By("rewriting the running engine's objects with the policy's ranges")
		applyPolicy(ctx, suitePolicy()+"  privateRanges: [169.254.0.0/16, fd00:ec2::254/128]\n  wildcardBases: {allow: [amazonaws.com]}\n")
		Eventually(egressDeny).WithContext(ctx).WithTimeout(time.Minute).WithPolling(time.Second).
			Should(Equal([]any{map[string]any{"toCIDR": []any{"169.254.0.0/16", "fd00:ec2::254/128"}}}))

		By("admitting a wildcard over a base the policy allows")
		DeferCleanup(deletePod, "engine-allowed-base")
		_, err = kubectl(ctx, engineWith("engine-allowed-base", namespace, map[string]string{policy.AnnotationNetworkAccess: `[{"host":"*.amazonaws.com"}]`}), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
	})

	It("shares the policies between engines with equal allowlists, however they are written", func(ctx SpecContext) {
		DeferCleanup(deletePod, "engine-share-1")
		DeferCleanup(deletePod, "engine-share-2")
		a := `[{"host":"registry.npmjs.org"},{"host":"proxy.golang.org","ports":[443]}]`
		b := `[{"host":"proxy.golang.org","protocol":"TCP"},{"ports":[443,443],"host":"registry.npmjs.org"}]`
		_, err := kubectl(ctx, engineWith("engine-share-1", namespace, map[string]string{policy.AnnotationNetworkAccess: a}), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, engineWith("engine-share-2", namespace, map[string]string{policy.AnnotationNetworkAccess: b}), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		Expect(hashOf(a)).To(Equal(hashOf(b)))
		out, err := kubectl(ctx, "", "get", "networkpolicies", "-n", namespace, "-l", policy.LabelEgressPolicy+"="+hashOf(a), "-o", "name")
		Expect(err).NotTo(HaveOccurred())
		Expect(strings.Fields(out)).To(Equal([]string{"networkpolicy.networking.k8s.io/" + policy.EgressPolicyName(hashOf(a))}))
	})

	It("writes nothing on --dry-run=server", func(ctx SpecContext) {
		access := `[{"host":"dry.example.org"}]`
		_, err := kubectl(ctx, engineWith("engine-dry", namespace, map[string]string{policy.AnnotationNetworkAccess: access}), "apply", "--dry-run=server", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		Expect(getJSON(ctx, "networkpolicy", policy.EgressPolicyName(hashOf(access)), "-n", namespace)).To(BeNil())
		Expect(getJSON(ctx, "ciliumnetworkpolicy", policy.EgressPolicyName(hashOf(access)), "-n", namespace)).To(BeNil())
	})

	It("collects the policies once no pod has selected them for the grace period", func(ctx SpecContext) {
		access := `[{"host":"gc.example.org"}]`
		name := policy.EgressPolicyName(hashOf(access))
		_, err := kubectl(ctx, engineWith("engine-gc", namespace, map[string]string{policy.AnnotationNetworkAccess: access}), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		Expect(getJSON(ctx, "networkpolicy", name, "-n", namespace)).NotTo(BeNil())
		Consistently(func(ctx context.Context) map[string]any {
			return getJSON(ctx, "networkpolicy", name, "-n", namespace)
		}).WithContext(ctx).WithTimeout(2*gcGracePeriod).WithPolling(time.Second).ShouldNot(BeNil(), "kept while the pod runs")
		deletePod(ctx, "engine-gc")
		Eventually(func(ctx context.Context) []map[string]any {
			return []map[string]any{getJSON(ctx, "networkpolicy", name, "-n", namespace), getJSON(ctx, "ciliumnetworkpolicy", name, "-n", namespace)}
		}).WithContext(ctx).WithTimeout(3*time.Minute).WithPolling(time.Second).Should(Equal([]map[string]any{nil, nil}), "on a node the kubelet first stops the pod")
	})

	It("denies an ordinary user changing or deleting a generated policy", func(ctx SpecContext) {
		DeferCleanup(deletePod, "engine-guarded")
		access := `[{"host":"guarded.example.org"}]`
		name := policy.EgressPolicyName(hashOf(access))
		_, err := kubectl(ctx, engineWith("engine-guarded", namespace, map[string]string{policy.AnnotationNetworkAccess: access}), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "", "--as", "alice", "delete", "networkpolicy", name, "-n", namespace)
		Expect(err).To(MatchError(ContainSubstring(fmt.Sprintf("NetworkPolicy %s/%s is generated by iss-webhook", namespace, name))))
		_, err = kubectl(ctx, "", "--as", "alice", "label", "networkpolicy", name, "-n", namespace, "app.kubernetes.io/managed-by-", policy.LabelManagedBy+"-")
		Expect(err).To(MatchError(ContainSubstring("only iss-webhook may change it")))
		Expect(getJSON(ctx, "networkpolicy", name, "-n", namespace)).NotTo(BeNil())
	})

	It("denies an ordinary user's NetworkPolicy that would widen engines' egress, or take a generated one's name", func(ctx SpecContext) {
		open := fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-all-egress
  namespace: %s
spec:
  podSelector: {}
  egress:
    - {}
`, namespace)
		_, err := kubectl(ctx, open, "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring("spec.podSelector: Forbidden: a policy with egress rules must not select Dagger engines")))

		scoped := strings.Replace(open, "podSelector: {}", "podSelector:\n    matchExpressions:\n      - {key: iss.platform/egress-policy, operator: DoesNotExist}", 1)
		DeferCleanup(func(ctx context.Context) {
			_, err := kubectl(ctx, "", "delete", "networkpolicy", "allow-all-egress", "-n", namespace, "--ignore-not-found")
			Expect(err).NotTo(HaveOccurred())
		})
		_, err = kubectl(ctx, scoped, "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), "a policy that excludes engines is the namespace's own business")

		squat := strings.Replace(strings.Replace(open, "allow-all-egress", policy.EgressPolicyName(hashOf(`[{"host":"squat.example.org"}]`)), 1), "  egress:\n    - {}\n", "", 1)
		_, err = kubectl(ctx, squat, "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`metadata.name: Forbidden: names starting with "iss-egress-" are reserved`)))
	})

	It("keeps a generated policy, even from the cluster admin, while engines still run with it", func(ctx SpecContext) {
		access := `[{"host":"kept.example.org"}]`
		name := policy.EgressPolicyName(hashOf(access))
		_, err := kubectl(ctx, engineWith("engine-kept", namespace, map[string]string{policy.AnnotationNetworkAccess: access}), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "", "delete", "networkpolicy", name, "-n", namespace, "--wait=false")
		Expect(err).To(MatchError(ContainSubstring("1 engine pod(s) in team-a-dev still run with this egress policy")))
		deletePod(ctx, "engine-kept")
		Eventually(func(ctx context.Context) error {
			_, err := kubectl(ctx, "", "delete", "networkpolicy", name, "-n", namespace, "--ignore-not-found", "--wait=false")
			return err
		}).WithContext(ctx).WithTimeout(2*time.Minute).WithPolling(time.Second).Should(Succeed(), "once the engine is gone")
	})

	It("denies a malformed annotation with its name and the position of the fault", func(ctx SpecContext) {
		_, err := kubectl(ctx, engineWith("engine-malformed", namespace, map[string]string{policy.AnnotationNetworkAccess: `[{"host":"api.github.com",}]`}), "apply", "-f", "-")
		Expect(err).To(MatchError(And(
			ContainSubstring(`metadata.annotations[iss.platform/network-access]: Invalid value:`),
			ContainSubstring(`at line 1, column 27 (offset 26): invalid character '}' looking for beginning of object key string`),
		)))
	})

	It("denies IP literals", func(ctx SpecContext) {
		_, err := kubectl(ctx, engineWith("engine-ip", namespace, map[string]string{policy.AnnotationNetworkAccess: `[{"host":"api.github.com"},{"host":"10.0.0.1","ports":[5432]}]`}), "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`entry [1]: host "10.0.0.1": IP literals are not allowed`)))
	})

	It("denies the pod when the API server refuses to write its policy", func(ctx SpecContext) {
		const ns = "team-b-staging"
		refuse := `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: e2e-refuse-networkpolicies
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - apiGroups: ["networking.k8s.io"]
        apiVersions: ["v1"]
        resources: ["networkpolicies"]
        operations: ["CREATE", "UPDATE"]
  validations:
    - expression: "false"
      message: "e2e: NetworkPolicies are refused here"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: e2e-refuse-networkpolicies
spec:
  policyName: e2e-refuse-networkpolicies
  validationActions: ["Deny"]
  matchResources:
    namespaceSelector:
      matchLabels:
        kubernetes.io/metadata.name: team-b-staging
`
		_, err := kubectl(ctx, refuse, "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx context.Context) {
			_, err := kubectl(ctx, refuse, "delete", "-f", "-")
			Expect(err).NotTo(HaveOccurred())
		})
		// The binding takes effect once the API server has loaded it.
		Eventually(func(ctx context.Context) error {
			_, err := kubectl(ctx, engineWith("engine-refused", ns, map[string]string{policy.AnnotationNetworkAccess: `[{"host":"refused.example.org"}]`}), "apply", "-f", "-")
			if err == nil {
				deletePodIn(ns)(ctx, "engine-refused")
			}
			return err
		}).WithContext(ctx).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(MatchError(And(
			ContainSubstring("could not write the egress policies"),
			ContainSubstring("e2e: NetworkPolicies are refused here"),
			ContainSubstring("never runs with open egress"),
		)))
		Expect(getJSON(ctx, "pod", "engine-refused", "-n", ns)).To(BeNil())
	})
})

var _ = Describe("Other FQDN backends", Ordered, func() {
	const access = `[{"host":"api.github.com"},{"host":"ntp.example.org","ports":[123],"protocol":"UDP"}]`

	// The backend is the policy's: switching it takes no restart.
	AfterAll(func(ctx SpecContext) {
		applyPolicy(ctx, suitePolicy())
	})

	It("writes an Admin-tier ClusterNetworkPolicy with domainNames with the clusternetworkpolicy backend", func(ctx SpecContext) {
		applyPolicy(ctx, suitePolicy()+"  fqdnBackend: clusternetworkpolicy\n")
		DeferCleanup(deletePod, "engine-cnp")
		_, err := kubectl(ctx, engineWith("engine-cnp", namespace, map[string]string{policy.AnnotationNetworkAccess: access}), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		hash := hashOf(access)
		cnp := getJSON(ctx, "clusternetworkpolicy", policy.ClusterEgressPolicyName(namespace, hash))
		Expect(cnp).NotTo(BeNil())
		Expect(cnp["spec"]).To(Equal(map[string]any{
			"tier":     "Admin",
			"priority": float64(500),
			"subject": map[string]any{"pods": map[string]any{
				"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": namespace}},
				"podSelector":       map[string]any{"matchLabels": map[string]any{policy.LabelEgressPolicy: hash}},
			}},
			"egress": []any{
				map[string]any{"name": "iss-dns", "action": "Accept",
					"to": []any{map[string]any{"pods": map[string]any{
						"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "kube-system"}},
						"podSelector":       map[string]any{"matchLabels": map[string]any{"k8s-app": "kube-dns"}},
					}}},
					"protocols": []any{
						map[string]any{"udp": map[string]any{"destinationPort": map[string]any{"number": float64(53)}}},
						map[string]any{"tcp": map[string]any{"destinationPort": map[string]any{"number": float64(53)}}},
					}},
				map[string]any{"name": "iss-deny-private", "action": "Deny", "to": []any{map[string]any{"networks": defaultPrivateRanges()}}},
				map[string]any{"name": "iss-fqdn-0", "action": "Accept", "to": []any{map[string]any{"domainNames": []any{"api.github.com"}}},
					"protocols": []any{map[string]any{"tcp": map[string]any{"destinationPort": map[string]any{"number": float64(443)}}}}},
				map[string]any{"name": "iss-fqdn-1", "action": "Accept", "to": []any{map[string]any{"domainNames": []any{"ntp.example.org"}}},
					"protocols": []any{map[string]any{"udp": map[string]any{"destinationPort": map[string]any{"number": float64(123)}}}}},
				map[string]any{"name": "iss-deny-rest", "action": "Deny",
					"to": []any{map[string]any{"namespaces": map[string]any{}}, map[string]any{"networks": []any{"0.0.0.0/0", "::/0"}}}},
			},
		}))
		Expect(getJSON(ctx, "networkpolicy", policy.EgressPolicyName(hash), "-n", namespace)).NotTo(BeNil())
	})

	It("warns that the hosts are unreachable with the none backend, and still writes the DNS-only policy", func(ctx SpecContext) {
		applyPolicy(ctx, suitePolicy()+"  fqdnBackend: none\n")
		DeferCleanup(deletePod, "engine-none")
		_, stderr, err := kubectlWithStderr(ctx, engineWith("engine-none", namespace, map[string]string{policy.AnnotationNetworkAccess: access}), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		Expect(stderr).To(ContainSubstring("Warning: iss-webhook: this cluster has no FQDN policy backend (fqdnBackend none): api.github.com, ntp.example.org will be unreachable"))
		Expect(getJSON(ctx, "networkpolicy", policy.EgressPolicyName(hashOf(access)), "-n", namespace)).NotTo(BeNil())
	})
})
