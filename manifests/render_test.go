package manifests

import (
	"os/exec"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestRenderIsKustomize checks that the embedded tree renders what kubectl kustomize renders
// from the checkout, so that issctl install and kubectl apply -k install the same objects.
func TestRenderIsKustomize(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not on PATH")
	}
	for mode, dir := range map[string]string{CertModeCertManager: ".", CertModeSelfSigned: "self-signed"} {
		out, err := exec.Command(kubectl, "kustomize", dir).Output()
		if err != nil {
			t.Fatalf("kubectl kustomize %s: %v", dir, err)
		}
		want, err := decodeAll(out)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Render(mode, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d objects, kubectl kustomize has %d", mode, len(got), len(want))
		}
		for i := range got {
			g, _ := yaml.Marshal(got[i].Object)
			w, _ := yaml.Marshal(want[i].Object)
			if string(g) != string(w) {
				t.Errorf("%s: object %d differs:\n%s\nkubectl kustomize:\n%s", mode, i, g, w)
			}
		}
	}
}

func TestRenderSetsTheImage(t *testing.T) {
	for image, want := range map[string]string{
		"": DefaultImage,
		"registry.example.com:5000/iss-webhook:v1": "registry.example.com:5000/iss-webhook:v1",
		"ghcr.io/acme/iss-webhook@sha256:0123":     "ghcr.io/acme/iss-webhook@sha256:0123",
	} {
		objs, err := Render(CertModeSelfSigned, image)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if o.GetKind() != "Deployment" {
				continue
			}
			containers := o.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)
			if got := containers[0].(map[string]any)["image"]; got != want {
				t.Errorf("image %q: got %v, want %s", image, got, want)
			}
		}
	}
	if _, err := Render("vault", ""); err == nil {
		t.Error("an unknown mode rendered")
	}
}

func TestSetImagePullPolicy(t *testing.T) {
	for _, tc := range []struct {
		policy  string
		want    any
		wantErr bool
	}{
		{policy: "", want: nil},
		{policy: "Never", want: "Never"},
		{policy: "IfNotPresent", want: "IfNotPresent"},
		{policy: "Always", want: "Always"},
		{policy: "never", wantErr: true},
	} {
		objs, err := Render(CertModeSelfSigned, "")
		if err != nil {
			t.Fatal(err)
		}
		err = SetImagePullPolicy(objs, tc.policy)
		if (err != nil) != tc.wantErr {
			t.Fatalf("policy %q: error %v, want error %v", tc.policy, err, tc.wantErr)
		}
		if tc.wantErr {
			continue
		}
		for _, o := range objs {
			if o.GetKind() != "Deployment" {
				continue
			}
			containers := o.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)
			for _, c := range containers {
				if got := c.(map[string]any)["imagePullPolicy"]; got != tc.want {
					t.Errorf("policy %q: got %v", tc.policy, got)
				}
			}
		}
	}
}
