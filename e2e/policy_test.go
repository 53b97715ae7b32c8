package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"

	"github.com/iss-platform/iss-webhook/policy"
	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
)

// suitePolicy is the spec of the ISSPolicy the suite runs under: the built-in default with a
// short grace period, so that the suite sees unused egress policies collected.
func suitePolicy() string {
	return fmt.Sprintf("network:\n  gcGracePeriod: %s\n", gcGracePeriod)
}

// policyManifest renders the ISSPolicy default with spec, YAML as the body of spec.
func policyManifest(spec string) string {
	var b strings.Builder
	b.WriteString("apiVersion: iss.platform/v1alpha1\nkind: ISSPolicy\nmetadata:\n  name: default\nspec:\n")
	if strings.TrimSpace(spec) == "" {
		spec = "{}"
	}
	for _, line := range strings.Split(strings.TrimRight(spec, "\n"), "\n") {
		b.WriteString("  " + line + "\n")
	}
	return b.String()
}

// applyPolicy applies the ISSPolicy default with spec and waits until the webhook enforces it.
func applyPolicy(ctx context.Context, spec string) {
	GinkgoHelper()
	_, err := kubectl(ctx, policyManifest(spec), "apply", "-f", "-")
	Expect(err).NotTo(HaveOccurred())
	waitForPolicy(ctx, "True")
}

// issPolicy reads the ISSPolicy default.
func issPolicy(ctx context.Context) *v1alpha1.ISSPolicy {
	GinkgoHelper()
	out, err := kubectl(ctx, "", "get", "isspolicy", "default", "-o", "json")
	Expect(err).NotTo(HaveOccurred())
	obj := &v1alpha1.ISSPolicy{}
	Expect(json.Unmarshal([]byte(out), obj)).To(Succeed())
	return obj
}

// waitForPolicy waits until the webhook has read the current generation of the ISSPolicy and
// set its Ready condition to ready ("True" or "False").
func waitForPolicy(ctx context.Context, ready string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		obj := issPolicy(ctx)
		g.Expect(obj.Status.ObservedGeneration).To(Equal(obj.Generation))
		var status string
		for _, c := range obj.Status.Conditions {
			if c.Type == v1alpha1.ConditionReady {
				status = string(c.Status)
			}
		}
		g.Expect(status).To(Equal(ready))
	}).WithContext(ctx).WithTimeout(2 * time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
}

// invalidSelector is a policy section that the CRD's schema admits and the webhook's checks do
// not: a selector that cannot be parsed.
const invalidSelector = `temporalWorkers:
  selector:
    matchExpressions: [{key: iss.platform/component, operator: In, values: []}]
`

// offProfileEngine is an engine pod whose CPU limit is above its profile's.
func offProfileEngine(name, ns string) string {
	return strings.Replace(enginePod(name, "", `      resources:
        limits: {cpu: "8"}`), "namespace: "+namespace, "namespace: "+ns, 1)
}

