package main

// The tests of issctl run its commands in-process through run, as a user would from a shell:
// they pin its exit codes, what it prints (against golden files where the whole output
// matters), and that a policy it prints can be read back.

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/iss-platform/iss-webhook/internal/golden"
	"github.com/iss-platform/iss-webhook/policy"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current output")

func runCheck(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{"check"}, args...), strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestCheckExamplesGolden checks the whole examples directory, as a developer would before a
// push, and compares the report with testdata/check-examples.golden.txt.
func TestCheckExamplesGolden(t *testing.T) {
	code, out, stderr := runCheck(t, "", "-f", "../../manifests/examples", "--user", "alice",
		"--namespace-labels", "iss.platform/app-id=team-a,iss.platform/environment=dev", "--show-patch")
	if code != exitViolation {
		t.Fatalf("exit %d, want %d (the examples include denied ones); stderr: %s", code, exitViolation, stderr)
	}
	checkGolden(t, "check-examples.golden.txt", out)
}

// TestCheckExitCodesAndJSON checks the JSON output of a conforming engine and that every usage
// or parse error exits 2, not 1, so that CI tells a broken invocation from a violation.
func TestCheckExitCodesAndJSON(t *testing.T) {
	pod := `apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Pod
    metadata: {name: engine, namespace: team-a-dev}
    spec:
      containers:
        - {name: dagger-engine, image: registry.dagger.io/engine:v0.19.7}
`
	code, out, _ := runCheck(t, pod, "-f", "-", "-o", "json", "--show-patch")
	if code != exitConform {
		t.Fatalf("exit %d for a conforming engine", code)
	}
	var results []struct {
		Kind    string
		Allowed bool
		Patch   []map[string]any
	}
	if err := json.Unmarshal([]byte(out), &results); err != nil || len(results) != 1 || !results[0].Allowed || len(results[0].Patch) == 0 {
		t.Fatalf("json output %s: %v", out, err)
	}
	for _, tc := range []struct {
		name, stdin string
		args        []string
	}{
		{"no files", "", nil},
		{"unknown output", pod, []string{"-f", "-", "-o", "yaml"}},
		{"malformed YAML", "kind: [", []string{"-f", "-"}},
		{"no kind", "metadata: {name: x}\n", []string{"-f", "-"}},
		{"missing file", "", []string{"-f", "does-not-exist.yaml"}},
		{"bad labels", pod, []string{"-f", "-", "--namespace-labels", "novalue"}},
	} {
		if code, _, _ := runCheck(t, tc.stdin, tc.args...); code != exitUsage {
			t.Errorf("%s: exit %d, want %d", tc.name, code, exitUsage)
		}
	}
}

// runIssctl runs issctl with args and stdin, returning its exit code, stdout and stderr.
func runIssctl(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// checkGolden compares got with the golden file testdata/name, rewriting it first with -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	golden.Check(t, filepath.Join("testdata", name), []byte(got), *update)
}

// writeFile writes content to name in a new temporary directory and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// offProfileEngine is an engine pod whose cpu limit of 8 is off the standard profile's 2.
const offProfileEngine = `apiVersion: v1
kind: Pod
metadata: {name: engine, namespace: team-a-dev}
spec:
  containers:
    - name: dagger-engine
      image: registry.dagger.io/engine:v0.19.7
      resources:
        limits: {cpu: "8"}
`

// conformingEngine is an engine pod the default policy admits, once mutated.
const conformingEngine = `apiVersion: v1
kind: Pod
metadata: {name: engine, namespace: team-a-dev}
spec:
  containers:
    - {name: dagger-engine, image: registry.dagger.io/engine:v0.19.7}
`

// TestPolicyDefaultGolden pins the output of `issctl policy default`, which cluster admins copy
// into their ISSPolicy: a change to the built-in default or its rendering shows up in review as
// a diff of testdata/policy-default.golden.yaml.
func TestPolicyDefaultGolden(t *testing.T) {
	code, out, stderr := runIssctl(t, "", "policy", "default")
	if code != exitConform || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	checkGolden(t, "policy-default.golden.yaml", out)
}

