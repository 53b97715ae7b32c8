package cluster

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestConfigurationsParse(t *testing.T) {
	var kubelet map[string]any
	if err := yaml.Unmarshal([]byte(kubeletConfig("/ca", "/crt", "/key", "/run/c.sock", "/resolv", "/logs")), &kubelet); err != nil {
		t.Fatalf("kubelet configuration: %v", err)
	}
	for key, want := range map[string]any{
		"cgroupDriver": "cgroupfs", "failCgroupV1": false, "failSwapOn": false,
		"containerRuntimeEndpoint": "unix:///run/c.sock", "resolvConf": "/resolv", "address": NodeIP,
	} {
		if kubelet[key] != want {
			t.Errorf("kubelet %s = %v, want %v", key, kubelet[key], want)
		}
	}
	var proxy map[string]any
	if err := yaml.Unmarshal([]byte(kubeProxyConfig("/kc")), &proxy); err != nil || proxy["mode"] != "iptables" {
		t.Errorf("kube-proxy configuration: %v %v", proxy, err)
	}
	var cni struct {
		Plugins []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(cniConfig("/ipam")), &cni); err != nil {
		t.Fatalf("CNI configuration: %v", err)
	}
	if got := cni.Plugins[0]; got["bridge"] != podBridge || got["ipMasq"] != false {
		t.Errorf("CNI bridge plugin: %v", got)
	}
	cfg := containerdConfig("/root", "/state", "/run/c.sock", "/net.d", "/cni")
	for _, want := range []string{`restrict_oom_score_adj = true`, `sandbox_image = "` + PauseImage + `"`, `address = "/run/c.sock"`, `SystemdCgroup = false`} {
		if !strings.Contains(cfg, want) {
			t.Errorf("containerd configuration lacks %s", want)
		}
	}
	for _, m := range strings.Split(coreDNSManifests(map[string]string{"probe.test": "10.244.0.9"}), "\n---\n") {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(m), &obj); err != nil || obj["kind"] == nil {
			t.Errorf("CoreDNS manifest does not parse (%v):\n%s", err, m)
		}
	}
}

func TestCorefileAnswersOnlyTheClusterZone(t *testing.T) {
	got := corefile(map[string]string{"probe.test": "10.244.0.9"})
	if strings.Contains(got, "forward") {
		t.Errorf("the Corefile forwards queries off the machine:\n%s", got)
	}
	for _, want := range []string{"kubernetes cluster.local", "10.244.0.9 probe.test"} {
		if !strings.Contains(got, want) {
			t.Errorf("the Corefile lacks %q:\n%s", want, got)
		}
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{`/a/b`: "/a/b", `/with\040space`: "/with space", `/tab\011x`: "/tab\tx", `/odd\\`: `/odd\\`} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOwnsProcess(t *testing.T) {
	c, err := New(Options{BinDir: "/repo/bin", ImageDir: "/repo/bin/images", StateDir: "/repo/.iss-dev/cluster", RunDir: "/run/iss-cluster"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"/repo/bin/kubelet", "--config", "/repo/.iss-dev/cluster/kubelet-config.yaml"}, true},
		// The local control plane runs the same binaries with envtest's directories.
		{[]string{"/repo/bin/kube-apiserver", "--cert-dir=/tmp/k8s_test_framework_1"}, false},
		{[]string{"/repo/bin/etcd", "--data-dir=/tmp/k8s_test_framework_2"}, false},
		{[]string{"/usr/bin/kubelet", "--config", "x"}, false},
		{[]string{"/usr/bin/containerd", "--config", filepath.Join("/repo/.iss-dev/cluster", "containerd", "config.toml")}, true},
		{[]string{"/usr/bin/containerd"}, false},
		{[]string{"/usr/bin/containerd-shim-runc-v2", "-namespace", "k8s.io", "-address", "/run/iss-cluster/containerd/containerd.sock"}, true},
		{[]string{"/usr/bin/containerd-shim-runc-v2", "-namespace", "k8s.io", "-address", "/run/containerd/containerd.sock"}, false},
		{nil, false},
	} {
		if got := c.ownsProcess(tc.args); got != tc.want {
			t.Errorf("ownsProcess(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}

func TestSplitRule(t *testing.T) {
	line := `-A INPUT -m comment --comment "kube-router netpol - 4IA2OSFRMVNDXBVV" -j KUBE-ROUTER-INPUT`
	got := splitRule(line)
	want := []string{"-A", "INPUT", "-m", "comment", "--comment", "kube-router netpol - 4IA2OSFRMVNDXBVV", "-j", "KUBE-ROUTER-INPUT"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("splitRule = %q, want %q", got, want)
	}
	if !jumpsToClusterChain(got) || jumpsToClusterChain(splitRule(`-A INPUT -j ACCEPT`)) {
		t.Error("jumpsToClusterChain")
	}
	if got := splitRule(`-A X -m comment --comment "a \"q\" b" -j DROP`); got[5] != `a "q" b` {
		t.Errorf("escaped quotes: %q", got)
	}
}

func TestUntemplatedCRD(t *testing.T) {
	const labels = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: issuers.cert-manager.io\n  labels:\n    app: '{{ template \"cert-manager.name\" . }}'\n    # Generated labels {{- include \"labels\" . | nindent 4 }}\nspec:\n  group: cert-manager.io\n"
	for name, tc := range map[string]struct {
		in, want, err string
	}{
		"templated labels are dropped": {in: labels, want: strings.Replace(labels, "    app: '{{ template \"cert-manager.name\" . }}'\n    # Generated labels {{- include \"labels\" . | nindent 4 }}\n", "", 1)},
		"plain labels stay":            {in: strings.Replace(labels, "'{{ template \"cert-manager.name\" . }}'", "cert-manager", 1), want: strings.Replace(strings.Replace(labels, "'{{ template \"cert-manager.name\" . }}'", "cert-manager", 1), "    # Generated labels {{- include \"labels\" . | nindent 4 }}\n", "", 1)},
		"a template in the schema":     {in: labels + "  names: {kind: '{{ .Kind }}'}\n", err: "a template expression outside the labels"},
		"not a CRD":                    {in: "kind: ConfigMap\n", err: "not a CustomResourceDefinition"},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "crd.yaml")
			if err := os.WriteFile(path, []byte(tc.in), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := untemplatedCRD(path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one with %q", err, tc.err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
