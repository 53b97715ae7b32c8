package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/iss-platform/iss-webhook/policy"
)

// The specs of this file need a node that runs pods: the single-node cluster of
// `make e2e-cluster` sets ISS_E2E_NODE=1 (and ISS_E2E_CONTAINERD_SOCKET, the socket of its
// containerd). The local control plane has none; there they are skipped, saying so.
const (
	probeImage = "localhost/iss-probe:dev"
	// debugImage is the probe image under a second name: an ephemeral container may not run the
	// engine's own image.
	debugImage = "localhost/iss-probe-debug:dev"
	// nodeSpecTimeout is how long a node spec waits for a pod to run, or to be gone: on a loaded
	// 2-core machine a pod start takes seconds to a minute.
	nodeSpecTimeout = 3 * time.Minute
)

func requireNode() {
	if os.Getenv("ISS_E2E_NODE") != "1" {
		Skip("needs a node that runs pods: runs on the single-node cluster (make e2e-cluster); the local control plane has none")
	}
}

// probeEngine renders an engine pod (label iss.platform/engine: dagger) that runs the probe
// image, with extra annotations.
func probeEngine(name, ns string, annotations map[string]string) string {
	var b strings.Builder
	for k, v := range annotations {
		fmt.Fprintf(&b, "    %s: %q\n", k, v)
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
  labels:
    %s: dagger
  annotations:
    iss.platform/profile: standard
%s
spec:
  terminationGracePeriodSeconds: 2
  containers:
    - name: dagger-engine
      image: %s
      imagePullPolicy: Never
      # As the Dagger engine does: the secret files are the owner's (root's) alone.
      securityContext:
        runAsUser: 0
`, name, ns, policy.LabelEngine, b.String(), probeImage)
}

// waitRunning waits until every container of the pod is ready.
func waitRunning(ctx context.Context, ns, name string) {
	GinkgoHelper()
	_, err := kubectl(ctx, "", "wait", "--for=condition=Ready", "--timeout="+nodeSpecTimeout.String(), "pod/"+name, "-n", ns)
	Expect(err).NotTo(HaveOccurred(), "pod %s/%s running", ns, name)
}

// probe runs the probe in a container of a pod and returns what it printed.
func probe(ctx context.Context, ns, pod, container string, args ...string) (string, error) {
	return kubectl(ctx, "", append([]string{"exec", pod, "-n", ns, "-c", container, "--", "/iss-probe"}, args...)...)
}

// cgroupValues parses the probe's `cgroup` output, key=value lines.
func cgroupValues(out string) map[string]string {
	values := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			values[k] = v
		}
	}
	return values
}

var _ = Describe("On a node", Label("node"), func() {
	BeforeEach(requireNode)

	It("runs an engine pod within its profile: the container's own cgroup limits, and an ephemeral container inside the pod's cgroup", func(ctx SpecContext) {
		const name = "engine-runs"
		DeferCleanup(deletePod, name)
		_, err := kubectl(ctx, probeEngine(name, namespace, nil), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		waitRunning(ctx, namespace, name)
		out, err := probe(ctx, namespace, name, "dagger-engine", "cgroup")
		Expect(err).NotTo(HaveOccurred())
		got := cgroupValues(out)
		// The standard profile: limits of 2 CPUs and 4Gi, as the kernel enforces them.
		Expect(got).To(HaveKeyWithValue("memory.limit_bytes", strconv.Itoa(4<<30)))
		quota, err := strconv.Atoi(got["cpu.quota"])
		Expect(err).NotTo(HaveOccurred(), "cpu.quota in %q", out)
		period, err := strconv.Atoi(got["cpu.period"])
		Expect(err).NotTo(HaveOccurred(), "cpu.period in %q", out)
		Expect(quota).To(Equal(2*period), "a quota of 2 CPUs")

		uid, err := kubectl(ctx, "", "get", "pod", name, "-n", namespace, "-o", "jsonpath={.metadata.uid}")
		Expect(err).NotTo(HaveOccurred())
		// Ephemeral containers are the cluster admin's (edit grants no pods/ephemeralcontainers).
		_, err = kubectl(ctx, "", "debug", name, "-n", namespace, "--image", debugImage, "--profile", "restricted",
			"--container", "debugger", "--", "/iss-probe", "sleep")
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			out, err := probe(ctx, namespace, name, "debugger", "cat", "/proc/self/cgroup")
			g.Expect(err).NotTo(HaveOccurred())
			// Every hierarchy places it under the pod's cgroup (the UID with - or _).
			lines := strings.Split(strings.TrimSpace(out), "\n")
			g.Expect(lines).NotTo(BeEmpty())
			for _, line := range lines {
				path := line[strings.LastIndex(line, ":")+1:]
				if path == "/" {
					continue // a hierarchy the runtime does not place containers in
				}
				g.Expect(strings.ReplaceAll(path, "_", "-")).To(ContainSubstring("pod"+uid), "cgroup line %q", line)
			}
		}).WithContext(ctx).WithTimeout(nodeSpecTimeout).WithPolling(2 * time.Second).Should(Succeed())
	})

	It("mounts the Secret iss-api-token read-only at /var/run/secrets/iss/API_TOKEN, and holds the pod while it is missing", func(ctx SpecContext) {
		const name, value = "engine-token", "s3cr3t-value"
		DeferCleanup(deletePod, name)
		DeferCleanup(func(ctx context.Context) {
			_, _ = kubectl(ctx, "", "delete", "secret", "iss-api-token", "-n", namespace, "--ignore-not-found")
		})
		_, _ = kubectl(ctx, "", "delete", "secret", "iss-api-token", "-n", namespace, "--ignore-not-found")
		_, err := kubectl(ctx, probeEngine(name, namespace, map[string]string{policy.AnnotationSecrets: "API_TOKEN"}), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		// Without the Secret the kubelet cannot mount the volume: the pod waits.
		Eventually(func(g Gomega) {
			out, err := kubectl(ctx, "", "get", "events", "-n", namespace, "--field-selector", "involvedObject.name="+name+",reason=FailedMount", "-o", "jsonpath={.items[*].message}")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(out).To(ContainSubstring(`"iss-api-token" not found`))
		}).WithContext(ctx).WithTimeout(nodeSpecTimeout).WithPolling(2 * time.Second).Should(Succeed())
		phase, err := kubectl(ctx, "", "get", "pod", name, "-n", namespace, "-o", "jsonpath={.status.phase}")
		Expect(err).NotTo(HaveOccurred())
		Expect(phase).To(Equal("Pending"))

		_, err = kubectl(ctx, "", "create", "secret", "generic", "iss-api-token", "-n", namespace, "--from-literal=API_TOKEN="+value)
		Expect(err).NotTo(HaveOccurred())
		waitRunning(ctx, namespace, name)
		out, err := probe(ctx, namespace, name, "dagger-engine", "cat", "/var/run/secrets/iss/API_TOKEN")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(Equal(value))
		mounts, err := probe(ctx, namespace, name, "dagger-engine", "cat", "/proc/self/mountinfo")
		Expect(err).NotTo(HaveOccurred())
		var mount string
		for _, line := range strings.Split(mounts, "\n") {
			if f := strings.Fields(line); len(f) > 5 && f[4] == "/var/run/secrets/iss" {
				mount = line
			}
		}
		Expect(mount).NotTo(BeEmpty(), "a mount at /var/run/secrets/iss in\n%s", mounts)
		Expect(strings.Fields(mount)[5]).To(HavePrefix("ro"), "mounted read-only: %s", mount)
	})
})

// admissionCounts are what a client that creates engine pods continuously saw.
type admissionCounts struct {
	mu                         sync.Mutex
	created, failed, unmutated int
	// failures are the failed admissions and the pods admitted unmutated, each with when it was
	// answered.
	failures []admissionFailure
}

// admissionFailure is one admission the client saw fail or go unmutated.
type admissionFailure struct {
	at   time.Time
	what string
}

func (f admissionFailure) String() string { return f.what }

func (a *admissionCounts) String() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return fmt.Sprintf("%d created, %d failed, %d unmutated; failures: %v", a.created, a.failed, a.unmutated, a.failures)
}

// createEnginesUntil creates engine pods one after the other, as alice, until stop is closed,
// and counts the admissions that failed and the pods that were admitted without the mutating
// webhook's egress label. Each pod is deleted again.
func createEnginesUntil(ctx context.Context, stop <-chan struct{}, counts *admissionCounts, prefix string) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		name := fmt.Sprintf("%s-%d", prefix, i)
		out, err := kubectl(ctx, probeEngine(name, namespace, nil), "--as", "alice", "create", "-o", "jsonpath={.metadata.labels}", "-f", "-")
		counts.mu.Lock()
		switch {
		case err != nil:
			counts.failed++
			counts.failures = append(counts.failures, admissionFailure{at: time.Now(), what: err.Error()})
		case !strings.Contains(out, policy.LabelEgressPolicy):
			counts.unmutated++
			counts.failures = append(counts.failures, admissionFailure{at: time.Now(), what: name + " admitted without " + policy.LabelEgressPolicy})
			fallthrough
		default:
			counts.created++
		}
		counts.mu.Unlock()
		if err == nil {
			_, _ = kubectl(ctx, "", "delete", "pod", name, "-n", namespace, "--wait=false", "--grace-period=0", "--force")
		}
	}
}

// startEngineClient runs a client that creates engine pods continuously, as alice, until the
// returned stop function is called; the pods it leaves are deleted when the spec ends.
func startEngineClient(ctx context.Context, prefix string) (*admissionCounts, func()) {
	counts := &admissionCounts{}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		createEnginesUntil(ctx, stop, counts, prefix)
	}()
	DeferCleanup(func(ctx context.Context) {
		_, _ = kubectl(ctx, "", "delete", "pods", "-n", namespace, "-l", policy.LabelEngine+"=dagger", "--wait=false", "--grace-period=0", "--force")
	})
	return counts, func() { close(stop); <-done }
}

// webhookPods returns the names of the webhook's pods.
func webhookPods(ctx context.Context) []string {
	GinkgoHelper()
	out, err := kubectl(ctx, "", "get", "pods", "-n", "iss-system", "-l", "app.kubernetes.io/name=iss-webhook", "-o", "jsonpath={.items[*].metadata.name}")
	Expect(err).NotTo(HaveOccurred())
	return strings.Fields(out)
}

var _ = Describe("The webhook's availability on a node", Label("node", "cert-mode"), Serial, func() {
	BeforeEach(requireNode)

	It("fails and skips no admission while it is restarted", func(ctx SpecContext) {
		counts, stop := startEngineClient(ctx, "engine-during-restart")
		_, err := kubectl(ctx, "", "rollout", "restart", "deployment/iss-webhook", "-n", "iss-system")
		Expect(err).NotTo(HaveOccurred())
		waitForRollout(ctx)
		stop()
		GinkgoWriter.Printf("engine pods created during the rollout restart: %s\n", counts)
		Expect(counts.created).To(BeNumerically(">", 0), "the client created pods throughout")
		Expect(counts.failed).To(BeZero(), "admissions failed: %s", counts)
		Expect(counts.unmutated).To(BeZero(), "admissions without the mutating webhook: %s", counts)
	})

	// kube-apiserver does not retry an admission call whose connection is refused or breaks,
	// and until the node's status and kube-proxy's rules follow the kill, it still sends new
	// connections to the killed replica's address. Those calls fail, closed; what must hold is
	// that none is admitted unmutated, that failures are those connection failures, and that
	// they stop once the killed replica left the Service or serves again.
	It("fails closed, never admits unmutated, and answers again, when one replica is killed", func(ctx SpecContext) {
		socket := os.Getenv("ISS_E2E_CONTAINERD_SOCKET")
		Expect(socket).NotTo(BeEmpty(), "ISS_E2E_CONTAINERD_SOCKET names the node's containerd")
		waitForRollout(ctx)
		pods := webhookPods(ctx)
		counts, stop := startEngineClient(ctx, "engine-during-kill")
		By("kill -9 of one replica's container")
		id, err := kubectl(ctx, "", "get", "pod", pods[0], "-n", "iss-system", "-o", "jsonpath={.status.containerStatuses[0].containerID}")
		Expect(err).NotTo(HaveOccurred())
		id = strings.TrimPrefix(id, "containerd://")
		killed := time.Now()
		out, err := exec.CommandContext(ctx, "ctr", "--address", socket, "-n", "k8s.io", "tasks", "kill", "--signal", "SIGKILL", id).CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "ctr tasks kill: %s", out)
		// The kubelet sees the container die and restarts it; wait until it serves again.
		Eventually(func() (string, error) {
			return kubectl(ctx, "", "get", "pod", pods[0], "-n", "iss-system", "-o", "jsonpath={.status.containerStatuses[0].restartCount}")
		}).WithContext(ctx).WithTimeout(nodeSpecTimeout).WithPolling(time.Second).ShouldNot(Equal("0"), "the killed container restarted")
		_, err = kubectl(ctx, "", "wait", "--for=condition=Ready", "--timeout="+nodeSpecTimeout.String(), "pod/"+pods[0], "-n", "iss-system")
		Expect(err).NotTo(HaveOccurred())
		back := time.Now()
		By("and, with both replicas back, the client goes on without a failure")
		counts.mu.Lock()
		createdBefore := counts.created
		counts.mu.Unlock()
		Eventually(func() int {
			counts.mu.Lock()
			defer counts.mu.Unlock()
			return counts.created - createdBefore
		}).WithContext(ctx).WithTimeout(nodeSpecTimeout).WithPolling(time.Second).Should(BeNumerically(">=", 5))
		stop()
		GinkgoWriter.Printf("engine pods created around the kill: %s; the replica was back after %s\n", counts, back.Sub(killed).Round(100*time.Millisecond))
		Expect(counts.unmutated).To(BeZero(), "admissions without the mutating webhook: %s", counts)
		for _, f := range counts.failures {
			Expect(f.at).To(BeTemporally("<=", back), "a failure after the killed replica was back: %s", f)
			Expect(f.what).To(MatchRegexp(`connection refused|connection reset|EOF|connection lost`), "only calls the killed replica could not answer fail")
		}
	})

	It("holds a drain of the node with its PodDisruptionBudget, and keeps answering", func(ctx SpecContext) {
		DeferCleanup(func(ctx context.Context) {
			_, err := kubectl(ctx, "", "uncordon", nodeName(ctx))
			Expect(err).NotTo(HaveOccurred())
		})
		// One node: evicting both replicas would break the budget (minAvailable 1), so the
		// drain evicts one at most and then waits, and times out.
		_, err := kubectl(ctx, "", "drain", nodeName(ctx), "--pod-selector", "app.kubernetes.io/name=iss-webhook",
			"--ignore-daemonsets", "--delete-emptydir-data", "--timeout", "60s")
		Expect(err).To(HaveOccurred(), "the drain must not finish")
		Expect(err.Error()).To(ContainSubstring("disruption budget"))
		out, err := kubectl(ctx, probeEngine("engine-during-drain", namespace, nil), "--as", "alice", "create", "--dry-run=server", "-o", "jsonpath={.metadata.labels}", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(ContainSubstring(policy.LabelEgressPolicy))
		ready, err := kubectl(ctx, "", "get", "deployment", "iss-webhook", "-n", "iss-system", "-o", "jsonpath={.status.readyReplicas}")
		Expect(err).NotTo(HaveOccurred())
		Expect(ready).NotTo(BeElementOf("", "0"))
	})

	It("schedules both replicas on one node: the anti-affinity is preferred, never required", func(ctx SpecContext) {
		Eventually(func(g Gomega) {
			out, err := kubectl(ctx, "", "get", "pods", "-n", "iss-system", "-l", "app.kubernetes.io/name=iss-webhook", "-o", "jsonpath={range .items[*]}{.status.phase} {.spec.nodeName}{\"\\n\"}{end}")
			g.Expect(err).NotTo(HaveOccurred())
			lines := strings.Split(strings.TrimSpace(out), "\n")
			g.Expect(lines).To(HaveLen(2))
			for _, l := range lines {
				g.Expect(l).To(Equal("Running " + nodeName(ctx)))
			}
		}).WithContext(ctx).WithTimeout(nodeSpecTimeout).WithPolling(2 * time.Second).Should(Succeed())
	})
})

// nodeName is the name of the cluster's single node.
func nodeName(ctx context.Context) string {
	GinkgoHelper()
	out, err := kubectl(ctx, "", "get", "nodes", "-o", "jsonpath={.items[0].metadata.name}")
	Expect(err).NotTo(HaveOccurred())
	return out
}

// probeServer renders a plain pod that serves HTTP on port 8080 and 443, and a Service of it
// on port 80.
func probeServer(name, ns string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %[1]s
  namespace: %[2]s
  labels:
    app: %[1]s
spec:
  terminationGracePeriodSeconds: 2
  securityContext:
    sysctls:
      - name: net.ipv4.ip_unprivileged_port_start
        value: "443"
  containers:
    - name: http
      image: %[3]s
      imagePullPolicy: Never
      command: ["/iss-probe", "serve", "--port", "8080"]
    - name: https-port
      image: %[3]s
      imagePullPolicy: Never
      command: ["/iss-probe", "serve", "--port", "443"]
---
apiVersion: v1
kind: Service
metadata:
  name: %[1]s
  namespace: %[2]s
spec:
  selector:
    app: %[1]s
  ports:
    - {name: http, port: 80, targetPort: 8080}
`, name, ns, probeImage)
}

