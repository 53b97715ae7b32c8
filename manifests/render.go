package manifests

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// tree is the install: the kustomizations that kubectl apply -k reads, embedded so that issctl
// install renders the very same objects.
//
//go:embed kustomization.yaml crds deploy rbac webhook policy cert-manager self-signed
var tree embed.FS

// The certificate modes of an install.
const (
	// CertModeCertManager: cert-manager issues the serving certificate (manifests/).
	CertModeCertManager = "cert-manager"
	// CertModeSelfSigned: the webhook keeps its own CA (manifests/self-signed).
	CertModeSelfSigned = "self-signed"
)

// DefaultImage is the image the manifests name; installs set their own.
const DefaultImage = "iss-webhook:latest"

// Render returns the objects of the install for a certificate mode, with the webhook's image
// set to image (DefaultImage when empty), as kustomize renders them: in kustomize's order,
// namespaces and CRDs first and webhook configurations last.
func Render(certMode, image string) ([]*unstructured.Unstructured, error) {
	dir := "manifests"
	switch certMode {
	case CertModeCertManager:
	case CertModeSelfSigned:
		dir = "manifests/self-signed"
	default:
		return nil, fmt.Errorf("unknown certificate mode %q: use %s or %s", certMode, CertModeCertManager, CertModeSelfSigned)
	}
	fSys := filesys.MakeFsInMemory()
	err := fs.WalkDir(tree, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := tree.ReadFile(p)
		if err != nil {
			return err
		}
		return fSys.WriteFile(path.Join("/", "manifests", p), data)
	})
	if err != nil {
		return nil, err
	}
	overlay := map[string]any{
		"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
		"resources": []string{"../" + dir},
	}
	if image != "" && image != DefaultImage {
		name, tag, digest, err := splitImage(image)
		if err != nil {
			return nil, err
		}
		entry := map[string]string{"name": "iss-webhook", "newName": name}
		if tag != "" {
			entry["newTag"] = tag
		}
		if digest != "" {
			entry["digest"] = digest
		}
		overlay["images"] = []map[string]string{entry}
	}
	data, err := yaml.Marshal(overlay)
	if err != nil {
		return nil, err
	}
	if err := fSys.WriteFile("/install/kustomization.yaml", data); err != nil {
		return nil, err
	}
	// kubectl's order: namespaces and CRDs first, webhook configurations last.
	opts := krusty.MakeDefaultOptions()
	opts.Reorder = krusty.ReorderOptionLegacy
	resources, err := krusty.MakeKustomizer(opts).Run(fSys, "/install")
	if err != nil {
		return nil, fmt.Errorf("rendering %s: %w", dir, err)
	}
	rendered, err := resources.AsYaml()
	if err != nil {
		return nil, err
	}
	return decodeAll(rendered)
}

// splitImage splits an image reference into its repository, tag and digest.
func splitImage(image string) (name, tag, digest string, err error) {
	if strings.ContainsAny(image, " \t\n") || image == "" {
		return "", "", "", fmt.Errorf("%q is not an image reference", image)
	}
	name = image
	if at := strings.IndexByte(name, '@'); at >= 0 {
		name, digest = name[:at], name[at+1:]
	}
	// A colon after the last slash starts the tag; one before it belongs to a registry port.
	if colon := strings.LastIndexByte(name, ':'); colon > strings.LastIndexByte(name, '/') {
		name, tag = name[:colon], name[colon+1:]
	}
	if name == "" {
		return "", "", "", fmt.Errorf("%q names no repository", image)
	}
	return name, tag, digest, nil
}

// decodeAll decodes a multi-document YAML stream.
func decodeAll(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(obj.Object) > 0 {
			out = append(out, obj)
		}
	}
}

// SetImagePullPolicy sets the pull policy of every container of the webhook's Deployment in
// objs: Always, IfNotPresent or Never (Never for a cluster whose nodes were given the image).
// An empty policy leaves the Kubernetes default.
func SetImagePullPolicy(objs []*unstructured.Unstructured, policy string) error {
	switch policy {
	case "":
		return nil
	case "Always", "IfNotPresent", "Never":
	default:
		return fmt.Errorf("unknown image pull policy %q: use Always, IfNotPresent or Never", policy)
	}
	found := false
	for _, obj := range objs {
		if obj.GetKind() != "Deployment" || obj.GetName() != "iss-webhook" {
			continue
		}
		found = true
		containers, _, err := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
		if err != nil {
			return err
		}
		for i, c := range containers {
			m, ok := c.(map[string]any)
			if !ok {
				return fmt.Errorf("container %d of deployment iss-webhook is not an object", i)
			}
			m["imagePullPolicy"] = policy
		}
		if err := unstructured.SetNestedSlice(obj.Object, containers, "spec", "template", "spec", "containers"); err != nil {
			return err
		}
	}
	if !found {
		return errors.New("the install has no deployment iss-webhook")
	}
	return nil
}
