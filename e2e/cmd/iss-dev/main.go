// Command iss-dev is `make run`: it brings up a local control plane with iss-webhook registered,
// applies the examples of manifests/examples with kubectl and prints each outcome, then stays in
// the foreground until Ctrl-C, when it stops everything it started.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/iss-platform/iss-webhook/e2e/devenv"
)

func main() {
	root := flag.String("repo", ".", "root of the iss-webhook checkout (bin/ and manifests/ are found under it)")
	state := flag.String("state-dir", ".iss-dev", "directory for the admin kubeconfig and the webhook log")
	bao := &devenv.OpenBao{}
	flag.StringVar(&bao.Address, "openbao-addr", "", "turn the OpenBao existence check on against the OpenBao at this URL (make run OPENBAO_ADDR=...)")
	flag.StringVar(&bao.AuthMethod, "openbao-auth", "token", "with --openbao-addr: the auth method, token or kubernetes (OPENBAO_AUTH)")
	flag.StringVar(&bao.TokenFile, "openbao-token-file", "", "with --openbao-auth token: the file of the webhook's token (OPENBAO_TOKEN_FILE)")
	flag.StringVar(&bao.ServiceAccountTokenFile, "openbao-jwt-file", "", "with --openbao-auth kubernetes: a service account token that OpenBao's Kubernetes auth method accepts (OPENBAO_JWT_FILE)")
	flag.StringVar(&bao.KubernetesMount, "openbao-kubernetes-mount", "", "with --openbao-auth kubernetes: the method's mount, default kubernetes (OPENBAO_KUBERNETES_MOUNT)")
	flag.StringVar(&bao.Role, "openbao-role", "", "with --openbao-auth kubernetes: the method's role, default iss-webhook (OPENBAO_ROLE)")
	flag.StringVar(&bao.CACertFile, "openbao-ca-file", "", "PEM certificates that verify OpenBao's serving certificate (OPENBAO_CACERT)")
	flag.StringVar(&bao.KVMount, "openbao-kv-mount", "", "the KV v2 mount of every environment instead of kv-dev, kv-staging and kv-prod, such as secret on a dev server (OPENBAO_KV_MOUNT)")
	flag.Parse()
	if bao.Address == "" {
		bao = nil
	}
	if err := run(*root, *state, bao); err != nil {
		fmt.Fprintln(os.Stderr, "iss-dev:", err)
		os.Exit(1)
	}
}

func run(root, state string, bao *devenv.OpenBao) error {
	root, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	state, err = filepath.Abs(state)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	opts := devenv.DefaultOptions(root, state, os.Stdout)
	opts.OpenBao = bao
	env, err := devenv.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("iss-dev: stopping the webhook and the control plane")
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "iss-dev:", err)
		}
	}()

	examplesDir := filepath.Join(root, "manifests", "examples")
	surprises, err := applyExamples(ctx, env.Kubeconfig, examplesDir)
	if err != nil {
		return err
	}
	if out, _, err := devenv.Kubectl(ctx, env.Kubeconfig, nil, "get", "networkpolicies,ciliumnetworkpolicies,clusternetworkpolicies",
		"--all-namespaces", "-l", "app.kubernetes.io/managed-by=iss-webhook"); err == nil {
		fmt.Printf("\niss-dev: egress policies the webhook generated for the engines:\n%s", out)
	}
	rel, _ := filepath.Rel(mustGetwd(), env.Kubeconfig)
	fmt.Printf(`
iss-webhook is running against a local control plane (no nodes: pods are admitted and stay Pending).

  export KUBECONFIG=%s
  kubectl get pods -n team-a-dev
  kubectl get pod dagger-engine-standard -n team-a-dev -o jsonpath='{.spec.containers[0].resources}'
  kubectl apply -f %s/03-engine-off-profile.yaml            # denied, with every violation
  kubectl apply --dry-run=server -o yaml -f my-engine.yaml  # see what the webhook would change
  kubectl get networkpolicies,ciliumnetworkpolicies -n team-a-dev -o yaml  # generated egress policies
  bin/issctl policy default > policy.yaml   # the built-in policy; edit it, then:
  kubectl apply -f policy.yaml && kubectl get isspolicy    # applies to the next review, no restart
  bin/issctl audit --write-reports          # what already runs that violates the policy in force

Example namespaces: team-a-dev, team-a-prod, team-b-staging (labelled with iss.platform/app-id and
iss.platform/environment). The ordinary users alice and bob may edit in team-a-dev and team-a-prod:
  kubectl --as=alice label pod dagger-engine-standard -n team-a-dev iss.platform/egress-policy=open --overwrite   # denied
Webhook log: %s

Press Ctrl-C to stop.
`, rel, examplesDir, env.WebhookLog)
	if bao != nil {
		fmt.Printf("The OpenBao existence check reads %s (ISSPolicy default, spec.openbao): ExternalSecrets whose paths it cannot find there are denied, the examples among them, and so is every one while it cannot answer (kubectl get isspolicy default -o yaml; the webhook log says why).\n\n", bao.Address)
	}
	if surprises > 0 {
		fmt.Printf("WARNING: %d example(s) did not behave as their header says; see above.\n", surprises)
	}
	<-ctx.Done()
	return nil
}

// applyExamples applies each example with kubectl, prints its outcome and returns how many did
// not behave as their "# expect:" header says.
func applyExamples(ctx context.Context, kubeconfig, dir string) (int, error) {
	examples, err := devenv.Examples(dir)
	if err != nil {
		return 0, err
	}
	fmt.Printf("iss-dev: applying %d examples from %s\n", len(examples), dir)
	surprises := 0
	for _, ex := range examples {
		stdout, stderr, err := devenv.Kubectl(ctx, kubeconfig, nil, "apply", "-f", ex.Path)
		admitted := err == nil
		outcome := "admitted"
		detail := strings.TrimSpace(stdout)
		if !admitted {
			outcome = "denied"
			detail = strings.TrimSpace(stderr)
		}
		mark := "ok"
		if admitted != ex.WantAdmitted {
			mark = "UNEXPECTED"
			surprises++
		}
		fmt.Printf("\n[%s] %s: %s\n  %s\n", mark, filepath.Base(ex.Path), outcome, strings.ReplaceAll(detail, "\n", "\n  "))
	}
	return surprises, nil
}

func mustGetwd() string {
	wd, err := os.Getwd()
	if err != nil {
		return "/"
	}
	return wd
}
