package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The Debian packages whose commands the cluster runs, and the command (or file) that tells each
// is installed.
var debianPackages = []struct{ pkg, probe string }{
	{"containerd", "/usr/bin/containerd"},
	{"containerd", "/usr/bin/containerd-shim-runc-v2"},
	{"runc", "/usr/sbin/runc"},
	{"containernetworking-plugins", "/usr/lib/cni/bridge"},
	{"iptables", "iptables"},
	{"ipset", "ipset"},
	{"conntrack", "conntrack"},
	{"iproute2", "ip"},
}

// cniBinDir is where Debian's containernetworking-plugins puts the plugins.
const cniBinDir = "/usr/lib/cni"

// cgroupParent is the cgroup, under each controller's hierarchy, that holds every pod: a
// kubelet the machine runs has its own, and cleaning up never touches it.
const cgroupParent = "iss-cluster"

// routerCleanedUp is what kube-router's cleanup prints once its NetworkPolicy controller's
// iptables rules and ipsets are gone.
const routerCleanedUp = "Successfully cleaned the NetworkPolicyController configurations"

// mangleChain is the chain of the mangle table that keeps pods' traffic on the machine.
const mangleChain = "ISS-CLUSTER"

// sysctls are the kernel settings that the cluster sets (the first ones) or that the kubelet,
// kube-proxy and kube-router may set; each is recorded before the cluster starts and put back
// when it stops.
var sysctls = []string{
	"net.ipv4.ip_forward",
	"net.ipv4.conf.all.forwarding",
	"net.ipv4.conf.default.forwarding",
	"net.bridge.bridge-nf-call-iptables",
	"net.bridge.bridge-nf-call-ip6tables",
	"net.ipv4.conf.all.route_localnet",
	"vm.overcommit_memory",
	"vm.panic_on_oom",
	"kernel.panic",
	"kernel.panic_on_oops",
	"kernel.keys.root_maxkeys",
	"kernel.keys.root_maxbytes",
	"net.netfilter.nf_conntrack_max",
}

// The settings the cluster needs: IPv4 forwarding (a pod reaching a Service's pod on the same
// bridge is routed), and bridged traffic through iptables, where kube-proxy and the
// NetworkPolicy enforcer see it.
var wantSysctls = map[string]string{
	"net.ipv4.ip_forward":                 "1",
	"net.bridge.bridge-nf-call-iptables":  "1",
	"net.bridge.bridge-nf-call-ip6tables": "1",
}

// hostState is what a running cluster changed on the host, kept in a file so that a run after
// one that was killed (kill -9) can undo it.
type hostState struct {
	// Sysctls are the values before the cluster started.
	Sysctls map[string]string `json:"sysctls"`
	// NetNSBefore are the network namespaces that existed before; the others named cni-* are
	// the pods'.
	NetNSBefore []string `json:"netnsBefore"`
	// StartedAt is when the cluster started.
	StartedAt time.Time `json:"startedAt"`
}

func readSysctl(name string) (string, error) {
	b, err := os.ReadFile(sysctlPath(name))
	return strings.TrimSpace(string(b)), err
}

func writeSysctl(name, value string) error {
	return os.WriteFile(sysctlPath(name), []byte(value+"\n"), 0o644)
}

func sysctlPath(name string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/"))
}

// Preflight checks that this host can run a cluster of this state directory, before anything
// is built or changed: an *UnsupportedError says why not.
func (c *Cluster) Preflight(ctx context.Context) error {
	_, err := os.Stat(c.hostStateFile())
	return preflight(ctx, err == nil)
}

// preflight checks that this host can run the cluster: root, writable cgroups, no kube-proxy of
// another cluster in the host's iptables. Each failure says what is missing.
func preflight(ctx context.Context, resuming bool) error {
	if os.Geteuid() != 0 {
		return &UnsupportedError{Reason: "it must run as root: it starts containerd and the kubelet and changes the host's network (bridges, iptables, sysctls)"}
	}
	for _, ctrl := range []string{"memory", "cpu", "pids"} {
		dir := filepath.Join("/sys/fs/cgroup", ctrl, cgroupParent+"-probe")
		if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
			dir = filepath.Join("/sys/fs/cgroup", cgroupParent+"-probe")
		}
		if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
			return &UnsupportedError{Reason: fmt.Sprintf("the cgroups are not writable (%v): the kubelet needs to create the pods' cgroups", err)}
		}
		_ = os.Remove(dir)
		if dir == filepath.Join("/sys/fs/cgroup", cgroupParent+"-probe") {
			break
		}
	}
	if !resuming {
		if chains := existingClusterChains(ctx); len(chains) > 0 {
			return &UnsupportedError{Reason: fmt.Sprintf("another cluster's kubelet, kube-proxy or NetworkPolicy controller has iptables chains here (%s): this one would share and then remove them; make cluster-clean removes them if they are a killed run's of this checkout", strings.Join(chains, ", "))}
		}
	}
	return nil
}

