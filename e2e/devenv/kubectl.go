package devenv

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Kubectl runs kubectl with the given kubeconfig and standard input (nil for none), as a user
// would, and returns what it printed.
func Kubectl(ctx context.Context, kubeconfig string, stdin io.Reader, args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, "kubectl", args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// Example is a manifest of manifests/examples and the outcome its header promises.
type Example struct {
	// Path is the manifest file.
	Path string
	// WantAdmitted is true for "# expect: admitted" and false for "# expect: denied".
	WantAdmitted bool
}

// Examples lists the example manifests in dir, in file name order. Each must start with a
// comment line "# expect: admitted" or "# expect: denied".
func Examples(dir string) ([]Example, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	examples := make([]Example, 0, len(paths))
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		first, _ := bufio.NewReader(f).ReadString('\n')
		f.Close()
		switch strings.TrimSpace(first) {
		case "# expect: admitted":
			examples = append(examples, Example{Path: p, WantAdmitted: true})
		case "# expect: denied":
			examples = append(examples, Example{Path: p})
		default:
			return nil, fmt.Errorf("%s: the first line must be \"# expect: admitted\" or \"# expect: denied\"", p)
		}
	}
	return examples, nil
}
