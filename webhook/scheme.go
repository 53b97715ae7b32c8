package webhook

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
)

// NewScheme returns the types the webhook decodes: the built-in Kubernetes API groups and the
// ISSPolicy.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(fmt.Sprintf("registering the built-in Kubernetes types cannot fail: %v", err))
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(fmt.Sprintf("registering the ISSPolicy types cannot fail: %v", err))
	}
	return s
}
