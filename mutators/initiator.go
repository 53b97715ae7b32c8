package mutators

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/iss-platform/iss-webhook/policy"
)

// InitiatorID sets the iss.platform/initiator-id annotation of an ExternalSecret or PushSecret
// to the requesting user when it is absent (design.md 4.4): the private paths the object may
// read are that user's.
func InitiatorID(meta *metav1.ObjectMeta, username string) bool {
	if _, ok := meta.Annotations[policy.AnnotationInitiatorID]; ok || username == "" {
		return false
	}
	if meta.Annotations == nil {
		meta.Annotations = map[string]string{}
	}
	meta.Annotations[policy.AnnotationInitiatorID] = username
	return true
}
