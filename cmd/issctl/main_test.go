package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	golden := filepath.Join("testdata", "check-examples.golden.txt")
	if *update {
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/issctl -update)", err)
	}
	if out != string(want) {
		t.Errorf("output differs from %s (run go test ./cmd/issctl -update if intended):\n%s", golden, out)
	}
}

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