// TestInstallDryRunGolden pins what issctl install applies, in the order it applies it, for
// both certificate modes: namespace and CRDs first, webhook configurations last.
func TestInstallDryRunGolden(t *testing.T) {
	for _, mode := range []string{"cert-manager", "self-signed"} {
		t.Run(mode, func(t *testing.T) {
			code, out, stderr := runIssctl(t, "", "install", "--dry-run", "-o", "yaml", "--cert-mode", mode, "--image", "registry.example.com/iss-webhook:v1.2.3")
			if code != exitConform || stderr != "" {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			checkGolden(t, "install-"+mode+".golden.yaml", out)
			kinds := regexp.MustCompile(`(?m)^kind: (\w+)$`).FindAllStringSubmatch(out, -1)
			if first, last := kinds[0][1], kinds[len(kinds)-1][1]; first != "Namespace" || last != "ValidatingWebhookConfiguration" {
				t.Errorf("applies %s first and %s last", first, last)
			}
		})
	}
}

// TestPolicyDefaultRoundTrip checks that the printed default policy is one that issctl check
// --policy accepts, that it describes exactly the built-in default, and that checks with it
// come out as checks without it.
func TestPolicyDefaultRoundTrip(t *testing.T) {
	code, out, stderr := runIssctl(t, "", "policy", "default")
	if code != exitConform {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	file := writeFile(t, "isspolicy.yaml", out)

	loaded, err := loadPolicyFile(file)
	if err != nil {
		t.Fatalf("the printed default does not load: %v", err)
	}
	again, err := yaml.Marshal(policy.ToISSPolicy(loaded))
	if err != nil {
		t.Fatal(err)
	}
	want, err := yaml.Marshal(policy.ToISSPolicy(policy.Default()))
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(want) {
		t.Errorf("the printed default reads back as another policy:\n%s", again)
	}

	for _, tc := range []struct {
		name, pod string
		want      int
	}{
		{"conforming engine", conformingEngine, exitConform},
		{"off-profile engine", offProfileEngine, exitViolation},
	} {
		withPolicy, outWith, errWith := runCheck(t, tc.pod, "-f", "-", "--policy", file)
		without, outWithout, _ := runCheck(t, tc.pod, "-f", "-")
		if withPolicy != tc.want || without != tc.want {
			t.Errorf("%s: exit %d with the printed default, %d without, want %d; stderr %q", tc.name, withPolicy, without, tc.want, errWith)
		}
		if outWith != outWithout {
			t.Errorf("%s: output with the printed default differs from the built-in one:\n%s\nvs\n%s", tc.name, outWith, outWithout)
		}
	}
}

// TestCheckWithPolicyFile checks check --policy: the file's enforcement modes apply as they would
// in the cluster, and a policy file that is invalid or not an ISSPolicy is a usage error that
// names what is wrong, before any manifest is judged.
func TestCheckWithPolicyFile(t *testing.T) {
	const header = "apiVersion: iss.platform/v1alpha1\nkind: ISSPolicy\nmetadata: {name: default}\n"
	for _, tc := range []struct {
		name string
		// policy is the content of the --policy file; empty runs without --policy.
		policy   string
		pod      string
		wantCode int
		// wantOut are lines stdout must contain; wantNoOut must not be in it.
		wantOut   []string
		wantNoOut string
		// wantErr are substrings stderr must contain.
		wantErr []string
	}{
		{
			name:     "without a policy the off-profile engine is denied",
			pod:      offProfileEngine,
			wantCode: exitViolation,
			wantOut:  []string{"pod/engine (namespace team-a-dev, stdin): denied", "  * spec.containers[0].resources.limits[cpu]: "},
		},
		{
			name:     "engine pods in Warn admit it with a warning",
			policy:   header + "spec:\n  enforcement: {enginePods: Warn}\n",
			pod:      offProfileEngine,
			wantCode: exitConform,
			wantOut: []string{
				"pod/engine (namespace team-a-dev, stdin): admitted with warnings",
				"  Warning: iss-webhook (enginePods: Warn): spec.containers[0].resources.limits[cpu]: ",
			},
		},
		{
			name:     "engine pods in Audit admit it, and offline the violation shows as a warning",
			policy:   header + "spec:\n  enforcement: {enginePods: Audit}\n",
			pod:      offProfileEngine,
			wantCode: exitConform,
			wantOut:  []string{"  Warning: iss-webhook (enginePods: Warn): spec.containers[0].resources.limits[cpu]: "},
		},
		{
			name:     "another group in Warn leaves engine pods enforced",
			policy:   header + "spec:\n  enforcement: {autoscaling: Warn}\n",
			pod:      offProfileEngine,
			wantCode: exitViolation,
			wantOut:  []string{"denied"},
		},
		{
			name: "invalid fields are all named",
			policy: header + "spec:\n  enforcement: {enginePods: Maybe}\n  temporalWorkers: {selector: {}}\n" +
				"  engines:\n    profiles:\n      - name: standard\n        requests: {cpu: \"4\", memory: 1Gi, ephemeral-storage: 10Gi}\n        limits: {cpu: \"2\", memory: 4Gi, ephemeral-storage: 10Gi}\n",
			pod:      conformingEngine,
			wantCode: exitUsage,
			wantErr:  []string{"--policy", "spec.enforcement.enginePods", "spec.temporalWorkers.selector", "spec.engines.profiles[0].requests.cpu"},
		},
		{
			name:     "unknown fields are refused",
			policy:   header + "spec:\n  enforcment: {enginePods: Warn}\n",
			pod:      conformingEngine,
			wantCode: exitUsage,
			wantErr:  []string{"enforcment"},
		},
		{
			name:     "another kind",
			policy:   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: default}\n",
			pod:      conformingEngine,
			wantCode: exitUsage,
			wantErr:  []string{"want kind ISSPolicy of iss.platform/v1alpha1, got ConfigMap of v1"},
		},
		{
			name:     "another version",
			policy:   "apiVersion: iss.platform/v1\nkind: ISSPolicy\nmetadata: {name: default}\n",
			pod:      conformingEngine,
			wantCode: exitUsage,
			wantErr:  []string{"want kind ISSPolicy of iss.platform/v1alpha1, got ISSPolicy of iss.platform/v1"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"-f", "-"}
			if tc.policy != "" {
				args = append(args, "--policy", writeFile(t, "isspolicy.yaml", tc.policy))
			}
			code, out, stderr := runCheck(t, tc.pod, args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stdout %q, stderr %q", code, tc.wantCode, out, stderr)
			}
			for _, want := range tc.wantOut {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
			if tc.wantNoOut != "" && strings.Contains(out, tc.wantNoOut) {
				t.Errorf("stdout has %q:\n%s", tc.wantNoOut, out)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q: %s", want, stderr)
				}
			}
			if tc.wantCode == exitUsage && out != "" {
				t.Errorf("a usage error printed results: %s", out)
			}
		})
	}

	t.Run("missing policy file", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "missing.yaml")
		if code, _, stderr := runCheck(t, conformingEngine, "-f", "-", "--policy", missing); code != exitUsage || !strings.Contains(stderr, "missing.yaml") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
}