// plainProbe renders a pod that is not an engine, running the probe.
func plainProbe(name, ns string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
spec:
  terminationGracePeriodSeconds: 2
  containers:
    - name: probe
      image: %s
      imagePullPolicy: Never
`, name, ns, probeImage)
}

var _ = Describe("Egress on the node's dataplane", Label("node"), func() {
	BeforeEach(requireNode)

	It("lets an engine reach DNS and nothing else, while a plain pod in its namespace is not restricted", func(ctx SpecContext) {
		// Names no other spec takes: pods on a node take a while to go, and the suite's order is random.
		const server, engine, plain = "dataplane-target", "dataplane-engine", "dataplane-plain"
		const githubOnly = `[{"host":"api.github.com","ports":[443]}]`
		for _, name := range []string{server, engine, plain, engine + "-fqdn"} {
			DeferCleanup(deletePod, name)
		}
		DeferCleanup(func(ctx context.Context) {
			_, _ = kubectl(ctx, "", "delete", "service", server, "-n", namespace, "--ignore-not-found")
		})
		_, err := kubectl(ctx, probeServer(server, namespace), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, probeEngine(engine, namespace, nil), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, probeEngine(engine+"-fqdn", namespace, map[string]string{policy.AnnotationNetworkAccess: githubOnly}), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, plainProbe(plain, namespace), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		for _, name := range []string{server, engine, engine + "-fqdn", plain} {
			waitRunning(ctx, namespace, name)
		}
		podIP, err := kubectl(ctx, "", "get", "pod", server, "-n", namespace, "-o", "jsonpath={.status.podIP}")
		Expect(err).NotTo(HaveOccurred())
		serviceName := server + "." + namespace + ".svc.cluster.local"

		By("the plain pod reaches the other pod and its Service")
		// The enforcer programs policies asynchronously: what must hold is waited for.
		Eventually(func() error {
			_, err := probe(ctx, namespace, plain, "probe", "connect", hostPort(podIP, "8080"))
			return err
		}).WithContext(ctx).WithTimeout(nodeSpecTimeout).WithPolling(2 * time.Second).Should(Succeed())
		_, err = probe(ctx, namespace, plain, "probe", "connect", serviceName+":80")
		Expect(err).NotTo(HaveOccurred())
		_, err = probe(ctx, namespace, plain, "probe", "connect", hostPort(podIP, "443"))
		Expect(err).NotTo(HaveOccurred())

		for _, e := range []string{engine, engine + "-fqdn"} {
			By(e + " resolves names through the cluster DNS")
			out, err := probe(ctx, namespace, e, "dagger-engine", "resolve", serviceName)
			Expect(err).NotTo(HaveOccurred())
			Expect(out).NotTo(BeEmpty())
			By(e + " reaches neither the other pod nor its Service")
			Eventually(func() error {
				_, err := probe(ctx, namespace, e, "dagger-engine", "connect", "--timeout", "3s", hostPort(podIP, "8080"))
				return err
			}).WithContext(ctx).WithTimeout(nodeSpecTimeout).WithPolling(2*time.Second).Should(HaveOccurred(), "the egress policy blocks the pod")
			// Held, not a passing blip: the enforcer keeps blocking it.
			Consistently(func() error {
				_, err := probe(ctx, namespace, e, "dagger-engine", "connect", "--timeout", "2s", hostPort(podIP, "8080"))
				return err
			}).WithContext(ctx).WithTimeout(10 * time.Second).WithPolling(2 * time.Second).Should(HaveOccurred())
			_, err = probe(ctx, namespace, e, "dagger-engine", "connect", "--timeout", "3s", serviceName+":80")
			Expect(err).To(HaveOccurred())
		}
		By("an engine allowed api.github.com:443 still reaches no private address on port 443")
		_, err = probe(ctx, namespace, engine+"-fqdn", "dagger-engine", "connect", "--timeout", "3s", hostPort(podIP, "443"))
		Expect(err).To(HaveOccurred())
	})
})

// hostPort joins a host and a port.
func hostPort(host, port string) string { return host + ":" + port }