var _ = Describe("ISSPolicy", Ordered, Serial, func() {
	AfterAll(func(ctx SpecContext) {
		applyPolicy(ctx, suitePolicy())
	})

	It("is defaulted by the API server to the built-in default", func(ctx SpecContext) {
		applyPolicy(ctx, "")
		got, errs := policy.FromISSPolicy(&issPolicy(ctx).Spec)
		Expect(errs).To(BeEmpty())
		gotYAML, err := yaml.Marshal(policy.ToISSPolicy(got))
		Expect(err).NotTo(HaveOccurred())
		wantYAML, err := yaml.Marshal(policy.ToISSPolicy(policy.Default()))
		Expect(err).NotTo(HaveOccurred())
		Expect(string(gotYAML)).To(Equal(string(wantYAML)), "the CRD's defaults must be the built-in default")
	})

	It("applies a change to the next review without restart: Warn mode admits with kubectl warnings", func(ctx SpecContext) {
		applyPolicy(ctx, suitePolicy()+"enforcement:\n  enginePods: Warn\n")
		DeferCleanup(deletePod, "engine-warned")
		_, stderr, err := kubectlWithStderr(ctx, offProfileEngine("engine-warned", namespace), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		Expect(stderr).To(ContainSubstring(`Warning: iss-webhook (enginePods: Warn): spec.containers[0].resources.limits[cpu]`))
		Expect(getJSON(ctx, "pod", "engine-warned", "-n", namespace)).To(HaveKeyWithValue("metadata",
			HaveKeyWithValue("labels", HaveKey(policy.LabelEgressPolicy))), "the mutators still ran")

		applyPolicy(ctx, suitePolicy())
		_, err = kubectl(ctx, offProfileEngine("engine-enforced", namespace), "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring("spec.containers[0].resources.limits[cpu]")))
	})

	It("admits silently in Audit mode", func(ctx SpecContext) {
		applyPolicy(ctx, suitePolicy()+"enforcement:\n  enginePods: Audit\n")
		DeferCleanup(deletePod, "engine-audited")
		_, stderr, err := kubectlWithStderr(ctx, offProfileEngine("engine-audited", namespace), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		Expect(stderr).NotTo(ContainSubstring("iss-webhook"))
		Expect(webhookMetrics(ctx)).To(MatchRegexp(`iss_admission_decisions_total\{decision="audited",mode="Audit",resource="pods",rule="enginePods"\} [1-9]`))
	})

	It("rewrites the webhook configurations' image tests when the policy adds an engine image", func(ctx SpecContext) {
		imageTests := func() string {
			out, err := kubectl(ctx, "", "get", "mutatingwebhookconfiguration", "iss-webhook", "-o", "jsonpath={.webhooks[0].matchConditions[*].expression}")
			Expect(err).NotTo(HaveOccurred())
			return out
		}
		applyPolicy(ctx, suitePolicy()+"engines:\n  images: [registry.dagger.io/engine, registry.example.com/mirror/dagger-engine]\n")
		Eventually(imageTests).WithContext(ctx).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(ContainSubstring(`registry\\.example\\.com(:0*443)?/mirror/dagger-engine`))
		// A pod of the mirrored image, without any label, now reaches the webhook.
		out, err := kubectl(ctx, `apiVersion: v1
kind: Pod
metadata: {name: mirrored-engine, namespace: `+namespace+`}
spec:
  containers:
    - {name: dagger-engine, image: registry.example.com/mirror/dagger-engine:v0.19.7}
`, "apply", "--dry-run=server", "-o", "jsonpath={.metadata.labels}", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(ContainSubstring(policy.LabelEgressPolicy))

		applyPolicy(ctx, suitePolicy())
		Eventually(imageTests).WithContext(ctx).WithTimeout(2 * time.Minute).WithPolling(time.Second).ShouldNot(ContainSubstring("example"))
	})

	It("refuses an invalid policy on apply, naming every field", func(ctx SpecContext) {
		_, err := kubectl(ctx, policyManifest(`engines:
  profiles:
    - name: small
      requests: {cpu: "2", memory: 1Gi, ephemeral-storage: 1Gi}
      limits: {cpu: "1", memory: 1Gi, ephemeral-storage: 1Gi}
`), "apply", "-f", "-")
		Expect(err).To(MatchError(And(ContainSubstring("the cpu request may not be above its limit"), ContainSubstring("defaultProfile must name one of the profiles"))))
		_, err = kubectl(ctx, policyManifest(invalidSelector), "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring("spec.temporalWorkers.selector: Invalid value")))
	})

	It("reports a policy stored while it could not be checked, and keeps the last good one in force", func(ctx SpecContext) {
		applyPolicy(ctx, suitePolicy()+"enforcement:\n  enginePods: Warn\n")
		// The policy webhook stands aside, as when it was down while the object was written.
		restore := removeWebhook(ctx, "validatingwebhookconfiguration", "isspolicies.validate.iss.platform")
		_, err := kubectl(ctx, policyManifest(suitePolicy()+invalidSelector), "apply", "-f", "-")
		restore(ctx)
		Expect(err).NotTo(HaveOccurred())
		waitForPolicy(ctx, "False")
		out, err := kubectl(ctx, "", "get", "isspolicy", "default")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(MatchRegexp(`default\s+False\s+Invalid`))
		ready := issPolicy(ctx).Status.Conditions[0]
		Expect(ready.Message).To(And(ContainSubstring("the last good policy stays in force"), ContainSubstring("spec.temporalWorkers.selector")))

		DeferCleanup(deletePod, "engine-last-good")
		_, stderr, err := kubectlWithStderr(ctx, offProfileEngine("engine-last-good", namespace), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), "the last good policy, in Warn mode, stays in force")
		Expect(stderr).To(ContainSubstring("enginePods: Warn"))

		// A replica that starts now enforces the last good policy too, from the status.
		restartWebhook(ctx)
		_, stderr, err = kubectlWithStderr(ctx, offProfileEngine("engine-last-good-after-restart", namespace), "apply", "--dry-run=server", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), "after a restart, the last good policy, in Warn mode, stays in force")
		Expect(stderr).To(ContainSubstring("enginePods: Warn"))
	})

	It("exempts the namespaces the policy names", func(ctx SpecContext) {
		const exempt = "iss-e2e-exempt"
		_, err := kubectl(ctx, "", "create", "namespace", exempt)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx context.Context) {
			_, err := kubectl(ctx, "", "delete", "namespace", exempt, "--wait=false")
			Expect(err).NotTo(HaveOccurred())
		})
		applyPolicy(ctx, suitePolicy()+"exemptNamespaces: ["+exempt+"]\n")
		DeferCleanup(deletePodIn(exempt), "engine-exempt")
		_, err = kubectl(ctx, offProfileEngine("engine-exempt", exempt), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		pod := getJSON(ctx, "pod", "engine-exempt", "-n", exempt)
		Expect(pod["metadata"]).NotTo(HaveKeyWithValue("labels", HaveKey(policy.LabelEgressPolicy)), "admitted unchanged")
	})

	It("enforces the built-in default without any ISSPolicy", func(ctx SpecContext) {
		applyPolicy(ctx, suitePolicy()+"enforcement:\n  enginePods: Warn\n")
		_, err := kubectl(ctx, "", "delete", "isspolicy", "default")
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() error {
			_, err := kubectl(ctx, offProfileEngine("engine-default-policy", namespace), "apply", "--dry-run=server", "-f", "-")
			return err
		}).WithContext(ctx).WithTimeout(2 * time.Minute).WithPolling(200 * time.Millisecond).Should(MatchError(ContainSubstring("spec.containers[0].resources.limits[cpu]")))
	})

	It("issctl audit finds an object admitted before the policy tightened, and writes OpenReports", func(ctx SpecContext) {
		applyPolicy(ctx, suitePolicy()+"enforcement:\n  enginePods: Warn\n")
		DeferCleanup(deletePod, "engine-before-tightening")
		_, err := kubectl(ctx, offProfileEngine("engine-before-tightening", namespace), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		applyPolicy(ctx, suitePolicy())

		audit := exec.CommandContext(ctx, buildIssctl(ctx), "audit", "--kubeconfig", kubeconfig, "--write-reports")
		out, err := audit.Output()
		GinkgoWriter.Printf("%s\n", out)
		var exit *exec.ExitError
		Expect(errors.As(err, &exit)).To(BeTrue(), "issctl audit exits 1 on violations: %v", err)
		Expect(exit.ExitCode()).To(Equal(1), string(exit.Stderr))
		Expect(string(out)).To(And(
			ContainSubstring("pod/engine-before-tightening (namespace "+namespace+"): denied"),
			ContainSubstring("* spec.containers[0].resources.limits[cpu]:"),
		))

		report := getJSON(ctx, "reports.openreports.io", "iss-webhook-audit", "-n", namespace)
		Expect(report).NotTo(BeNil())
		Expect(report["summary"]).To(HaveKeyWithValue("fail", BeNumerically(">=", 1)))
		results, _ := report["results"].([]any)
		Expect(results).To(ContainElement(And(
			HaveKeyWithValue("result", "fail"),
			HaveKeyWithValue("policy", "ISS-001"),
			HaveKeyWithValue("resources", ContainElement(HaveKeyWithValue("name", "engine-before-tightening"))),
			HaveKeyWithValue("message", ContainSubstring("spec.containers[0].resources.limits[cpu]")),
		)))
	})
})

// buildIssctl builds issctl from the checkout and returns its path.
func buildIssctl(ctx context.Context) string {
	GinkgoHelper()
	issctl := filepath.Join(GinkgoT().TempDir(), "issctl")
	build := exec.CommandContext(ctx, "go", "build", "-o", issctl, "./cmd/issctl")
	build.Dir = repoRoot
	out, err := build.CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), string(out))
	return issctl
}

// removeWebhook removes one webhook from a webhook configuration and returns the function that
// puts it back.
func removeWebhook(ctx context.Context, kind, name string) func(context.Context) {
	GinkgoHelper()
	cfg := getJSON(ctx, kind, "iss-webhook")
	Expect(cfg).NotTo(BeNil())
	hooks, _ := cfg["webhooks"].([]any)
	for i, h := range hooks {
		if h.(map[string]any)["name"] == name {
			saved, err := json.Marshal(h)
			Expect(err).NotTo(HaveOccurred())
			_, err = kubectl(ctx, "", "patch", kind, "iss-webhook", "--type=json", "-p", fmt.Sprintf(`[{"op":"remove","path":"/webhooks/%d"}]`, i))
			Expect(err).NotTo(HaveOccurred())
			return func(ctx context.Context) {
				GinkgoHelper()
				_, err := kubectl(ctx, "", "patch", kind, "iss-webhook", "--type=json", "-p", fmt.Sprintf(`[{"op":"add","path":"/webhooks/-","value":%s}]`, saved))
				Expect(err).NotTo(HaveOccurred())
			}
		}
	}
	Fail("no webhook " + name + " in " + kind + " iss-webhook")
	return nil
}
