package cluster

import (
	"fmt"
	"strings"
)

// The cluster's addresses. They are private ranges unlikely to be in use on a workstation or CI
// machine; the node's address lives on a bridge of its own with no ports, so that it never
// depends on, or changes, the machine's own interfaces.
const (
	// NodeName is the single node's name: fixed, so that nothing looks the host's name up.
	NodeName = "iss-node"
	// NodeIP is the node's InternalIP, where kube-apiserver and the kubelet serve.
	NodeIP = "10.250.0.1"
	// nodeBridge holds NodeIP.
	nodeBridge = "iss-node"
	// podBridge is the bridge of the pods' network (the CNI bridge plugin's).
	podBridge = "iss0"
	// PodCIDR is the pods' network, and PodGateway the host's address on it, where pods reach
	// this machine.
	PodCIDR     = "10.244.0.0/24"
	clusterCIDR = "10.244.0.0/16"
	PodGateway  = "10.244.0.1"
	// ServiceCIDR is the Services' range; the API server's Service takes its first address and
	// the DNS Service DNSServiceIP.
	ServiceCIDR    = "10.96.0.0/16"
	apiServiceIP   = "10.96.0.1"
	DNSServiceIP   = "10.96.0.10"
	clusterDomain  = "cluster.local"
	apiServerPort  = 16443
	etcdClientPort = 23790
	etcdPeerPort   = 23800
	kubeletPort    = 20250
	kubeletHealthz = 20248
	kcmPort        = 20257
	schedulerPort  = 20259
	proxyHealthz   = 20256
	proxyMetrics   = 20249
	routerHealthz  = 20244
)

// Image references of the images that the cluster needs and imports from the image directory:
// nothing is ever pulled.
const (
	PauseImage   = "localhost/iss-pause:dev"
	CoreDNSImage = "localhost/iss-coredns:dev"
)

// containerdConfig is containerd's configuration: its own root, state and socket, so that it
// never meets a containerd the machine runs, and the CRI settings this kind of host needs.
func containerdConfig(root, state, socket, cniConfDir, cniBinDir string) string {
	return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %[3]q

[ttrpc]
  address = %[6]q

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = %[7]q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[8]q
  # root here lacks CAP_SYS_RESOURCE: without this every sandbox fails with "can't get final
  # child's PID from pipe".
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[5]q
    conf_dir = %[4]q
    max_conf_num = 1
`, root, state, socket, cniConfDir, cniBinDir, socket+".ttrpc", root+"/opt", PauseImage)
}

// cniConfig is the pods' network: the bridge plugin on podBridge with host-local addresses of
// PodCIDR kept under ipamDir, no masquerading (nothing leaves the machine).
func cniConfig(ipamDir string) string {
	return fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "iss",
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": %q,
        "ranges": [[{"subnet": %q, "gateway": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
`, podBridge, ipamDir, PodCIDR, PodGateway)
}

// kubeletConfig is the kubelet's configuration for this kind of host: hybrid cgroup v1 with the
// cgroupfs driver, swap tolerated, its own ports, no upstream resolvers for pods.
func kubeletConfig(caFile, certFile, keyFile, socket, resolvConf, podLogsDir string) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: %[1]q
authorization:
  mode: Webhook
address: %[7]q
port: %[8]d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[9]d
tlsCertFile: %[2]q
tlsPrivateKeyFile: %[3]q
containerRuntimeEndpoint: unix://%[4]s
imageServiceEndpoint: unix://%[4]s
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
memorySwap: {}
clusterDomain: %[10]s
clusterDNS:
  - %[11]s
resolvConf: %[5]q
podLogsDir: %[6]q
protectKernelDefaults: false
serializeImagePulls: false
registerNode: true
rotateCertificates: false
serverTLSBootstrap: false
# A shared CI disk may be fuller than a node's: evict on memory only.
evictionHard:
  memory.available: 100Mi
  nodefs.available: "1%%"
  nodefs.inodesFree: "1%%"
  imagefs.available: "1%%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
imageMinimumGCAge: 87600h
shutdownGracePeriod: 0s
`, caFile, certFile, keyFile, socket, resolvConf, podLogsDir, NodeIP, kubeletPort, kubeletHealthz, clusterDomain, DNSServiceIP)
}

// kubeProxyConfig is kube-proxy's configuration: iptables mode, and no conntrack sysctls
// changed, which would outlive the cluster.
func kubeProxyConfig(kubeconfig string) string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %q
mode: iptables
hostnameOverride: %s
bindAddress: %s
clusterCIDR: %s
healthzBindAddress: 127.0.0.1:%d
metricsBindAddress: 127.0.0.1:%d
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, kubeconfig, NodeName, NodeIP, clusterCIDR, proxyHealthz, proxyMetrics)
}

// corefile is CoreDNS's configuration: the cluster zone and a hosts block for test names, and no
// forward, so that no query from a pod ever leaves the machine.
func corefile(hosts map[string]string) string {
	var b strings.Builder
	for name, ip := range hosts {
		fmt.Fprintf(&b, "        %s %s\n", ip, name)
	}
	return fmt.Sprintf(`.:53 {
    errors
    health :8080
    ready :8181
    hosts {
%s        fallthrough
    }
    kubernetes %s in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 30
}
`, b.String(), clusterDomain)
}
