package webhook

import (
	"encoding/json"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// denyInvalid turns a list of violations into a 422 Invalid denial with one cause per field, the
// way the API server reports its own validation errors, so that kubectl prints every field path.
func denyInvalid(gk schema.GroupKind, meta *metav1.ObjectMeta, errs field.ErrorList) admission.Response {
	name := meta.Name
	if name == "" && meta.GenerateName != "" {
		name = meta.GenerateName + "*"
	}
	status := apierrors.NewInvalid(gk, name, errs).ErrStatus
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &status}}
}

// patchFrom answers with the JSON patch from before, the object encoded before the mutators
// ran, to after, the object now. Both encodings come from the same code, so fields this build
// does not know are never touched.
func patchFrom(before []byte, after any) admission.Response {
	mutated, err := json.Marshal(after)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	return admission.PatchResponseFromRaw(before, mutated)
}

// badRequest answers a request whose object cannot be decoded. It says what could not be read;
// the API server shows the message to the user.
func badRequest(what string, err error) admission.Response {
	return admission.Errored(http.StatusBadRequest, fmt.Errorf("iss-webhook cannot decode the %s: %w", what, err))
}
