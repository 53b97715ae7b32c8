package devenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
)

// CRDSource is a set of CustomResourceDefinition manifests as their own project ships them in
// its Go module. They are fetched with `go mod download`, which checks them against the Go
// checksum database, and installed unchanged: never retyped by hand.
type CRDSource struct {
	// Module and Version name the Go module.
	Module, Version string
	// Files are globs, relative to the module root, of the manifests to install.
	Files []string
}

// DefaultCRDSources are the CRDs that the local control plane serves, so that the objects the
// webhook governs can be created as in a cluster that runs those projects.
func DefaultCRDSources() []CRDSource {
	return []CRDSource{
		{
			Module: "github.com/external-secrets/external-secrets", Version: "v0.16.2",
			Files: []string{"config/crds/bases/external-secrets.io_*.yaml"},
		},
		{
			// The experimental channel: it serves policy.networking.k8s.io/v1beta1 with domainNames.
			Module: "sigs.k8s.io/network-policy-api", Version: "v0.3.0",
			Files: []string{"config/crd/experimental/policy.networking.k8s.io_clusternetworkpolicies.yaml"},
		},
		{
			// For a server-side dry run of the install manifests, whose certificate cert-manager issues.
			Module: "github.com/cert-manager/cert-manager", Version: "v1.21.2",
			Files: []string{"deploy/crds/cert-manager.io_*.yaml"},
		},
		{
			Module: "github.com/cilium/cilium", Version: "v1.20.2",
			Files: []string{"pkg/k8s/apis/cilium.io/client/crds/v2/ciliumnetworkpolicies.yaml"},
		},
	}
}

// Paths downloads the module (a no-op when the module cache has it) and returns the manifest
// files that Files names.
func (s CRDSource) Paths(ctx context.Context, workDir string) ([]string, error) {
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", s.Module+"@"+s.Version)
	cmd.Dir = workDir
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go mod download %s@%s: %v: %s%s", s.Module, s.Version, err, errOut.String(), out.String())
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out.Bytes(), &mod); err != nil {
		return nil, fmt.Errorf("go mod download %s@%s: %w", s.Module, s.Version, err)
	}
	if mod.Error != "" || mod.Dir == "" {
		return nil, fmt.Errorf("go mod download %s@%s: %s", s.Module, s.Version, mod.Error)
	}
	var paths []string
	for _, glob := range s.Files {
		matches, err := filepath.Glob(filepath.Join(mod.Dir, glob))
		if err != nil {
			return nil, err
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("%s@%s has no file %s", s.Module, s.Version, glob)
		}
		paths = append(paths, matches...)
	}
	return paths, nil
}

// SharedCRDs returns the CRD manifests in the shared crds folder beside the checkout (those of
// Pulumi and tofu-controller, which no Go module here serves, copied unchanged from their
// projects), or none when there is no such folder.
func SharedCRDs(repoRoot string) ([]string, error) {
	return filepath.Glob(filepath.Join(repoRoot, "..", "shared", "crds", "*.yaml"))
}

// crdPaths returns the manifest files of every source.
func crdPaths(ctx context.Context, workDir string, sources []CRDSource) ([]string, error) {
	var all []string
	for _, s := range sources {
		paths, err := s.Paths(ctx, workDir)
		if err != nil {
			return nil, err
		}
		all = append(all, paths...)
	}
	return all, nil
}
