package suiterun

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/iss-platform/iss-webhook/policy"
)

// applyFailed is how issctl install says that an apply failed while cert-manager's webhook starts.
const applyFailed = `issctl install: applying Certificate iss-system/iss-webhook: Internal error occurred: failed calling webhook "webhook.cert-manager.io": connection refused`

func TestRetryInstall(t *testing.T) {
	ctx := context.Background()
	const waitFailed = "issctl install: gave up waiting for deployment iss-system/iss-webhook: 0 of 2 replicas updated, 0 available"
	exit := errors.New("exit status 2")
	var progress []string
	record := func(format string, args ...any) { progress = append(progress, fmt.Sprintf(format, args...)) }

	// cert-manager's webhook answers at the third run.
	calls := 0
	err := retryInstall(ctx, time.Minute, time.Millisecond, func() (string, error) {
		if calls++; calls < 3 {
			return applyFailed, exit
		}
		return "", nil
	}, record)
	if err != nil || calls != 3 || len(progress) != 2 || !strings.HasPrefix(progress[0], applyFailed+";") {
		t.Errorf("got %v after %d runs, progress %q", err, calls, progress)
	}

	// A failed wait had its whole timeout: no second run.
	calls, progress = 0, nil
	err = retryInstall(ctx, time.Minute, time.Millisecond, func() (string, error) { calls++; return waitFailed, exit }, record)
	if err == nil || !errors.Is(err, exit) || !strings.Contains(err.Error(), waitFailed) || calls != 1 || len(progress) != 0 {
		t.Errorf("got %v after %d runs, progress %q", err, calls, progress)
	}

	// An apply that keeps failing: runs until the timeout, then its reason.
	calls = 0
	err = retryInstall(ctx, 50*time.Millisecond, 10*time.Millisecond, func() (string, error) { calls++; return applyFailed, exit }, record)
	if err == nil || !strings.Contains(err.Error(), applyFailed) || !strings.Contains(err.Error(), "still failing after 50ms") || calls < 2 {
		t.Errorf("got %v after %d runs", err, calls)
	}

	// Interrupted: no further run.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	calls = 0
	err = retryInstall(cancelled, time.Minute, time.Millisecond, func() (string, error) { calls++; return applyFailed, exit }, record)
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Errorf("got %v after %d runs", err, calls)
	}
}

// TestIssctlFailures runs the issctl of the checkout against a cluster that refuses connections:
// its failures must be told apart as retryInstall expects, from the last line of its standard
// error that issctlInstall returns.
func TestIssctlFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("builds issctl")
	}
	dir := t.TempDir()
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	target := &Target{Repo: repo, Issctl: filepath.Join(dir, "issctl"), Out: &out, ErrOut: &out, Prefix: "p: "}
	if err := target.BuildIssctl(context.Background()); err != nil {
		t.Fatal(err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["down"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:1"}
	kc.AuthInfos["down"] = &clientcmdapi.AuthInfo{Token: "t"}
	kc.Contexts["down"] = &clientcmdapi.Context{Cluster: "down", AuthInfo: "down"}
	kc.CurrentContext = "down"
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		certMode  string
		retryable bool
	}{
		// The self-signed mode applies without looking for cert-manager first.
		{"an apply that fails is retried", "self-signed", true},
		// The cert-manager mode looks for cert-manager's CRDs before it applies anything.
		{"a failure before any apply is not retried", "cert-manager", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			out.Reset()
			reason, err := target.issctlInstall(context.Background(), []string{"install", "--kubeconfig", kubeconfig, "--cert-mode", c.certMode, "--timeout", "20s"})
			if err == nil || reason == "" || retryableInstall(reason) != c.retryable {
				t.Errorf("got %v, %q; want a failure that retryInstall retries: %v", err, reason, c.retryable)
			}
			if !strings.Contains(out.String(), "p: "+reason+"\n") {
				t.Errorf("issctl's standard error is not shown with the prefix: %q", out.String())
			}
		})
	}
}

func TestInstallWebhook(t *testing.T) {
	const (
		get     = "kubectl get deployment iss-webhook -n iss-system -o name"
		install = "issctl install --kubeconfig k --cert-mode self-signed"
	)
	// fakeIssctl fails its first run in an apply, as while cert-manager's webhook starts.
	fakeIssctl := `n=$(cat "$FAKE_STATE/runs" 2>/dev/null || echo 0); echo $((n+1)) > "$FAKE_STATE/runs"
echo "applying the install"
[ "$n" -gt 0 ] || { echo '` + applyFailed + `' >&2; exit 2; }`
	for _, c := range []struct {
		name     string
		deployed string
		want     []string
	}{
		{"a fresh cluster", "", []string{get, install, install}},
		{"installed before: restarted", "1", []string{get, install, install,
			"kubectl rollout restart deployment/iss-webhook -n iss-system",
			"kubectl rollout status deployment/iss-webhook -n iss-system --timeout=5m",
			"kubectl wait --for=condition=Available --timeout=1m deployment/iss-webhook -n iss-system",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			target, out, log := fakes(t, map[string]string{"kubectl": fakeKubectl, "issctl": fakeIssctl})
			t.Setenv("FAKE_DEPLOYED", c.deployed)
			if err := target.InstallWebhook(context.Background(), strings.Fields(install)[1:], time.Minute, time.Millisecond); err != nil {
				t.Fatal(err)
			}
			if got := logged(t, log); !slices.Equal(got, c.want) {
				t.Errorf("ran %q, want %q", got, c.want)
			}
			for _, want := range []string{
				"p: installing iss-webhook: " + target.Issctl + " install --kubeconfig k --cert-mode self-signed\n",
				"p: applying the install\n",
				"p: " + applyFailed + "\n",
				"p: " + applyFailed + "; cert-manager's webhook may still be starting: running issctl install again in 1ms\n",
				"p: iss-webhook is ready\n",
			} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("no %q in %q", want, out.String())
				}
			}
		})
	}
}

func TestCheckEngineMutation(t *testing.T) {
	for _, c := range []struct {
		name, pod string
		wantErr   string
	}{
		{"mutated", fmt.Sprintf(`{"kind":"Pod","metadata":{"labels":{%q:"default"}}}`, policy.LabelEgressPolicy), ""},
		{"not mutated", `{"kind":"Pod","metadata":{}}`, "the mutating webhook did not run"},
		{"no JSON", `Error`, "dry run of an engine pod"},
	} {
		t.Run(c.name, func(t *testing.T) {
			target, _, log := fakes(t, map[string]string{"kubectl": fakeKubectl})
			t.Setenv("FAKE_POD", c.pod)
			err := target.checkEngineMutation(context.Background(), "team-a-dev")
			if (c.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.wantErr)) {
				t.Errorf("got %v, want %q", err, c.wantErr)
			}
			if got := logged(t, log); !slices.Equal(got, []string{"kubectl create --dry-run=server -o json -f -"}) {
				t.Errorf("ran %q", got)
			}
		})
	}
}
