// Package cluster brings up a real single-node Kubernetes cluster on this machine without
// Docker: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, the kubelet with
// containerd and runc, kube-proxy, the CNI bridge, CoreDNS and kube-router's NetworkPolicy
// controller, all but the Debian runtime packages built from pinned Go modules. It is the
// ground that `make cluster` and `make e2e-cluster` run iss-webhook on as an image, in a
// Deployment, behind its Service.
//
// It runs as root and changes the host's network while it runs: it records what it changes in
// its state directory, undoes it when it stops, and undoes what a killed run left behind when it
// starts again.
package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// componentBinaries are the binaries of bin/ that the cluster runs, built by
// e2e/tools/build.sh.
var componentBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kube-router"}

// Options configure a cluster.
type Options struct {
	// BinDir holds the components' binaries (bin/ of the checkout).
	BinDir string
	// ImageDir holds the image tarballs that are imported into containerd: at least the pause
	// and CoreDNS images; every *.tar in it is imported.
	ImageDir string
	// StateDir holds the cluster's files: certificates, configurations, etcd's data, the
	// kubelet's and containerd's directories, logs (.iss-dev/cluster).
	StateDir string
	// RunDir holds sockets and containerd's state; it is on a tmpfs such as /run.
	RunDir string
	// Progress receives one line per step.
	Progress io.Writer
	// Timeout bounds each wait (for a component to answer, the node to be Ready, DNS). The
	// default, 5 minutes, holds on a loaded 2-core machine.
	Timeout time.Duration
	// DNSHosts are names that CoreDNS answers with the given address, in addition to the
	// cluster zone.
	DNSHosts map[string]string
	// CertManagerCRDs are the CRD manifests of the cert-manager module whose controllers
	// CertManagerBinaries are built from; with them, Start runs cert-manager too, last.
	CertManagerCRDs []string
}

// Cluster is a running cluster.
type Cluster struct {
	Options
	// Kubeconfig is the cluster admin's kubeconfig (group system:masters).
	Kubeconfig string
	// Config is the cluster admin's client configuration.
	Config *rest.Config

	pki   *pki
	procs []*process
	lock  *os.File
}

// deadProxy is a proxy address that nothing serves (the discard port on loopback).
const deadProxy = "http://127.0.0.1:9"

// DefaultTimeout is how long each wait lasts unless Options.Timeout says otherwise.
const DefaultTimeout = 5 * time.Minute

// New returns the cluster of the options, not started.
func New(o Options) (*Cluster, error) {
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	for _, d := range []*string{&o.BinDir, &o.ImageDir, &o.StateDir, &o.RunDir} {
		abs, err := filepath.Abs(*d)
		if err != nil {
			return nil, err
		}
		*d = abs
	}
	return &Cluster{Options: o, Kubeconfig: filepath.Join(o.StateDir, "kubeconfig")}, nil
}

func (c *Cluster) bin(name string) string { return filepath.Join(c.BinDir, name) }
func (c *Cluster) path(parts ...string) string {
	return filepath.Join(append([]string{c.StateDir}, parts...)...)
}
func (c *Cluster) hostStateFile() string    { return c.path("host-state.json") }
func (c *Cluster) containerdSocket() string { return c.ContainerdSocket() }

// ContainerdSocket is the address of the node's containerd (for ctr --address).
func (c *Cluster) ContainerdSocket() string {
	return filepath.Join(c.RunDir, "containerd", "containerd.sock")
}

func (c *Cluster) containerdConfigFile() string {
	return c.path("containerd", "config.toml")
}

// LogDir is where each component's log is written, one file each.
func (c *Cluster) LogDir() string { return c.path("logs") }

func (c *Cluster) progress(format string, args ...any) {
	if c.Progress != nil {
		fmt.Fprintf(c.Progress, "cluster: "+format+"\n", args...)
	}
}

// lockFile serialises runs on this machine: the bridges, addresses, ports and iptables chains
// of a cluster are the host's, so two at once would undo each other's.
const lockFile = "/run/iss-cluster.lock"

