package policy

import (
	"fmt"
	posixpath "path"
	"reflect"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// VolumePolicy says which volumes engine pods may have (ISS-001 section 4: the profile's
// storage bounds what an engine can write).
type VolumePolicy struct {
	// AllowedTypes are the volume types engines may use, named as the fields of a pod's volumes
	// are (emptyDir, configMap, ...). Every other type is denied.
	AllowedTypes []string
	// HostPathPrefixes are the prefixes of the node paths an engine's hostPath volumes may mount
	// (the official chart mounts /var/lib/dagger-<release>). Storage there is bounded by no
	// limit.
	HostPathPrefixes []string
}

// DefaultVolumePolicy admits the volumes the official Dagger chart uses and those the profile
// bounds: no existing claims (their size can change later without a review), and hostPath only
// at the chart's cache paths.
func DefaultVolumePolicy() VolumePolicy {
	return VolumePolicy{
		AllowedTypes:     []string{"configMap", "downwardAPI", "emptyDir", "ephemeral", "hostPath", "projected", "secret"},
		HostPathPrefixes: []string{"/var/lib/dagger", "/var/run/dagger"},
	}
}

// volumeTypes are the names of the volume types this build knows, as VolumeSource's fields.
var volumeTypes = func() []string {
	t := reflect.TypeFor[corev1.VolumeSource]()
	names := make([]string, t.NumField())
	for i := range names {
		names[i], _, _ = strings.Cut(t.Field(i).Tag.Get("json"), ",")
	}
	return names
}()

// VolumeTypes returns the names of every volume type this build knows.
func VolumeTypes() []string { return slices.Clone(volumeTypes) }

// VolumeType returns the type of a volume, as its field is named in a pod's volumes, or "" when
// it has none this build knows (a type newer than the build, lost in decoding).
func VolumeType(v *corev1.VolumeSource) string {
	rv := reflect.ValueOf(v).Elem()
	for i, name := range volumeTypes {
		if !rv.Field(i).IsNil() {
			return name
		}
	}
	return ""
}

// validateVolumes checks the volumes of an engine pod or template against the volume policy
// and the profile's storage: types from the allowlist only; hostPath only below the allowed
// prefixes, with a warning that nothing bounds it; the storage of the claims the engine can
// write (generic ephemeral volumes and a StatefulSet's claim templates, summed) within the
// profile's storage. claims are a StatefulSet's volumeClaimTemplates, nil for other objects.
// It returns the warnings of what it admits but cannot bound.
func (e *EnginePolicy) validateVolumes(eng *Engine, meta *metav1.ObjectMeta, spec *corev1.PodSpec, claims []corev1.PersistentVolumeClaim, root *field.Path) (field.ErrorList, []string) {
	specPath := root.Child("spec")
	var errs field.ErrorList
	var warnings []string
	allowed := strings.Join(e.Volumes.AllowedTypes, ", ")
	ask := "or ask the platform team to allow the type (spec.engines.volumes.allowedTypes)"
	var claimed resource.Quantity
	var claimPaths []string
	var onlyClaim *field.Path // the one claim's path, when there is one
	// claim counts the storage a claim requests, at path, against the profile's.
	claim := func(what string, requests corev1.ResourceList, path *field.Path) {
		size, ok := requests[corev1.ResourceStorage]
		if !ok {
			errs = append(errs, field.Required(path, what+" must request its storage, which is taken from the quota profile's"))
			return
		}
		claimed.Add(size)
		claimPaths = append(claimPaths, fmt.Sprintf("%s %s", path, size.String()))
		onlyClaim = path
	}
	for i := range spec.Volumes {
		v := &spec.Volumes[i]
		path := specPath.Child("volumes").Index(i)
		kind := VolumeType(&v.VolumeSource)
		switch {
		case kind == "":
			errs = append(errs, field.Forbidden(path, fmt.Sprintf(
				"volume %q has no volume type this build of iss-webhook knows, so the engine rules cannot bound it: engine pods may use %s volumes", v.Name, allowed)))
			continue
		case kind == "persistentVolumeClaim" && statefulSetClaim(meta, v):
			// A claim of the pod's StatefulSet, whose templates were bounded when it was admitted;
			// AdmitPod admits it only from the StatefulSet controller (an owner reference can be
			// written by anyone).
			eng.StatefulSetClaims = append(eng.StatefulSetClaims, i)
			continue
		case !slices.Contains(e.Volumes.AllowedTypes, kind):
			why := ""
			switch kind {
			case "persistentVolumeClaim":
				why = " (an existing claim's size can change later without a review): use a generic ephemeral volume (ephemeral.volumeClaimTemplate) within the profile's storage,"
			case "csi":
				why = " (an inline CSI volume can bring secrets or storage outside the profile; secrets reach engines through the iss.platform/secrets annotation):"
			}
			errs = append(errs, field.Forbidden(path.Child(kind), fmt.Sprintf(
				"volume %q is a %s volume, which engine pods may not use%s: engine pods may use %s volumes; use one of them, %s",
				v.Name, kind, why, allowed, ask)))
			continue
		}
		switch {
		case v.HostPath != nil:
			if prefix, ok := e.hostPathAllowed(v.HostPath.Path); ok {
				warnings = append(warnings, fmt.Sprintf("hostPath volume %q (%s, under %s) is storage on the node that no quota profile bounds: the engine can fill it", v.Name, v.HostPath.Path, prefix))
			} else {
				errs = append(errs, field.Forbidden(path.Child("hostPath", "path"), fmt.Sprintf(
					"volume %q mounts %s of the node, but engine pods may mount only paths that start with %s, the official chart's cache paths, since storage on the node is bounded by no quota profile: use an emptyDir or a generic ephemeral volume, or ask the platform team to allow the directory (spec.engines.volumes.hostPathPrefixes)",
					v.Name, v.HostPath.Path, strings.Join(e.Volumes.HostPathPrefixes, " or "))))
			}
		case v.Ephemeral != nil:
			tmplPath := path.Child("ephemeral", "volumeClaimTemplate", "spec", "resources", "requests").Key(string(corev1.ResourceStorage))
			if v.Ephemeral.VolumeClaimTemplate == nil {
				errs = append(errs, field.Required(path.Child("ephemeral", "volumeClaimTemplate"), fmt.Sprintf("volume %q needs a volumeClaimTemplate with a storage request", v.Name)))
				continue
			}
			claim(fmt.Sprintf("volume %q", v.Name), v.Ephemeral.VolumeClaimTemplate.Spec.Resources.Requests, tmplPath)
		}
	}
	for i := range claims {
		claim(fmt.Sprintf("volume claim %q", claims[i].Name), claims[i].Spec.Resources.Requests,
			field.NewPath("spec", "volumeClaimTemplates").Index(i).Child("spec", "resources", "requests").Key(string(corev1.ResourceStorage)))
	}
	if eng.Profile == nil || len(claimPaths) == 0 {
		return errs, warnings
	}
	if limit, ok := eng.Profile.Limits[corev1.ResourceEphemeralStorage]; ok && claimed.Cmp(limit) > 0 {
		at := specPath.Child("volumes")
		switch {
		case len(claimPaths) == 1:
			at = onlyClaim
		case len(claims) > 0:
			at = field.NewPath("spec", "volumeClaimTemplates")
		}
		errs = append(errs, field.Invalid(at, claimed.String(), fmt.Sprintf(
			"the volume claims of an engine pod ask for %s in all (%s), more than the %s of storage of quota profile %q (ISS-001 section 4), which bounds everything the engine can write: ask for at most %s in all%s",
			claimed.String(), strings.Join(claimPaths, ", "), limit.String(), eng.Profile.Name, limit.String(), e.largerProfileHint(eng.Profile, corev1.ResourceEphemeralStorage, claimed))))
	}
	return errs, warnings
}

// hostPathAllowed tells whether a node path starts with one of the allowed prefixes, and which.
// The prefixes are those of strings, as the official chart names its cache directories after
// its release (/var/lib/dagger-<release>); the path is compared once cleaned, and a path with a
// ".." element is never allowed, so that /var/lib/dagger/../../etc does not pass.
func (e *EnginePolicy) hostPathAllowed(p string) (string, bool) {
	if !posixpath.IsAbs(p) || slices.Contains(strings.Split(p, "/"), "..") {
		return "", false
	}
	clean := posixpath.Clean(p)
	for _, prefix := range e.Volumes.HostPathPrefixes {
		if strings.HasPrefix(clean, prefix) {
			return prefix, true
		}
	}
	return "", false
}

// statefulSetClaim tells whether a persistentVolumeClaim volume of a pod is one of its
// StatefulSet's claims: the pod is controlled by a StatefulSet and the claim is named
// <volume>-<pod>, as the StatefulSet controller names the claims of its volumeClaimTemplates.
func statefulSetClaim(meta *metav1.ObjectMeta, v *corev1.Volume) bool {
	owner := metav1.GetControllerOfNoCopy(meta)
	return owner != nil && owner.Kind == "StatefulSet" && meta.Name != "" && v.PersistentVolumeClaim.ClaimName == v.Name+"-"+meta.Name
}

// StatefulSetControllers are the identities as which the StatefulSet controller creates pods:
// its own service account, or the controller manager's when it runs without per-controller
// credentials.
var StatefulSetControllers = []string{"system:serviceaccount:kube-system:statefulset-controller", "system:kube-controller-manager"}

// ValidateStatefulSetClaims denies the StatefulSet claims of an engine pod (Engine.
// StatefulSetClaims) unless the StatefulSet controller creates it: anyone else could name a
// claim of their own, of any size, as a StatefulSet's.
func ValidateStatefulSetClaims(eng Engine, spec *corev1.PodSpec, user string) field.ErrorList {
	if slices.Contains(StatefulSetControllers, user) {
		return nil
	}
	var errs field.ErrorList
	for _, i := range eng.StatefulSetClaims {
		v := &spec.Volumes[i]
		errs = append(errs, field.Forbidden(field.NewPath("spec", "volumes").Index(i).Child("persistentVolumeClaim"), fmt.Sprintf(
			"volume %q names the claim %s as a StatefulSet's, but only the StatefulSet controller creates pods with a StatefulSet's claims; engine pods may not use other existing claims (their size can change later without a review): create the pod through its StatefulSet, or use a generic ephemeral volume",
			v.Name, v.PersistentVolumeClaim.ClaimName)))
	}
	return errs
}
