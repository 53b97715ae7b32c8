// Package suiterun runs the end-to-end suite of e2e/ on a cluster where iss-webhook is installed
// by issctl, as a cluster admin would install it. It holds the steps that do not depend on how
// the cluster was made: the CRDs, issctl install, the example namespaces and developers, the
// check that the mutating webhook answers, the suite itself and what is printed when it fails.
// The commands under e2e/cmd that make a cluster (iss-kind) call them in that order.
package suiterun

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/iss-platform/iss-webhook/e2e/devenv"
)

// Where issctl install puts the webhook; the same names as in manifests/.
const (
	// WebhookNamespace is the namespace of the webhook's Deployment.
	WebhookNamespace = "iss-system"
	// WebhookDeployment is the name of the webhook's Deployment.
	WebhookDeployment = "iss-webhook"
	// WebhookSelector selects the webhook's pods.
	WebhookSelector = "app.kubernetes.io/name=iss-webhook"
)

// Target is a cluster the suite runs on, with iss-webhook installed by issctl.
type Target struct {
	// Name is how progress lines and errors name the cluster, e.g. "the kind cluster iss-e2e".
	Name string
	// Repo is the root of the checkout; commands run there.
	Repo string
	// Kubeconfig is the cluster admin's, in the group system:masters that the ISSPolicy trusts
	// by default: kubectl, PrepareCluster and the suite use it.
	Kubeconfig string
	// Issctl is the path of bin/issctl.
	Issctl string
	// Out and ErrOut receive the progress lines and the output of the commands run.
	Out, ErrOut io.Writer
	// Prefix starts every progress line, e.g. "e2e-kind: ".
	Prefix string
}

// Step prints a progress line.
func (t *Target) Step(format string, args ...any) {
	fmt.Fprintf(t.Out, t.Prefix+format+"\n", args...)
}

// Kubectl runs kubectl as the cluster admin with stdin ("" for none) and returns its standard
// output; the error carries its standard error.
func (t *Target) Kubectl(ctx context.Context, stdin string, args ...string) (string, error) {
	var in io.Reader
	if stdin != "" {
		in = strings.NewReader(stdin)
	}
	stdout, stderr, err := devenv.Kubectl(ctx, t.Kubeconfig, in, args...)
	if err != nil {
		return stdout, fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr))
	}
	return stdout, nil
}

// Stream runs a command in the checkout, with env added to the environment and its output shown
// as it comes. When ctx ends the command gets the interrupt first, so that go test and docker
// stop cleanly.
func (t *Target) Stream(ctx context.Context, env []string, name string, args ...string) error {
	cmd := t.command(ctx, env, name, args...)
	cmd.Stdout, cmd.Stderr = t.Out, t.ErrOut
	return cmd.Run()
}

// command returns a command that runs in the checkout with env added to the environment and
// gets the interrupt when ctx ends, and is killed 30 seconds later if it has not stopped.
func (t *Target) command(ctx context.Context, env []string, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = t.Repo
	cmd.Env = append(os.Environ(), env...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	return cmd
}

// PrefixWriter writes each line with a prefix, also when a line comes in several writes.
type PrefixWriter struct {
	// W receives the prefixed lines.
	W io.Writer
	// Prefix starts every line.
	Prefix string
	// Lock, when set, is held while writing to W: PrefixWriters that share W and are written
	// from different goroutines (a command's standard output and error) share a Lock, since W,
	// a buffer say, may not be safe for concurrent writes.
	Lock sync.Locker
	// midLine is set while the last write ended without a newline.
	midLine bool
}

// Write writes b to W with Prefix before each line that b starts.
func (p *PrefixWriter) Write(b []byte) (int, error) {
	n := len(b)
	var buf bytes.Buffer
	for len(b) > 0 {
		if !p.midLine {
			buf.WriteString(p.Prefix)
		}
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			buf.Write(b)
			p.midLine = true
			break
		}
		buf.Write(b[:i+1])
		b = b[i+1:]
		p.midLine = false
	}
	if p.Lock != nil {
		p.Lock.Lock()
		defer p.Lock.Unlock()
	}
	if _, err := p.W.Write(buf.Bytes()); err != nil {
		return 0, err
	}
	return n, nil
}

// FirstLine returns the first line of s, without the white space around s.
func FirstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// LastLine returns the last line of s that is not blank, without white space around it: where a
// command says why it failed.
func LastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return strings.TrimSpace(s[i+1:])
	}
	return s
}