// Lock takes the machine-wide lock of the cluster's runs for as long as this process lives, or
// says which process holds it.
func (c *Cluster) Lock() error {
	f, err := os.OpenFile(lockFile, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("opening %s: %w", lockFile, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(lockFile)
		f.Close()
		return fmt.Errorf("another run of the cluster holds %s (%s): one cluster runs on a machine at a time; wait for it to stop, or stop it with Ctrl-C", lockFile, strings.TrimSpace(string(holder)))
	}
	_ = f.Truncate(0)
	_, _ = fmt.Fprintf(f, "pid %d, state %s", os.Getpid(), c.StateDir)
	c.lock = f // held until the process exits
	return nil
}

// CleanUp undoes what an earlier run of this state directory left on the host: all that its
// state file records, and without one what any run leaves (processes, iptables chains, bridges,
// mounts, cgroups).
func (c *Cluster) CleanUp(ctx context.Context) error {
	if _, err := os.Stat(c.hostStateFile()); err == nil {
		c.progress("cleaning up what an earlier run left on the host (%s)", c.hostStateFile())
	} else {
		c.progress("cleaning up the host: no earlier run recorded its changes in %s; removing its processes, iptables chains, bridges, mounts and cgroups if any are left", c.hostStateFile())
	}
	if err := c.cleanUpHost(ctx); err != nil {
		return err
	}
	c.progress("the host is clean")
	return nil
}

// Start brings the cluster up and waits until the node is Ready and DNS answers. On failure,
// everything it started and changed is undone.
func (c *Cluster) Start(ctx context.Context) (err error) {
	binaries := componentBinaries
	if len(c.CertManagerCRDs) > 0 {
		binaries = append(slices.Clone(binaries), CertManagerBinaries...)
	}
	for _, name := range binaries {
		if _, err := os.Stat(c.bin(name)); err != nil {
			return fmt.Errorf("%s is missing from %s: run `make cluster-binaries` first", name, c.BinDir)
		}
	}
	for _, img := range []string{"pause.tar", "coredns.tar"} {
		if _, err := os.Stat(filepath.Join(c.ImageDir, img)); err != nil {
			return fmt.Errorf("%s is missing from %s: run `make image` first", img, c.ImageDir)
		}
	}
	_, leftovers := os.Stat(c.hostStateFile())
	if err := preflight(ctx, leftovers == nil); err != nil {
		return err
	}
	if leftovers == nil {
		if err := c.CleanUp(ctx); err != nil {
			return fmt.Errorf("cleaning up after an earlier run: %w", err)
		}
	}
	if err := ensurePackages(ctx, c.progress); err != nil {
		return err
	}
	// A fresh cluster each run: etcd's data, the kubelet's and the network's state go; the
	// images in containerd's root stay, so that a second run imports nothing it has.
	for _, d := range []string{c.path("etcd"), c.path("kubelet"), c.path("cni"), c.path("logs"), c.RunDir} {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	for _, d := range []string{c.StateDir, c.LogDir(), c.path("cni", "net.d"), c.path("kubelet"), c.path("containerd"), c.RunDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	defer func() {
		if err != nil {
			c.progress("start-up failed: stopping what was started; the components' logs are in %s", c.LogDir())
			if serr := c.Stop(); serr != nil {
				err = errors.Join(err, serr)
			}
		}
	}()
	if err := c.setUpHost(ctx); err != nil {
		return fmt.Errorf("setting up the host: %w", err)
	}
	if err := c.writeCredentials(); err != nil {
		return err
	}
	steps := []struct {
		what string
		fn   func(context.Context) error
	}{
		{"etcd", c.startEtcd},
		{"kube-apiserver", c.startAPIServer},
		{"kube-controller-manager and kube-scheduler", c.startControllers},
		{"containerd", c.startContainerd},
		{"the kubelet", c.startKubelet},
		{"kube-proxy", c.startKubeProxy},
		{"kube-router's NetworkPolicy controller", c.startKubeRouter},
		{"CoreDNS", c.startCoreDNS},
	}
	if len(c.CertManagerCRDs) > 0 {
		steps = append(steps, struct {
			what string
			fn   func(context.Context) error
		}{"cert-manager", c.startCertManager})
	}
	for _, s := range steps {
		if err := s.fn(ctx); err != nil {
			return fmt.Errorf("starting %s: %w", s.what, err)
		}
	}
	also := ""
	if len(c.CertManagerCRDs) > 0 {
		also = ", cert-manager runs"
	}
	c.progress("the cluster is up: node %s is Ready and DNS answers%s; export KUBECONFIG=%s", NodeName, also, c.Kubeconfig)
	return nil
}

// Stop stops every component, kills the pods' processes and undoes the host's changes.
func (c *Cluster) Stop() error {
	c.progress("stopping the cluster")
	var errs []error
	// The node first, so that nothing restarts the pods; the control plane last.
	for i := len(c.procs) - 1; i >= 0; i-- {
		// A component that outlives its grace period is killed: the cluster is going away, and
		// what counts is that the host is clean after it.
		if err := c.procs[i].stop(time.Minute); err != nil {
			c.progress("%v", err)
		}
	}
	c.procs = nil
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.cleanUpHost(ctx); err != nil {
		errs = append(errs, fmt.Errorf("cleaning up the host: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	c.progress("stopped; the host's network, mounts, cgroups and sysctls are as before")
	return nil
}

// writeCredentials issues the cluster's certificates and writes each component's kubeconfig.
func (c *Cluster) writeCredentials() error {
	p, err := newPKI(c.path("pki"))
	if err != nil {
		return err
	}
	c.pki = p
	nodeIP := net.ParseIP(NodeIP)
	if _, _, err := p.issue(certRequest{name: "apiserver", commonName: "kube-apiserver", server: true,
		dnsNames: []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + clusterDomain, "localhost"},
		ips:      []net.IP{nodeIP, net.ParseIP(apiServiceIP), net.ParseIP("127.0.0.1")}}); err != nil {
		return err
	}
	if _, _, err := p.issue(certRequest{name: "apiserver-kubelet-client", commonName: "kube-apiserver-kubelet-client", organizations: []string{"system:masters"}, client: true}); err != nil {
		return err
	}
	if _, _, err := p.issue(certRequest{name: "kubelet-serving", commonName: NodeName, server: true, dnsNames: []string{NodeName}, ips: []net.IP{nodeIP}}); err != nil {
		return err
	}
	if _, _, err := p.serviceAccountKeys(); err != nil {
		return err
	}
	users := []struct {
		file, user string
		groups     []string
	}{
		{"kubeconfig", "iss-cluster-admin", []string{"system:masters"}},
		{"controller-manager.kubeconfig", "system:kube-controller-manager", nil},
		{"scheduler.kubeconfig", "system:kube-scheduler", nil},
		{"kubelet.kubeconfig", "system:node:" + NodeName, []string{"system:nodes"}},
		{"kube-proxy.kubeconfig", "system:kube-proxy", nil},
		// kube-router's controller reads pods, namespaces and NetworkPolicies of every
		// namespace and programs the node: an admin identity, as its DaemonSet's role is
		// nearly one.
		{"kube-router.kubeconfig", "system:kube-router", []string{"system:masters"}},
	}
	for _, u := range users {
		name := strings.TrimSuffix(u.file, ".kubeconfig")
		cert, key, err := p.issue(certRequest{name: "client-" + name, commonName: u.user, organizations: u.groups, client: true})
		if err != nil {
			return err
		}
		if err := writeKubeconfig(c.path(u.file), p, u.user, cert, key); err != nil {
			return err
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return err
	}
	c.Config = cfg
	return nil
}

// writeKubeconfig writes a kubeconfig of the API server for a user with a client certificate,
// the files embedded so that it can be copied.
func writeKubeconfig(path string, p *pki, user, certFile, keyFile string) error {
	cert, err := os.ReadFile(certFile)
	if err != nil {
		return err
	}
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["iss-cluster"] = &clientcmdapi.Cluster{Server: APIServerURL(), CertificateAuthorityData: p.caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key}
	cfg.Contexts["iss-cluster"] = &clientcmdapi.Context{Cluster: "iss-cluster", AuthInfo: user}
	cfg.CurrentContext = "iss-cluster"
	return clientcmd.WriteToFile(*cfg, path)
}

// APIServerURL is where kube-apiserver serves.
func APIServerURL() string { return "https://" + net.JoinHostPort(NodeIP, strconv.Itoa(apiServerPort)) }

func (c *Cluster) startEtcd(ctx context.Context) error {
	client := fmt.Sprintf("http://127.0.0.1:%d", etcdClientPort)
	peer := fmt.Sprintf("http://127.0.0.1:%d", etcdPeerPort)
	if err := c.start("etcd", c.bin("etcd"),
		"--name", "iss-cluster", "--data-dir", c.path("etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "iss-cluster="+peer, "--listen-metrics-urls", "",
		"--quota-backend-bytes", strconv.Itoa(2<<30), "--unsafe-no-fsync"); err != nil {
		return err
	}
	return c.waitHTTP(ctx, "etcd", client+"/health", nil)
}

func (c *Cluster) startAPIServer(ctx context.Context) error {
	p := c.pki.dir
	if err := c.start("kube-apiserver", c.bin("kube-apiserver"),
		"--etcd-servers", fmt.Sprintf("http://127.0.0.1:%d", etcdClientPort),
		"--bind-address", NodeIP, "--advertise-address", NodeIP, "--secure-port", strconv.Itoa(apiServerPort),
		"--tls-cert-file", filepath.Join(p, "apiserver.crt"), "--tls-private-key-file", filepath.Join(p, "apiserver.key"),
		"--client-ca-file", c.pki.caFile(),
		"--kubelet-client-certificate", filepath.Join(p, "apiserver-kubelet-client.crt"),
		"--kubelet-client-key", filepath.Join(p, "apiserver-kubelet-client.key"),
		"--kubelet-certificate-authority", c.pki.caFile(),
		// Otherwise it looks the node's name up through the host's resolver, a query that
		// would leave the machine.
		"--kubelet-preferred-address-types", "InternalIP",
		"--service-account-issuer", "https://kubernetes.default.svc."+clusterDomain,
		"--service-account-key-file", filepath.Join(p, "sa.pub"),
		"--service-account-signing-key-file", filepath.Join(p, "sa.key"),
		"--service-cluster-ip-range", ServiceCIDR,
		"--authorization-mode", "Node,RBAC",
		"--enable-admission-plugins", "NodeRestriction",
		"--allow-privileged=true",
		"--profiling=false",
		"--cert-dir", c.path("apiserver-certs"),
		"--audit-log-maxage", "0"); err != nil {
		return err
	}
	return c.waitReadyz(ctx, "kube-apiserver", APIServerURL())
}

func (c *Cluster) startControllers(ctx context.Context) error {
	p := c.pki.dir
	if err := c.start("kube-controller-manager", c.bin("kube-controller-manager"),
		"--kubeconfig", c.path("controller-manager.kubeconfig"),
		"--authentication-kubeconfig", c.path("controller-manager.kubeconfig"),
		"--authorization-kubeconfig", c.path("controller-manager.kubeconfig"),
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(kcmPort),
		"--leader-elect=false",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file", filepath.Join(p, "sa.key"),
		"--root-ca-file", c.pki.caFile(),
		"--cluster-signing-cert-file", c.pki.caFile(),
		"--cluster-signing-key-file", filepath.Join(p, "ca.key"),
		"--allocate-node-cidrs=true", "--cluster-cidr", clusterCIDR, "--node-cidr-mask-size", "24",
		"--service-cluster-ip-range", ServiceCIDR,
		"--controllers", "*"); err != nil {
		return err
	}
	if err := c.start("kube-scheduler", c.bin("kube-scheduler"),
		"--kubeconfig", c.path("scheduler.kubeconfig"),
		"--authentication-kubeconfig", c.path("scheduler.kubeconfig"),
		"--authorization-kubeconfig", c.path("scheduler.kubeconfig"),
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(schedulerPort),
		"--leader-elect=false"); err != nil {
		return err
	}
	insecure := &tls.Config{InsecureSkipVerify: true} // self-signed serving certificates, on loopback
	if err := c.waitHTTP(ctx, "kube-controller-manager", fmt.Sprintf("https://127.0.0.1:%d/healthz", kcmPort), insecure); err != nil {
		return err
	}
	return c.waitHTTP(ctx, "kube-scheduler", fmt.Sprintf("https://127.0.0.1:%d/healthz", schedulerPort), insecure)
}

func (c *Cluster) startContainerd(ctx context.Context) error {
	if err := os.WriteFile(c.path("cni", "net.d", "10-iss.conflist"), []byte(cniConfig(c.path("cni", "ipam"))), 0o644); err != nil {
		return err
	}
	cfg := containerdConfig(c.path("containerd", "root"), filepath.Join(c.RunDir, "containerd", "state"), c.containerdSocket(), c.path("cni", "net.d"), cniBinDir)
	if err := os.WriteFile(c.containerdConfigFile(), []byte(cfg), 0o644); err != nil {
		return err
	}
	// Every image is imported; a pod naming another one must fail to pull here, never look a
	// registry up or connect to it: containerd's registry client goes through this proxy, which
	// nothing serves, so it neither resolves nor dials the registry's name.
	noEgress := []string{"HTTP_PROXY=" + deadProxy, "HTTPS_PROXY=" + deadProxy, "http_proxy=" + deadProxy, "https_proxy=" + deadProxy, "NO_PROXY=", "no_proxy="}
	if err := c.startWithEnv("containerd", noEgress, "/usr/bin/containerd", "--config", c.containerdConfigFile()); err != nil {
		return err
	}
	deadline := time.Now().Add(c.Timeout)
	for {
		if out, err := exec.CommandContext(ctx, "ctr", "--address", c.containerdSocket(), "version").CombinedOutput(); err == nil {
			break
		} else if time.Now().After(deadline) {
			return fmt.Errorf("containerd did not answer on %s within %s: %s", c.containerdSocket(), c.Timeout, lastLines(string(out), 3))
		}
		if err := c.sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
	return c.ImportImages(ctx)
}

// ImportImages imports every image tarball of the image directory into containerd's k8s.io
// namespace, where the kubelet finds them.
func (c *Cluster) ImportImages(ctx context.Context) error {
	tars, err := filepath.Glob(filepath.Join(c.ImageDir, "*.tar"))
	if err != nil {
		return err
	}
	for _, t := range tars {
		c.progress("importing the image %s into containerd", t)
		if out, err := exec.CommandContext(ctx, "ctr", "--address", c.containerdSocket(), "-n", "k8s.io", "images", "import", "--no-unpack=false", t).CombinedOutput(); err != nil {
			return fmt.Errorf("ctr images import %s: %v: %s", t, err, lastLines(string(out), 5))
		}
	}
	return nil
}

func (c *Cluster) startKubelet(ctx context.Context) error {
	resolv := c.path("kubelet-resolv.conf")
	// Pods with dnsPolicy Default get this file's resolvers: none, so that no query leaves.
	if err := os.WriteFile(resolv, []byte("# no upstream resolvers: the cluster answers its own zone only\n"), 0o644); err != nil {
		return err
	}
	p := c.pki.dir
	cfg := kubeletConfig(c.pki.caFile(), filepath.Join(p, "kubelet-serving.crt"), filepath.Join(p, "kubelet-serving.key"), c.containerdSocket(), resolv, c.path("kubelet", "pod-logs"))
	cfg += "cgroupRoot: /" + cgroupParent + "\n"
	if err := createCgroups(); err != nil {
		return err
	}
	if err := os.WriteFile(c.path("kubelet-config.yaml"), []byte(cfg), 0o644); err != nil {
		return err
	}
	if err := c.start("kubelet", c.bin("kubelet"),
		"--config", c.path("kubelet-config.yaml"),
		"--kubeconfig", c.path("kubelet.kubeconfig"),
		"--root-dir", c.path("kubelet"),
		"--cert-dir", c.path("kubelet", "pki"),
		"--hostname-override", NodeName,
		"--node-ip", NodeIP); err != nil {
		return err
	}
	c.progress("waiting up to %s for node %s to be Ready", c.Timeout, NodeName)
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	return c.poll(ctx, "node "+NodeName+" to be Ready", func() (bool, string) {
		n, err := cs.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				return cond.Status == corev1.ConditionTrue, cond.Reason + ": " + cond.Message
			}
		}
		return false, "no Ready condition yet"
	})
}

func (c *Cluster) startKubeProxy(ctx context.Context) error {
	if err := os.WriteFile(c.path("kube-proxy-config.yaml"), []byte(kubeProxyConfig(c.path("kube-proxy.kubeconfig"))), 0o644); err != nil {
		return err
	}
	if err := c.start("kube-proxy", c.bin("kube-proxy"), "--config", c.path("kube-proxy-config.yaml")); err != nil {
		return err
	}
	return c.waitHTTP(ctx, "kube-proxy", fmt.Sprintf("http://127.0.0.1:%d/healthz", proxyHealthz), nil)
}

func (c *Cluster) startKubeRouter(ctx context.Context) error {
	if err := c.start("kube-router", c.bin("kube-router"),
		"--kubeconfig", c.path("kube-router.kubeconfig"),
		"--run-firewall=true", "--run-router=false", "--run-service-proxy=false",
		"--enable-cni=false", "--enable-ipv4=true", "--enable-ipv6=false",
		"--hostname-override", NodeName,
		"--service-cluster-ip-range", ServiceCIDR,
		"--health-port", strconv.Itoa(routerHealthz), "--metrics-port", "0",
		"--iptables-sync-period", "1m", "-v", "1"); err != nil {
		return err
	}
	return c.waitHTTP(ctx, "kube-router", fmt.Sprintf("http://127.0.0.1:%d/healthz", routerHealthz), nil)
}

func (c *Cluster) startCoreDNS(ctx context.Context) error {
	if _, stderr, err := c.kubectl(ctx, coreDNSManifests(c.DNSHosts), "apply", "-f", "-"); err != nil {
		return fmt.Errorf("applying CoreDNS: %v: %s", err, stderr)
	}
	c.progress("waiting up to %s for CoreDNS to be Available", c.Timeout)
	if _, stderr, err := c.kubectl(ctx, "", "wait", "--for=condition=Available", "--timeout="+c.Timeout.String(), "-n", "kube-system", "deployment/coredns"); err != nil {
		return fmt.Errorf("waiting for CoreDNS: %v: %s", err, stderr)
	}
	// From the host, through the Service: kube-proxy's rules and CoreDNS both answer.
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, net.JoinHostPort(DNSServiceIP, "53"))
	}}
	name := "kubernetes.default.svc." + clusterDomain
	return c.poll(ctx, "DNS to answer "+name+" on "+DNSServiceIP, func() (bool, string) {
		lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		addrs, err := resolver.LookupHost(lctx, name)
		if err != nil {
			return false, err.Error()
		}
		for _, a := range addrs {
			if a == apiServiceIP {
				return true, ""
			}
		}
		return false, fmt.Sprintf("answered %v, not %s", addrs, apiServiceIP)
	})
}

// kubectl runs kubectl as the cluster admin.
func (c *Cluster) kubectl(ctx context.Context, stdin string, args ...string) (string, string, error) {
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), strings.TrimSpace(errOut.String()), err
}

// waitHTTP waits until url answers 200.
func (c *Cluster) waitHTTP(ctx context.Context, what, url string, tlsConfig *tls.Config) error {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig}}
	return c.poll(ctx, what+" to answer "+url, func() (bool, string) {
		resp, err := client.Get(url)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
}

// waitReadyz waits until the API server's /readyz answers 200 to the admin.
func (c *Cluster) waitReadyz(ctx context.Context, what, server string) error {
	cert, err := tls.X509KeyPair(c.Config.CertData, c.Config.KeyData)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.pki.caPEM)
	return c.waitHTTP(ctx, what, server+"/readyz", &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}})
}