// UnsupportedError says why this host cannot run the cluster at all; `make test` skips the
// cluster's suite with its reason.
type UnsupportedError struct{ Reason string }

func (e *UnsupportedError) Error() string { return "this machine cannot run the cluster: " + e.Reason }

// ensurePackages installs the Debian packages whose commands are missing, with apt-get.
func ensurePackages(ctx context.Context, progress func(string, ...any)) error {
	var missing []string
	for _, p := range debianPackages {
		found := false
		if strings.HasPrefix(p.probe, "/") {
			_, err := os.Stat(p.probe)
			found = err == nil
		} else {
			_, err := exec.LookPath(p.probe)
			found = err == nil
		}
		if !found && !slices.Contains(missing, p.pkg) {
			missing = append(missing, p.pkg)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return &UnsupportedError{Reason: "the packages " + strings.Join(missing, ", ") + " are missing and there is no apt-get to install them"}
	}
	progress("installing Debian packages with apt-get: %s", strings.Join(missing, " "))
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	for _, args := range [][]string{{"update", "-q"}, append([]string{"install", "-y", "-q", "--no-install-recommends"}, missing...)} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s: %v\n%s", strings.Join(args, " "), err, lastLines(string(out), 20))
		}
	}
	// Where an init system runs, Debian also starts the containerd service it installed; the
	// cluster runs a containerd of its own beside it and leaves that one alone.
	return nil
}

// setUpHost records the host's settings in the state file, then changes them for the cluster:
// the node's bridge and address, sysctls, and the rule that keeps pods' traffic on the machine.
func (c *Cluster) setUpHost(ctx context.Context) error {
	st := hostState{Sysctls: map[string]string{}, StartedAt: time.Now()}
	for _, name := range sysctls {
		if v, err := readSysctl(name); err == nil {
			st.Sysctls[name] = v
		}
	}
	st.NetNSBefore = listNetNS()
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(c.hostStateFile(), data, 0o644); err != nil {
		return err
	}
	for name, v := range wantSysctls {
		if err := writeSysctl(name, v); err != nil {
			return fmt.Errorf("setting %s=%s: %w", name, v, err)
		}
	}
	for _, args := range [][]string{
		{"link", "add", nodeBridge, "type", "bridge"},
		{"addr", "add", NodeIP + "/32", "dev", nodeBridge},
		{"link", "set", nodeBridge, "up"},
	} {
		if err := run(ctx, "ip", args...); err != nil {
			return err
		}
	}
	// Pods talk to each other, to the node and to Services; the node forwards nothing of theirs
	// anywhere else, in either direction. The mangle table sees packets before any filter rule
	// that kube-proxy or the NetworkPolicy enforcer add could accept them.
	for _, args := range [][]string{
		{"-t", "mangle", "-N", mangleChain},
		{"-t", "mangle", "-A", mangleChain, "-s", clusterCIDR, "!", "-o", podBridge, "-j", "DROP", "-m", "comment", "--comment", "iss-cluster: pods reach nothing off the machine"},
		{"-t", "mangle", "-A", mangleChain, "-d", clusterCIDR, "!", "-i", podBridge, "-j", "DROP", "-m", "comment", "--comment", "iss-cluster: nothing off the machine reaches pods"},
		{"-t", "mangle", "-I", "FORWARD", "-j", mangleChain},
	} {
		if err := run(ctx, "iptables", args...); err != nil {
			return err
		}
	}
	return nil
}

