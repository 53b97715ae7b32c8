// Command iss-cluster is `make cluster` and `make e2e-cluster`: it brings up the real
// single-node cluster of package cluster on this machine (no Docker), and either keeps it in the
// foreground until Ctrl-C, or installs iss-webhook on it from its image and runs the
// end-to-end suite against it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/iss-platform/iss-webhook/e2e/cluster"
	"github.com/iss-platform/iss-webhook/e2e/devenv"
)

const usageText = `Usage: iss-cluster [flags] up|e2e|clean [-- extra go test arguments]

  up     brings the single-node cluster up, with cert-manager, prints its kubeconfig, and stays
         in the foreground; Ctrl-C stops it and undoes what it changed on the host
  e2e    brings it up, installs iss-webhook from its image with issctl install (self-signed
         certificate mode, 2 replicas), runs the end-to-end suite against it, installs it again
         in the cert-manager mode and runs the specs labelled cert-mode, and stops it; on a
         machine that cannot run the cluster (not root, no writable cgroups) it says why and
         exits 0
  clean  undoes what a killed run left on the host (processes, mounts, network namespaces,
         bridges, iptables rules, cgroups, sysctls)

It needs root and changes the host's networking while it runs (bridges iss-node and iss0,
iptables rules, sysctls such as net.ipv4.ip_forward).

Flags:
`

func main() {
	flags := flag.NewFlagSet("iss-cluster", flag.ExitOnError)
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), usageText)
		flags.PrintDefaults()
	}
	repo := flags.String("repo", ".", "root of the iss-webhook checkout (bin/ and .iss-dev/ are under it)")
	stateDir := flags.String("state-dir", "", "the cluster's files (default REPO/.iss-dev/cluster)")
	runDir := flags.String("run-dir", "/run/iss-cluster", "the cluster's sockets and containerd's state, on a tmpfs")
	timeout := flags.Duration("timeout", cluster.DefaultTimeout, "how long each wait lasts (a component to answer, the node to be Ready, DNS, the webhook)")
	skipBuild := flags.Bool("skip-build", false, "use the binaries and images in bin/ as they are, without running build.sh and iss-image first")
	keep := flags.Bool("keep", os.Getenv("ISS_CLUSTER_KEEP") == "1", "e2e: keep the cluster running after the suite, until Ctrl-C")
	_ = flags.Parse(os.Args[1:])
	args := flags.Args()
	if len(args) == 0 {
		flags.Usage()
		os.Exit(2)
	}
	mode, testArgs := args[0], args[1:]
	if len(testArgs) > 0 && testArgs[0] == "--" {
		testArgs = testArgs[1:]
	}
	root, err := filepath.Abs(*repo)
	if err != nil {
		fatal(err)
	}
	if *stateDir == "" {
		*stateDir = filepath.Join(root, ".iss-dev", "cluster")
	}
	c, err := cluster.New(cluster.Options{
		BinDir: filepath.Join(root, "bin"), ImageDir: filepath.Join(root, "bin", "images"),
		StateDir: *stateDir, RunDir: *runDir, Progress: os.Stdout, Timeout: *timeout,
	})
	if err != nil {
		fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if mode == "up" || mode == "e2e" {
		err := c.Preflight(ctx)
		if err == nil {
			err = c.Lock()
		}
		if err != nil {
			var unsupported *cluster.UnsupportedError
			if mode == "e2e" && errors.As(err, &unsupported) {
				fmt.Println(progressPrefix + "skipped: " + unsupported.Reason)
				return
			}
			fatal(err)
		}
		if !*skipBuild {
			if err := buildParts(ctx, root, os.Stdout, os.Stderr); err != nil {
				fatal(err)
			}
		}
	}
	if mode == "up" || mode == "e2e" {
		if c.CertManagerCRDs, err = certManagerCRDs(ctx, root); err != nil {
			fatal(err)
		}
	}
	switch mode {
	case "up":
		err = up(ctx, c, os.Stdout)
	case "e2e":
		err = runE2E(ctx, c, e2eRun{repo: root, keep: *keep, testArgs: testArgs, out: os.Stdout, errOut: os.Stderr})
	case "clean":
		if err = c.Lock(); err == nil {
			err = c.CleanUp(ctx)
		}
	default:
		flags.Usage()
		os.Exit(2)
	}
	if err != nil {
		fatal(err)
	}
}

// buildParts builds what the cluster runs: the components' binaries from their pinned modules
// (e2e/tools/build.sh, which rebuilds only when the pins change) and the images (iss-image).
func buildParts(ctx context.Context, root string, out, errOut io.Writer) error {
	for _, cmdline := range [][]string{
		{"bash", filepath.Join(root, "e2e", "tools", "build.sh"), filepath.Join(root, "bin"), "cluster"},
		{"go", "run", "./e2e/cmd/iss-image", "--repo", root, "--out", filepath.Join(root, "bin", "images"), "--coredns", filepath.Join(root, "bin", "coredns")},
	} {
		cmd := exec.CommandContext(ctx, cmdline[0], cmdline[1:]...)
		cmd.Dir, cmd.Stdout, cmd.Stderr = root, out, errOut
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w", strings.Join(cmdline, " "), err)
		}
	}
	return nil
}

// certManagerCRDs returns the CRD manifests of the cert-manager module that
// e2e/tools/cert-manager pins, whose controllers build.sh builds.
func certManagerCRDs(ctx context.Context, root string) ([]string, error) {
	dir := filepath.Join(root, "e2e", "tools", "cert-manager")
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}}", certManagerModule)
	cmd.Dir = dir
	version, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("the version of %s in %s: %w", certManagerModule, dir, err)
	}
	src := devenv.CRDSource{Module: certManagerModule, Version: strings.TrimSpace(string(version)), Files: []string{"deploy/crds/crd-*.yaml"}}
	return src.Paths(ctx, dir)
}

// up brings the cluster up and keeps it until the context ends.
func up(ctx context.Context, c *cluster.Cluster, out io.Writer) error {
	if err := c.Start(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, `
The cluster is up. In another terminal:

  export KUBECONFIG=%s
  kubectl get nodes
  kubectl get pods -A

Images: every bin/images/*.tar was imported (make image rebuilds them; pods use them with
imagePullPolicy: Never). Logs of each component: %s. Ctrl-C stops the cluster.
`, c.Kubeconfig, c.LogDir())
	<-ctx.Done()
	return c.Stop()
}

func fatal(err error) {
	var unsupported *cluster.UnsupportedError
	if errors.As(err, &unsupported) {
		fmt.Fprintln(os.Stderr, "iss-cluster: "+err.Error())
		os.Exit(3)
	}
	fmt.Fprintln(os.Stderr, "iss-cluster: "+err.Error())
	os.Exit(1)
}