// poll calls check every second until it holds, the timeout passes (the error says what it
// waited for and what it saw last) or a component exits.
func (c *Cluster) poll(ctx context.Context, what string, check func() (bool, string)) error {
	deadline := time.Now().Add(c.Timeout)
	last := ""
	for {
		ok, detail := check()
		if ok {
			return nil
		}
		last = detail
		for _, p := range c.procs {
			if err := p.exited(); err != nil {
				return fmt.Errorf("while waiting for %s: %s exited (%v); the end of its log (%s):\n%s", what, p.name, err, p.log, tailFile(p.log, 20))
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gave up waiting for %s after %s; last: %s", what, c.Timeout, last)
		}
		if err := c.sleep(ctx, time.Second); err != nil {
			return err
		}
	}
}

func (c *Cluster) sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// process is a component the cluster runs.
type process struct {
	name, log string
	cmd       *exec.Cmd
	done      chan struct{}
	err       error
}

// start runs a component with its output in logs/<name>.log. The component dies with this
// process (a kill -9 of it leaves nothing running that the next start does not kill).
func (c *Cluster) start(name, binary string, args ...string) error {
	return c.startWithEnv(name, nil, binary, args...)
}

// startWithEnv is start with variables added to the environment.
func (c *Cluster) startWithEnv(name string, env []string, binary string, args ...string) error {
	log := filepath.Join(c.LogDir(), name+".log")
	f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = c.StateDir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, log: log, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		if p.err == nil {
			p.err = errors.New("exited with status 0")
		}
		f.Close()
		close(p.done)
	}()
	c.procs = append(c.procs, p)
	c.progress("started %s (log: %s)", name, log)
	return nil
}

// exited returns why the process ended, or nil while it runs.
func (p *process) exited() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// stop sends SIGTERM and, after grace, SIGKILL.
func (p *process) stop(grace time.Duration) error {
	if p.exited() != nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %s of SIGTERM; killed", p.name, grace)
	}
}

func tailFile(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return lastLines(string(data), n)
}
