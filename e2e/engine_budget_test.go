package e2e

import (
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// helperContainer renders a container for enginePod, with its resources YAML (already indented
// under resources:), or none.
func helperContainer(name, image, resources string) string {
	c := fmt.Sprintf("    - name: %s\n      image: %s\n", name, image)
	if resources != "" {
		c += "      resources:\n" + resources
	}
	return c
}

// bounded are the resources of a small helper that declares all it needs.
const bounded = `        requests: {cpu: 100m, memory: 64Mi, ephemeral-storage: 1Gi}
        limits: {cpu: 500m, memory: 512Mi, ephemeral-storage: 1Gi}
`

var _ = Describe("The engine pod's budget, as an ordinary developer", func() {
	It("denies every container that would take the pod past its profile", func(ctx SpecContext) {
		for _, tc := range []struct {
			name, containers, want string
		}{
			{"budget-second-engine", helperContainer("engine-2", "registry.dagger.io/engine:v0.19.7", `        limits: {cpu: "64"}
`), `spec.containers[1].image: Forbidden: container "engine-2" runs the engine image registry.dagger.io/engine:v0.19.7 too, but exactly one container of an engine pod is the engine`},
			{"budget-helper-64-cpus", helperContainer("helper", "busybox:1.37", `        requests: {cpu: 100m, memory: 64Mi, ephemeral-storage: 1Gi}
        limits: {cpu: "64", memory: 512Mi, ephemeral-storage: 1Gi}
`), `the containers besides the engine declare 64 of cpu, which leaves the engine container "dagger-engine" nothing`},
			{"budget-helper-unbounded", helperContainer("helper", "busybox:1.37", ""),
				`spec.containers[1].resources: Required value: container "helper" is not the engine and declares no cpu request`},
		} {
			_, err := kubectl(ctx, enginePod(tc.name, "", tc.containers), "--as", "alice", "apply", "-f", "-")
			Expect(err).To(MatchError(ContainSubstring(tc.want)), tc.name)
		}

		decoy := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: budget-decoy, namespace: %s}
spec:
  containers:
    - {name: dagger-engine, image: "busybox:1.37"}
    - name: real
      image: registry.dagger.io/engine:v0.19.7
      securityContext: {privileged: true}
`, namespace)
		_, err := kubectl(ctx, decoy, "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`spec.containers[0].image: Forbidden: container "dagger-engine" is named like the engine container but runs busybox:1.37`)))

		sidecar := enginePod("budget-sidecar-engine", "", "") + `  initContainers:
    - name: another
      image: registry.dagger.io/engine:v0.19.7
      restartPolicy: Always
`
		_, err = kubectl(ctx, sidecar, "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`spec.initContainers[0].image: Forbidden: container "another" runs the engine image`)))

		greedyInit := enginePod("budget-greedy-init", "", "") + `  initContainers:
    - name: setup
      image: busybox:1.37
      resources:
        requests: {cpu: "8", memory: 64Mi, ephemeral-storage: 1Gi}
        limits: {cpu: "8", memory: 64Mi, ephemeral-storage: 1Gi}
`
		_, err = kubectl(ctx, greedyInit, "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`the pod's effective requests of cpu, as the scheduler computes it`)))
	})

	It("gives the engine what bounded helpers leave of the profile, and denies a resize of a helper past it", func(ctx SpecContext) {
		DeferCleanup(deletePod, "budget-shared")
		_, err := kubectl(ctx, enginePod("budget-shared", "", helperContainer("helper", "busybox:1.37", bounded)), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		Expect(engineResources(ctx, "budget-shared")).To(Equal(profileResources("400m", "1500m", "960Mi", "3584Mi", "9Gi")),
			"the profile less the helper's requests and limits")

		_, err = kubectl(ctx, "", "patch", "pod", "budget-shared", "-n", namespace, "--subresource", "resize",
			"-p", `{"spec":{"containers":[{"name":"helper","resources":{"requests":{"cpu":"100m"},"limits":{"cpu":"8"}}}]}}`)
		Expect(err).To(MatchError(ContainSubstring(`leaves the engine container "dagger-engine" nothing of quota profile "standard"'s 2`)))
	})

	It("admits a debug container into an engine whose containers all have limits", func(ctx SpecContext) {
		DeferCleanup(deletePod, "budget-debugged")
		_, err := kubectl(ctx, enginePod("budget-debugged", "", ""), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "", "debug", "budget-debugged", "-n", namespace, "--image", "busybox:1.37", "--attach=false", "--profile=restricted")
		Expect(err).NotTo(HaveOccurred(), "the mutated engine has its limits: the pod's cgroup bounds the debug container")
		_, err = kubectl(ctx, "", "debug", "budget-debugged", "-n", namespace, "--image", "busybox:1.37", "--attach=false", "--profile=general")
		Expect(err).To(MatchError(ContainSubstring(`only the engine container of an engine pod may add capabilities ([SYS_PTRACE])`)), "a helper may not add capabilities")
		_, err = kubectl(ctx, "", "debug", "budget-debugged", "-n", namespace, "--image", "busybox:1.37", "--attach=false", "--profile=sysadmin")
		Expect(err).To(MatchError(ContainSubstring(`securityContext.privileged: Forbidden: container "debugger`)), "a privileged debug container is a helper with the engine's privileges")
	})
})

var _ = Describe("Engine storage, as an ordinary developer", func() {
	It("denies storage the profile cannot bound", func(ctx SpecContext) {
		for _, tc := range []struct {
			name, volumes, want string
		}{
			{"storage-ephemeral-1ti", `    - name: big
      ephemeral:
        volumeClaimTemplate:
          spec:
            accessModes: [ReadWriteOnce]
            resources: {requests: {storage: 1Ti}}
`, `spec.volumes[0].ephemeral.volumeClaimTemplate.spec.resources.requests[storage]: Invalid value: "1Ti": the volume claims of an engine pod ask for 1Ti in all`},
			{"storage-existing-claim", `    - name: data
      persistentVolumeClaim: {claimName: my-1ti-claim}
`, `spec.volumes[0].persistentVolumeClaim: Forbidden: volume "data" is a persistentVolumeClaim volume, which engine pods may not use (an existing claim's size can change later without a review)`},
			{"storage-host-root", `    - name: root
      hostPath: {path: /}
`, `spec.volumes[0].hostPath.path: Forbidden: volume "root" mounts / of the node`},
			{"storage-nfs", `    - name: share
      nfs: {server: nfs.example.com, path: /}
`, `spec.volumes[0].nfs: Forbidden: volume "share" is a nfs volume`},
		} {
			_, err := kubectl(ctx, enginePod(tc.name, "", "")+"  volumes:\n"+tc.volumes, "--as", "alice", "apply", "-f", "-")
			Expect(err).To(MatchError(ContainSubstring(tc.want)), tc.name)
		}
	})

	It("denies a StatefulSet whose claims, each within the profile, exceed it together", func(ctx SpecContext) {
		claims := ""
		for _, n := range []string{"a", "b", "c", "d", "e"} {
			claims += fmt.Sprintf("    - metadata: {name: %s}\n      spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 10Gi}}}\n", n)
		}
		sts := fmt.Sprintf(`apiVersion: apps/v1
kind: StatefulSet
metadata: {name: five-claims, namespace: %s}
spec:
  selector: {matchLabels: {app: five-claims}}
  serviceName: five-claims
  template:
    metadata: {labels: {app: five-claims}}
    spec:
      containers:
        - name: dagger-engine
          image: registry.dagger.io/engine:v0.19.7
          securityContext: {privileged: true}
  volumeClaimTemplates:
%s`, namespace, claims)
		_, err := kubectl(ctx, sts, "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`spec.volumeClaimTemplates: Invalid value: "50Gi": the volume claims of an engine pod ask for 50Gi in all`)))
	})

	It("denies a pod that names a StatefulSet's claim unless the StatefulSet controller creates it", func(ctx SpecContext) {
		pod := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: fake-0
  namespace: %s
  ownerReferences:
    - {apiVersion: apps/v1, kind: StatefulSet, name: fake, uid: 5b7f1c1e-3f0e-4c52-9a53-0d1c2b3a4f50, controller: true}
spec:
  containers:
    - name: dagger-engine
      image: registry.dagger.io/engine:v0.19.7
      securityContext: {privileged: true}
  volumes:
    - name: data
      persistentVolumeClaim: {claimName: data-fake-0}
`, namespace)
		_, err := kubectl(ctx, pod, "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`spec.volumes[0].persistentVolumeClaim: Forbidden: volume "data" names the claim data-fake-0 as a StatefulSet's, but only the StatefulSet controller creates pods with a StatefulSet's claims`)))
	})

	It("admits the chart's cache paths with a warning that nothing bounds them", func(ctx SpecContext) {
		DeferCleanup(deletePod, "storage-chart-cache")
		manifest := enginePod("storage-chart-cache", "", "") + `  volumes:
    - name: varlibdagger
      hostPath: {path: /var/lib/dagger-dagger-helm}
`
		_, stderr, err := kubectlWithStderr(ctx, manifest, "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		Expect(stderr).To(ContainSubstring(`hostPath volume "varlibdagger" (/var/lib/dagger-dagger-helm, under /var/lib/dagger) is storage on the node that no quota profile bounds`))
	})
})

var _ = Describe("Privileges in app namespaces, as an ordinary developer", func() {
	It("denies a privileged pod that is not recognised as an engine, and a helper's escalations", func(ctx SpecContext) {
		renamed := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: renamed-engine, namespace: %s}
spec:
  containers:
    - name: builder
      image: registry.example.com/mirror/buildkit:v0.19.7
      securityContext: {privileged: true}
`, namespace)
		_, err := kubectl(ctx, renamed, "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`spec.containers[0].securityContext.privileged: Forbidden: container "builder" runs privileged in a pod that is not a Dagger engine`)))

		deployment := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: renamed-engine, namespace: %s}
spec:
  selector: {matchLabels: {app: renamed}}
  template:
    metadata: {labels: {app: renamed}}
    spec:
      containers:
        - name: builder
          image: registry.example.com/mirror/buildkit:v0.19.7
          securityContext: {capabilities: {add: [SYS_ADMIN]}}
`, namespace)
		_, err = kubectl(ctx, deployment, "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`spec.template.spec.containers[0].securityContext.capabilities.add: Forbidden: container "builder" adds SYS_ADMIN in a pod that is not a Dagger engine`)))

		escalating := enginePod("escalating-helper", "", helperContainer("helper", "busybox:1.37", bounded)+`      securityContext:
        allowPrivilegeEscalation: true
        seccompProfile: {type: Unconfined}
`) + "  shareProcessNamespace: true\n"
		_, err = kubectl(ctx, escalating, "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(And(
			ContainSubstring(`spec.containers[1].securityContext.allowPrivilegeEscalation: Forbidden`),
			ContainSubstring(`spec.containers[1].securityContext.seccompProfile.type: Forbidden`),
			ContainSubstring(`spec.shareProcessNamespace: Forbidden`))))
	})

	It("admits a plain pod with the baseline's capabilities", func(ctx SpecContext) {
		DeferCleanup(deletePod, "plain-bind")
		_, err := kubectl(ctx, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: plain-bind, namespace: %s}
spec:
  containers:
    - name: web
      image: nginx:1.29
      securityContext: {capabilities: {add: [NET_BIND_SERVICE]}}
`, namespace), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
	})
})
