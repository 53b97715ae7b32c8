package suiterun

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakes puts shell scripts named after commands first on PATH and returns a Target whose output
// goes to out, and the file the scripts log their command lines to (as "name args...").
func fakes(t *testing.T, scripts map[string]string) (target *Target, out *bytes.Buffer, log string) {
	t.Helper()
	dir := t.TempDir()
	log = filepath.Join(dir, "log")
	for name, script := range scripts {
		body := "#!/bin/sh\necho \"" + name + " $*\" >> \"$FAKE_LOG\"\n" + script + "\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("FAKE_LOG", log)
	t.Setenv("FAKE_STATE", dir)
	out = &bytes.Buffer{}
	target = &Target{
		Name: "the test cluster", Repo: dir, Kubeconfig: filepath.Join(dir, "admin.kubeconfig"),
		Issctl: filepath.Join(dir, "issctl"), Out: out, ErrOut: out, Prefix: "p: ",
	}
	return target, out, log
}

// logged returns the command lines the fakes logged.
func logged(t *testing.T, log string) []string {
	t.Helper()
	data, err := os.ReadFile(log)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// fakeKubectl is a kubectl that fails unless it is given the Target's kubeconfig, finds the
// webhook's Deployment when FAKE_DEPLOYED is set, and prints a log line for `kubectl logs`.
const fakeKubectl = `[ "$KUBECONFIG" = "$FAKE_STATE/admin.kubeconfig" ] || { echo "wrong kubeconfig $KUBECONFIG" >&2; exit 1; }
case "$1 $2" in
"get deployment") [ -n "$FAKE_DEPLOYED" ] || { echo 'Error from server (NotFound): deployments.apps "iss-webhook" not found' >&2; exit 1; } ;;
"logs -n") echo "[pod/iss-webhook-1/webhook] started" ;;
"get pods") echo "NAME READY" ;;
"get events") echo "No resources found in iss-system namespace." ;;
"create --dry-run=server") cat >/dev/null; echo "$FAKE_POD" ;;
esac`

func TestStep(t *testing.T) {
	var out bytes.Buffer
	(&Target{Out: &out, Prefix: "e2e-x: "}).Step("installing %d CRD manifests", 3)
	if got, want := out.String(), "e2e-x: installing 3 CRD manifests\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestKubectl(t *testing.T) {
	target, _, log := fakes(t, map[string]string{"kubectl": fakeKubectl})
	ctx := context.Background()
	out, err := target.Kubectl(ctx, "", "logs", "-n", WebhookNamespace)
	if err != nil || out != "[pod/iss-webhook-1/webhook] started\n" {
		t.Errorf("got %q, %v", out, err)
	}
	_, err = target.Kubectl(ctx, "", "get", "deployment", WebhookDeployment)
	if err == nil || !strings.Contains(err.Error(), `kubectl get deployment iss-webhook: exit status 1: Error from server (NotFound)`) {
		t.Errorf("got %v, want kubectl's command line and standard error", err)
	}
	if got := logged(t, log); len(got) != 2 {
		t.Errorf("kubectl ran %q", got)
	}
}

func TestStream(t *testing.T) {
	target, out, _ := fakes(t, nil)
	if err := target.Stream(context.Background(), []string{"SUITERUN_X=1"}, "sh", "-c", `pwd; echo "x=$SUITERUN_X"; echo oops >&2`); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), target.Repo+"\nx=1\noops\n"; got != want {
		t.Errorf("got %q, want %q: it runs in the checkout with env added, its output shown", got, want)
	}

	// The command gets the interrupt when ctx ends, and stops.
	out.Reset()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := target.Stream(ctx, nil, "sh", "-c", `trap 'echo interrupted; exit 3' INT; while :; do sleep 0.1; done`)
	if err == nil || time.Since(start) > 10*time.Second || !strings.Contains(out.String(), "interrupted") {
		t.Errorf("got %v after %s, output %q", err, time.Since(start), out.String())
	}
}

func TestPrefixWriter(t *testing.T) {
	var b bytes.Buffer
	w := &PrefixWriter{W: &b, Prefix: "p: "}
	for _, s := range []string{"one\ntw", "o\n", "three\nfour\n"} {
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := b.String(), "p: one\np: two\np: three\np: four\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestFirstAndLastLine(t *testing.T) {
	for _, c := range []struct{ in, first, last string }{
		{"", "", ""},
		{"one\n", "one", "one"},
		{"\n applied x\n  why  \n\n", "applied x", "why"},
		{"waiting\nissctl install: e", "waiting", "issctl install: e"},
	} {
		if got := FirstLine(c.in); got != c.first {
			t.Errorf("FirstLine(%q) = %q, want %q", c.in, got, c.first)
		}
		if got := LastLine(c.in); got != c.last {
			t.Errorf("LastLine(%q) = %q, want %q", c.in, got, c.last)
		}
	}
}

func TestRunSuite(t *testing.T) {
	const suiteLine = "go test -count=1 -v -timeout 30m0s ./e2e/ -ginkgo.v -ginkgo.focus=Egress"
	for _, c := range []struct {
		name            string
		goExit, showLog string
		wantErr         bool
		wantLog         bool
	}{
		{name: "passes", goExit: "0"},
		{name: "passes, log asked for", goExit: "0", showLog: "1", wantLog: true},
		{name: "fails", goExit: "1", wantErr: true, wantLog: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			target, out, log := fakes(t, map[string]string{
				"kubectl": fakeKubectl,
				"go":      `echo "ISS_E2E_KUBECONFIG=$ISS_E2E_KUBECONFIG EXTRA=$EXTRA"; exit $FAKE_GO_EXIT`,
			})
			t.Setenv("FAKE_GO_EXIT", c.goExit)
			t.Setenv("ISS_E2E_SHOW_LOG", c.showLog)
			err := target.RunSuite(context.Background(), 30*time.Minute, []string{"EXTRA=e"}, []string{"-ginkgo.focus=Egress"})
			var suiteErr *SuiteError
			if c.wantErr != (err != nil) || (err != nil && (!errors.As(err, &suiteErr) || !strings.Contains(err.Error(), "the end-to-end suite failed on the test cluster"))) {
				t.Errorf("got %v", err)
			}
			wantCalls := []string{suiteLine}
			if c.wantLog {
				wantCalls = append(wantCalls, "kubectl logs -n iss-system -l app.kubernetes.io/name=iss-webhook --all-containers --prefix --tail=-1")
			}
			if got := logged(t, log); !slices.Equal(got, wantCalls) {
				t.Errorf("ran %q, want %q", got, wantCalls)
			}
			if !strings.Contains(out.String(), "ISS_E2E_KUBECONFIG="+target.Kubeconfig+" EXTRA=e\n") {
				t.Errorf("the suite ran without its environment: %q", out.String())
			}
			if got := strings.Contains(out.String(), "p: iss-webhook log:\n[pod/iss-webhook-1/webhook] started\n"); got != c.wantLog {
				t.Errorf("webhook log printed: %v, want %v: %q", got, c.wantLog, out.String())
			}
			if got := strings.Contains(out.String(), "p: the end-to-end suite passed on the test cluster\n"); got == c.wantErr {
				t.Errorf("passed line printed: %v: %q", got, out.String())
			}
		})
	}
}

func TestDiagnose(t *testing.T) {
	target, out, log := fakes(t, map[string]string{"kubectl": fakeKubectl})
	target.Diagnose(context.Background())
	want := `p: the cluster at the time of the failure:
$ kubectl get pods --all-namespaces -o wide
NAME READY

$ kubectl get events -n iss-system --sort-by=.lastTimestamp
No resources found in iss-system namespace.

p: iss-webhook log:
[pod/iss-webhook-1/webhook] started

`
	if got := out.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got := logged(t, log); len(got) != 3 {
		t.Errorf("kubectl ran %q", got)
	}
}