// cleanUpHost undoes what a cluster of this state directory changed on the host, whether it
// stopped or was killed: its processes and the pods' processes, mounts, network namespaces,
// bridges, iptables rules and ipsets, cgroups, sysctls. It returns every failure, after trying
// everything.
func (c *Cluster) cleanUpHost(ctx context.Context) error {
	var errs []error
	data, err := os.ReadFile(c.hostStateFile())
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	var st hostState
	if len(data) > 0 {
		if err := json.Unmarshal(data, &st); err != nil {
			return fmt.Errorf("reading %s: %w", c.hostStateFile(), err)
		}
	}
	errs = append(errs, c.killLeftovers())
	// kube-proxy and kube-router remove their own rules and sets.
	if _, err := os.Stat(c.bin("kube-proxy")); err == nil {
		if out, err := exec.CommandContext(ctx, c.bin("kube-proxy"), "--cleanup", "--proxy-mode", "iptables").CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("kube-proxy --cleanup: %v: %s", err, lastLines(string(out), 5)))
		}
	}
	if _, err := os.Stat(c.bin("kube-router")); err == nil {
		// kube-router v2.1.0 cleans its NetworkPolicy controller's rules and sets, then panics
		// in the service proxy's cleanup, which never ran here: the first part is what counts.
		out, err := exec.CommandContext(ctx, c.bin("kube-router"), "--cleanup-config").CombinedOutput()
		if err != nil && !strings.Contains(string(out), routerCleanedUp) {
			errs = append(errs, fmt.Errorf("kube-router --cleanup-config: %v: %s", err, lastLines(string(out), 5)))
		}
	}
	errs = append(errs, removeClusterChains(ctx))
	errs = append(errs, c.unmountAll())
	before := map[string]bool{}
	for _, n := range st.NetNSBefore {
		before[n] = true
	}
	for _, n := range listNetNS() {
		if strings.HasPrefix(n, "cni-") && !before[n] && len(data) > 0 {
			p := filepath.Join("/run/netns", n)
			_ = syscall.Unmount(p, syscall.MNT_DETACH)
			if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
				errs = append(errs, err)
			}
		}
	}
	for _, link := range []string{podBridge, nodeBridge} {
		if exec.CommandContext(ctx, "ip", "link", "show", link).Run() == nil {
			if err := run(ctx, "ip", "link", "del", link); err != nil {
				errs = append(errs, err)
			}
		}
	}
	errs = append(errs, removeCgroups())
	for name, v := range st.Sysctls {
		if cur, err := readSysctl(name); err == nil && cur != v {
			if err := writeSysctl(name, v); err != nil {
				errs = append(errs, fmt.Errorf("restoring %s=%s: %w", name, v, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := os.Remove(c.hostStateFile()); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// killLeftovers kills what a killed run left running: the cluster's own processes (binaries of
// bin/, containerd with this cluster's configuration, the shims of its socket) and every
// process in the pods' cgroups.
func (c *Cluster) killLeftovers() error {
	procs, _ := filepath.Glob("/proc/[0-9]*")
	self := os.Getpid()
	for _, p := range procs {
		pid, err := strconv.Atoi(filepath.Base(p))
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join(p, "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if c.ownsProcess(args) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for _, pid := range podPIDs() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	// The processes are gone once they are reaped; cgroups and mounts wait for that.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if !c.anyLeft() {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return errors.New("processes of the cluster were still running 30s after SIGKILL")
}

func (c *Cluster) anyLeft() bool { return len(podPIDs()) > 0 }

// podPIDs are the processes in the pods' cgroups, in every hierarchy.
func podPIDs() []int {
	var pids []int
	for _, dir := range cgroupDirs() {
		_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			data, _ := os.ReadFile(path)
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil {
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}

// ownsProcess tells whether a command line is one of this cluster's processes.
func (c *Cluster) ownsProcess(args []string) bool {
	if len(args) == 0 {
		return false
	}
	joined := strings.Join(args, " ")
	// The binaries of bin/ run elsewhere too (the local control plane's kube-apiserver and
	// etcd): only those whose arguments name this cluster's state directory are its own.
	for _, name := range componentBinaries {
		if args[0] == c.bin(name) {
			return strings.Contains(joined, c.StateDir+"/")
		}
	}
	if strings.Contains(joined, "containerd-shim") && strings.Contains(joined, c.containerdSocket()) {
		return true
	}
	return filepath.Base(args[0]) == "containerd" && strings.Contains(joined, c.containerdConfigFile())
}

// cgroupDirs are the cgroups that hold the pods, under each hierarchy.
func cgroupDirs() []string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return []string{filepath.Join("/sys/fs/cgroup", cgroupParent)}
	}
	hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*")
	var out []string
	for _, h := range hierarchies {
		dir := filepath.Join(h, cgroupParent)
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			out = append(out, dir)
		}
	}
	return out
}

// createCgroups creates the cgroup that holds the pods in every hierarchy: the kubelet wants its
// root to exist. A cpuset cgroup starts with no CPUs and memory nodes, so it gets its parent's.
func createCgroups() error {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return os.MkdirAll(filepath.Join("/sys/fs/cgroup", cgroupParent), 0o755)
	}
	hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range hierarchies {
		if _, err := os.Stat(filepath.Join(h, "cgroup.procs")); err != nil {
			continue // not a hierarchy (a symlink such as cpu,cpuacct resolves to one that is)
		}
		dir := filepath.Join(h, cgroupParent)
		if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
			return fmt.Errorf("creating cgroup %s: %w", dir, err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if v, err := os.ReadFile(filepath.Join(h, f)); err == nil {
				if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
					return fmt.Errorf("setting %s of %s: %w", f, dir, err)
				}
			}
		}
	}
	return nil
}

// removeCgroups removes the pods' cgroups, deepest first.
func removeCgroups() error {
	var errs []error
	for _, root := range cgroupDirs() {
		var dirs []string
		_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("removing cgroup %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}

// unmountAll unmounts everything mounted under the cluster's directories, deepest first.
func (c *Cluster) unmountAll() error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var points []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		for _, root := range []string{c.StateDir, c.RunDir} {
			if mp == root || strings.HasPrefix(mp, root+"/") {
				points = append(points, mp)
			}
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, p := range slices.Compact(points) {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// unescapeMount decodes the octal escapes of /proc/self/mountinfo (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func listNetNS() []string {
	entries, _ := os.ReadDir("/run/netns")
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// run runs a command and returns its output in the error when it fails.
func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
