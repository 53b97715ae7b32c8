// Package v1alpha1 is the ISSPolicy API (group iss.platform, version v1alpha1): the cluster
// admin's policy, a cluster-scoped singleton named "default" (design.md section 3).
//
// Every field is optional. The CRD's OpenAPI defaults equal the built-in default policy, so the
// API server fills in what an object leaves out; package policy merges an object over the
// built-in default in the same way for objects that were never defaulted (issctl --policy).
//
// +kubebuilder:object:generate=true
// +groupName=iss.platform
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the group and version of the ISSPolicy API.
var GroupVersion = schema.GroupVersion{Group: "iss.platform", Version: "v1alpha1"}

// PolicyName is the name of the only ISSPolicy object the webhook reads.
const PolicyName = "default"

// AddToScheme adds the ISSPolicy types to a scheme.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &ISSPolicy{}, &ISSPolicyList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