// TestUsageExitCodes checks that a wrong invocation of issctl or of its policy and audit
// commands exits 2 with a message on stderr, and that help exits 0. The audit cases fail on
// their flags, before any cluster is contacted; KUBECONFIG points nowhere in case they did not.
func TestUsageExitCodes(t *testing.T) {
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "no-such-kubeconfig"))
	for _, tc := range []struct {
		name string
		args []string
		want int
		// wantErr is in stderr when the exit code is not 0.
		wantErr string
	}{
		{"no command", nil, exitUsage, ""},
		{"unknown command", []string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{"help", []string{"--help"}, exitConform, ""},
		{"policy without subcommand", []string{"policy"}, exitUsage, "Usage: issctl policy default"},
		{"policy with an unknown subcommand", []string{"policy", "strict"}, exitUsage, "Usage: issctl policy default"},
		{"policy default with extra arguments", []string{"policy", "default", "extra"}, exitUsage, "Usage: issctl policy default"},
		{"policy help", []string{"policy", "--help"}, exitConform, ""},
		{"audit with an unknown flag", []string{"audit", "--namespace", "team-a-dev"}, exitUsage, "flag provided but not defined: -namespace"},
		{"audit with another output format", []string{"audit", "-o", "yaml"}, exitUsage, "-o other than text or json"},
		{"audit with arguments", []string{"audit", "pods"}, exitUsage, "unexpected arguments"},
		{"audit help", []string{"audit", "--help"}, exitConform, ""},
		{"install with an unknown mode", []string{"install", "--cert-mode", "vault", "--dry-run", "-o", "yaml"}, exitUsage, `unknown certificate mode "vault"`},
		{"install dry run without -o yaml", []string{"install", "--dry-run"}, exitUsage, "--dry-run goes with -o yaml"},
		{"install with a bad image", []string{"install", "--image", "a b", "--dry-run", "-o", "yaml"}, exitUsage, "not an image reference"},
		{"install without a cluster", []string{"install"}, exitUsage, "kubeconfig"},
		{"uninstall with arguments", []string{"uninstall", "now"}, exitUsage, "unexpected arguments"},
		{"install help", []string{"install", "--help"}, exitConform, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := runIssctl(t, "", tc.args...)
			if code != tc.want {
				t.Fatalf("exit %d, want %d; stdout %q, stderr %q", code, tc.want, out, stderr)
			}
			if tc.wantErr != "" && !strings.Contains(stderr, tc.wantErr) {
				t.Errorf("stderr %q lacks %q", stderr, tc.wantErr)
			}
		})
	}
}
