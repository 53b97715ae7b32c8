package policy

import (
	"context"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// User-private Secrets (ISS-001 section 2.1, /artifacts/{appId}/users/{userId}/...). A Secret
// that an ExternalSecret syncs from a users/{userId} path is private to that user; the rules
// below keep it out of the pods of every other user. A pod's (or a pod template's) owner is its
// iss.platform/initiator-id annotation, bound to the requester as on ExternalSecrets.

// PrivateSecretLookup tells which Secrets of a namespace are private to users: those that
// ExternalSecrets sync from users/{userId} paths, or template from such Secrets. The webhook
// keeps them in an informer-backed index; an error means the index cannot tell (not synced).
type PrivateSecretLookup interface {
	// SecretUsers returns the users a Secret is private to, sorted; none for a Secret that no
	// ExternalSecret syncs from a private path.
	SecretUsers(ctx context.Context, namespace, name string) ([]string, error)
	// PrivateSecrets returns every private Secret of a namespace with its users.
	PrivateSecrets(ctx context.Context, namespace string) (map[string][]string, error)
	// SecretReaders returns the ExternalSecrets and PushSecrets of a namespace that read a
	// Secret (SecretReads): those that name it, and those that may read any Secret of the
	// namespace (a PushSecret that selects by labels, or one the index cannot read).
	SecretReaders(ctx context.Context, namespace, name string) ([]SecretReader, error)
	// Watching returns an error while the index does not hold every object of kind
	// (KindExternalSecret or KindPushSecret) that the API server has: the kind was not served
	// when the webhook last asked, or its informer is not synced yet.
	Watching(ctx context.Context, kind string) error
}

// SecretReader is an ExternalSecret or PushSecret that reads a Secret of its namespace, as the
// index of private Secrets keeps it.
type SecretReader struct {
	// Kind is KindExternalSecret or KindPushSecret.
	Kind string
	// Name is the object's name.
	Name string
	// Initiator is its iss.platform/initiator-id annotation, empty when it has none.
	Initiator string
	// Target is the Secret an ExternalSecret writes (SecretWrites); empty for a PushSecret.
	Target string
}

// The kinds of SecretReader and PrivateSecretLookup.Watching.
const (
	KindExternalSecret = "ExternalSecret"
	KindPushSecret     = "PushSecret"
)

// PodLookup tells what the webhook caches of the pods of the namespaces it serves: their owner
// and the Secrets they reference, for the reviews that carry no pod (exec, attach,
// port-forward) and for ExternalSecrets that would make a Secret private that pods already use.
type PodLookup interface {
	// Pod returns the cached pod of a namespace by name; found is false when the cache has none.
	Pod(ctx context.Context, namespace, name string) (pod CachedPod, found bool, err error)
	// PodsReferencing returns the cached pods of a namespace that reference a Secret.
	PodsReferencing(ctx context.Context, namespace, secret string) ([]CachedPod, error)
}

// CachedPod is what the webhook keeps of a pod.
type CachedPod struct {
	Name string
	// Owner is its iss.platform/initiator-id annotation, empty when it has none.
	Owner string
	// Secrets are the names of the Secrets it references (PodSpecSecretReferences), sorted.
	Secrets []string
}

// TemplateControllers are the identities of the Kubernetes controllers that create pods,
// ReplicaSets and Jobs from the templates of workloads: their requests carry the owner of the
// template they copy, whose binding was checked when the template was admitted, so they may
// record an owner other than themselves. They are not trusted otherwise.
var TemplateControllers = []string{
	"system:serviceaccount:kube-system:deployment-controller",
	"system:serviceaccount:kube-system:replicaset-controller",
	"system:serviceaccount:kube-system:statefulset-controller",
	"system:serviceaccount:kube-system:daemon-set-controller",
	"system:serviceaccount:kube-system:job-controller",
	"system:serviceaccount:kube-system:cronjob-controller",
	"system:serviceaccount:kube-system:replication-controller",
	// The controller manager's own identity, when it runs without
	// --use-service-account-credentials.
	"system:kube-controller-manager",
}

// MayRecordOthers tells whether a requester may create a pod or template whose owner is
// another user: trusted identities, and the controllers that copy templates.
func MayRecordOthers(req *Request) bool {
	return req.Trusted || slices.Contains(TemplateControllers, req.User)
}

// Owner returns the owner of a pod or pod template: its iss.platform/initiator-id annotation.
func Owner(meta *metav1.ObjectMeta) string { return meta.Annotations[AnnotationInitiatorID] }

// validateInitiatorAnnotation is the one binding of an iss.platform/initiator-id annotation to
// its requester, on ExternalSecrets, PushSecrets, pods and templates: unless free (trusted), a
// requester may only name itself, and may not change or remove it once set. checked says what
// was checked for the initiator, for the message; required denies its absence on create.
func validateInitiatorAnnotation(path *field.Path, old, cur *metav1.ObjectMeta, username string, free bool, checked string, required bool) field.ErrorList {
	value, ok := cur.Annotations[AnnotationInitiatorID]
	if free {
		return nil
	}
	if old != nil {
		before, had := old.Annotations[AnnotationInitiatorID]
		switch {
		case had && (!ok || value != before):
			return field.ErrorList{field.Forbidden(path, fmt.Sprintf("the initiator %q may not be changed or removed: %s; create a new object instead", before, checked))}
		case had || !ok:
			// Kept as it was, or still absent on an object created before the webhook.
			return nil
		}
	}
	if !ok {
		if !required {
			return nil
		}
		return field.ErrorList{field.Required(path, fmt.Sprintf("iss-webhook sets it to the requesting user; set it to %q", username))}
	}
	if value != username {
		return field.ErrorList{field.Forbidden(path, fmt.Sprintf("is %q, but you are %q: only trusted identities may act for another user; remove the annotation to have it set to you", value, username))}
	}
	return nil
}

// ValidateOwner checks the owner annotation of a pod or pod template (root is nil for a pod,
// the template's path for a workload): a requester that may not record others
// (MayRecordOthers) may only name itself, and may not change or remove it once set. A pod or
// template without owner is admitted: it may use no private Secret. old is nil on create.
func ValidateOwner(old, cur *metav1.ObjectMeta, root *field.Path, username string, mayRecordOthers bool) field.ErrorList {
	return validateInitiatorAnnotation(root.Child("metadata", "annotations").Key(AnnotationInitiatorID), old, cur, username, mayRecordOthers,
		"the private Secrets its pods may use were checked for it", false)
}

// SecretReference is one place where a pod spec names a Secret of its namespace.
type SecretReference struct {
	// Name is the Secret's name.
	Name string
	// Field is where the spec names it.
	Field *field.Path
	// Use says what the pod does with it, for messages.
	Use string
}

// PodSpecSecretReferences returns every place a pod spec names a Secret: image pull secrets,
// the env and envFrom of every container (init and ephemeral ones too), and the volumes that
// mount a Secret or hand one to their driver. It follows the fields Kubernetes itself visits for
// the Secrets a pod uses (the node authorizer's graph), not transitive ones (a claim's volume).
// unknown are the volumes of a type this build does not know (lost in decoding), which may
// reference any Secret. specPath is the spec's path.
func PodSpecSecretReferences(spec *corev1.PodSpec, specPath *field.Path) (refs []SecretReference, unknown []*field.Path) {
	add := func(name string, path *field.Path, use string) {
		if name != "" {
			refs = append(refs, SecretReference{Name: name, Field: path, Use: use})
		}
	}
	for i, r := range spec.ImagePullSecrets {
		add(r.Name, specPath.Child("imagePullSecrets").Index(i).Child("name"), "pulls images with it")
	}
	containers := func(list string, n int, at func(int) *corev1.Container) {
		for i := range n {
			c := at(i)
			path := specPath.Child(list).Index(i)
			for j, e := range c.EnvFrom {
				if e.SecretRef != nil {
					add(e.SecretRef.Name, path.Child("envFrom").Index(j).Child("secretRef", "name"), "takes its keys as environment variables")
				}
			}
			for j, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					add(e.ValueFrom.SecretKeyRef.Name, path.Child("env").Index(j).Child("valueFrom", "secretKeyRef", "name"), "takes a key of it as an environment variable")
				}
			}
		}
	}
	containers("initContainers", len(spec.InitContainers), func(i int) *corev1.Container { return &spec.InitContainers[i] })
	containers("containers", len(spec.Containers), func(i int) *corev1.Container { return &spec.Containers[i] })
	containers("ephemeralContainers", len(spec.EphemeralContainers), func(i int) *corev1.Container {
		return (*corev1.Container)(&spec.EphemeralContainers[i].EphemeralContainerCommon)
	})
	for i := range spec.Volumes {
		v := &spec.Volumes[i].VolumeSource
		path := specPath.Child("volumes").Index(i)
		driver := func(kind string, ref *corev1.LocalObjectReference, field string) {
			if ref != nil {
				add(ref.Name, path.Child(kind, field, "name"), "hands it to the "+kind+" volume driver")
			}
		}
		switch {
		case v.Secret != nil:
			add(v.Secret.SecretName, path.Child("secret", "secretName"), "mounts it")
		case v.Projected != nil:
			for j, s := range v.Projected.Sources {
				if s.Secret != nil {
					add(s.Secret.Name, path.Child("projected", "sources").Index(j).Child("secret", "name"), "mounts it in a projected volume")
				}
			}
		case v.CSI != nil:
			driver("csi", v.CSI.NodePublishSecretRef, "nodePublishSecretRef")
		case v.AzureFile != nil:
			add(v.AzureFile.SecretName, path.Child("azureFile", "secretName"), "hands it to the azureFile volume driver")
		case v.CephFS != nil:
			driver("cephfs", v.CephFS.SecretRef, "secretRef")
		case v.Cinder != nil:
			driver("cinder", v.Cinder.SecretRef, "secretRef")
		case v.FlexVolume != nil:
			driver("flexVolume", v.FlexVolume.SecretRef, "secretRef")
		case v.RBD != nil:
			driver("rbd", v.RBD.SecretRef, "secretRef")
		case v.ScaleIO != nil:
			driver("scaleIO", v.ScaleIO.SecretRef, "secretRef")
		case v.ISCSI != nil:
			driver("iscsi", v.ISCSI.SecretRef, "secretRef")
		case v.StorageOS != nil:
			driver("storageos", v.StorageOS.SecretRef, "secretRef")
		case VolumeType(v) == "":
			unknown = append(unknown, path)
		}
	}
	return refs, unknown
}

// SecretReferences returns the Secrets a pod or pod template references
// (PodSpecSecretReferences) and, for an engine, those its iss.platform/secrets keys name, which
// the webhook mounts into its pods (design.md 4.2); root is nil for a pod.
func (p *Policy) SecretReferences(meta *metav1.ObjectMeta, spec *corev1.PodSpec, root *field.Path) ([]SecretReference, []*field.Path) {
	refs, unknown := PodSpecSecretReferences(spec, root.Child("spec"))
	if _, isEngine := p.Engines.Match(meta, spec); isEngine {
		path := root.Child("metadata", "annotations").Key(AnnotationSecrets)
		// A malformed annotation is denied by the engine rules.
		keys, _ := ParseSecretKeys(meta.Annotations[AnnotationSecrets], path)
		for _, k := range keys {
			name := SecretName(k)
			if !slices.ContainsFunc(refs, func(r SecretReference) bool { return r.Name == name }) {
				refs = append(refs, SecretReference{Name: name, Field: path, Use: "mounts it for its key " + k})
			}
		}
	}
	return refs, unknown
}

// PrivateSecretCheck is what ValidatePrivateSecrets judges of one pod or pod template.
type PrivateSecretCheck struct {
	// Namespace is the pod's.
	Namespace string
	// What names the object in messages: "pod", "pod template".
	What string
	// Owner is the pod's or template's owner (Owner), at OwnerPath; empty when it has none.
	Owner     string
	OwnerPath *field.Path
	// Shared is set for a shared engine (a DaemonSet's), which may use no private Secret.
	Shared bool
	// Requester, when set, is an untrusted requester who changes the pod or its template, or
	// adds a debug container to it: every private Secret the pod uses must be the requester's,
	// or they could make it reveal the Secret. Action says what they do, for messages.
	Requester, Action string
	// Refs and Unknown are the pod's references (SecretReferences).
	Refs    []SecretReference
	Unknown []*field.Path
}

// ValidatePrivateSecrets denies a pod or pod template that uses a Secret private to a user
// other than its owner (a pod without owner may use none), a shared engine that uses any
// private Secret, and a change by a requester other than the user a used Secret is private to.
// Volumes of a type this build does not know are denied where the namespace has private
// Secrets that are not the owner's alone. The refusal says when the index cannot tell.
func ValidatePrivateSecrets(ctx context.Context, lookup PrivateSecretLookup, c PrivateSecretCheck) (field.ErrorList, *Refusal) {
	if lookup == nil || (len(c.Refs) == 0 && len(c.Unknown) == 0) {
		return nil, nil
	}
	var errs field.ErrorList
	users := map[string][]string{}
	for _, r := range c.Refs {
		if _, done := users[r.Name]; done {
			continue
		}
		u, err := lookup.SecretUsers(ctx, c.Namespace, r.Name)
		if err != nil {
			return nil, privateIndexUnavailable(err)
		}
		users[r.Name] = u
	}
	for _, r := range c.Refs {
		u := users[r.Name]
		if len(u) == 0 {
			continue
		}
		private := fmt.Sprintf("Secret %q is private to %s (an ExternalSecret syncs it from %s)", r.Name, userList(u), userPaths(u))
		switch {
		case c.Shared:
			errs = append(errs, field.Forbidden(r.Field, fmt.Sprintf("this shared engine (a DaemonSet's pods serve every user of the node) %s, but %s: shared engines may carry no private Secret; use a Secret synced from a public path, or run the user's engine as a pod or Deployment of its own",
				r.Use, private)))
		case c.Owner == "":
			errs = append(errs, field.Forbidden(r.Field, fmt.Sprintf("this %s %s, but %s, and a %s without owner (%s) may use no private Secret: create it as %s, whom iss-webhook then records as its owner, or use a Secret synced from a public path",
				c.What, r.Use, private, c.What, AnnotationInitiatorID, userList(u))))
		case !onlyUser(u, c.Owner):
			errs = append(errs, field.Forbidden(r.Field, fmt.Sprintf("this %s %s, but %s, and its owner (%s at %s) is %q: only the user's own pods may use it; use a Secret of your own or one synced from a public path",
				c.What, r.Use, private, AnnotationInitiatorID, c.OwnerPath, c.Owner)))
		case c.Requester != "" && !onlyUser(u, c.Requester):
			errs = append(errs, field.Forbidden(r.Field, fmt.Sprintf("this %s %s, and %s: only %s (or a trusted identity) may %s, which could make it reveal the Secret, and you are %q",
				c.What, r.Use, private, userList(u), c.Action, c.Requester)))
		}
	}
	if len(c.Unknown) > 0 {
		all, err := lookup.PrivateSecrets(ctx, c.Namespace)
		if err != nil {
			return nil, privateIndexUnavailable(err)
		}
		var others []string
		for name, u := range all {
			if c.Shared || !onlyUser(u, c.Owner) || (c.Requester != "" && !onlyUser(u, c.Requester)) {
				others = append(others, name)
			}
		}
		if len(others) > 0 {
			slices.Sort(others)
			for _, path := range c.Unknown {
				errs = append(errs, field.Forbidden(path, fmt.Sprintf("this volume has a type this build of iss-webhook does not know, so it cannot tell which Secrets it reads, and namespace %s has Secrets private to other users (%s): use a volume type it knows, or ask the platform team to upgrade iss-webhook",
					c.Namespace, quotedList(others))))
			}
		}
	}
	return errs, nil
}

// connectPodName returns the pod a CONNECT names. A proxy request names it as
// [scheme:]name[:port] (pods/https:alice-app:8443/proxy), which the API server passes on as the
// request's name: a pod name has no ':', so the name is the part the scheme and port surround.
func connectPodName(subResource, name string) string {
	if subResource != "proxy" {
		return name
	}
	switch parts := strings.Split(name, ":"); len(parts) {
	case 2:
		return parts[0]
	case 3:
		return parts[1]
	}
	return name
}

// ValidatePodConnect refuses exec, attach and port-forward (CONNECT reviews, which carry no
// pod: the cached one is judged) into a pod that uses a Secret private to another user than the
// requester, who could read it from inside. A pod the cache does not know is admitted: the API
// server answers for one that does not exist, and a pod is in the cache long before any of its
// containers can run.
func ValidatePodConnect(ctx context.Context, secrets PrivateSecretLookup, pods PodLookup, req *Request) *Refusal {
	if secrets == nil || pods == nil || req.Trusted {
		return nil
	}
	podName := connectPodName(req.SubResource, req.Name)
	pod, found, err := pods.Pod(ctx, req.Namespace, podName)
	if err != nil {
		return &Refusal{Group: RuleIntegrity, Unavailable: true, Message: fmt.Sprintf("iss-webhook cannot read pod %s/%s from its cache: %v; retry", req.Namespace, podName, err)}
	}
	if !found {
		return nil
	}
	var denied []string
	for _, name := range pod.Secrets {
		u, err := secrets.SecretUsers(ctx, req.Namespace, name)
		if err != nil {
			return privateIndexUnavailable(err)
		}
		if len(u) > 0 && !onlyUser(u, req.User) {
			denied = append(denied, fmt.Sprintf("%q (private to %s)", name, userList(u)))
		}
	}
	if len(denied) == 0 {
		return nil
	}
	return &Refusal{Group: RuleIntegrity, Message: fmt.Sprintf("pod %s/%s uses Secrets synced from private paths of other users: %s; you are %q, and only those users (or a trusted identity) may %s it, since from inside the pod the Secret can be read",
		req.Namespace, req.Name, strings.Join(denied, ", "), req.User, connectVerb(req.SubResource))}
}

// connectVerb names what a CONNECT subresource does, for messages.
func connectVerb(sub string) string {
	switch sub {
	case "exec":
		return "exec into"
	case "attach":
		return "attach to"
	case "portforward":
		return "port-forward to"
	case "proxy":
		return "proxy to"
	}
	return "connect to (" + sub + ")"
}

// ValidateSecretReads denies an ExternalSecret or PushSecret that reads a Secret private to
// another user than its initiator: a PushSecret would push it to a path of its own, an
// ExternalSecret template it into a Secret of its own. A read by labels counts as a read of
// every private Secret of the namespace.
func ValidateSecretReads(ctx context.Context, lookup PrivateSecretLookup, namespace, initiator string, reads []SecretRead) (field.ErrorList, *Refusal) {
	if lookup == nil {
		return nil, nil
	}
	var errs field.ErrorList
	for _, r := range reads {
		if r.Name == "" {
			all, err := lookup.PrivateSecrets(ctx, namespace)
			if err != nil {
				return nil, privateIndexUnavailable(err)
			}
			var others []string
			for name, u := range all {
				if !onlyUser(u, initiator) {
					others = append(others, name)
				}
			}
			if len(others) > 0 {
				slices.Sort(others)
				errs = append(errs, field.Forbidden(r.Field, fmt.Sprintf("Secrets selected by labels may be any of namespace %s, and it has Secrets private to other users than this object's initiator %q (%s): name the Secret instead",
					namespace, initiator, quotedList(others))))
			}
			continue
		}
		u, err := lookup.SecretUsers(ctx, namespace, r.Name)
		if err != nil {
			return nil, privateIndexUnavailable(err)
		}
		if len(u) > 0 && !onlyUser(u, initiator) {
			errs = append(errs, field.Forbidden(r.Field, fmt.Sprintf("Secret %q is private to %s (an ExternalSecret syncs it from %s), and this object's %s is %q: it would copy the Secret where others can read it; read a Secret of your own or one synced from a public path",
				r.Name, userList(u), userPaths(u), AnnotationInitiatorID, initiator)))
		}
	}
	return errs, nil
}

// SecretTargetCheck is what ValidateSecretTarget judges: the Secret an ExternalSecret writes.
type SecretTargetCheck struct {
	// Namespace is the ExternalSecret's namespace, Name its name.
	Namespace, Name string
	// Initiator is its iss.platform/initiator-id.
	Initiator string
	// Field is where it names the Secret it writes, Target that Secret's name.
	Field  *field.Path
	Target string
	// Private are the users its target becomes private to: those of the private paths and
	// Secrets it reads. None when it makes its target private to nobody.
	Private []string
}

// ValidateSecretTarget denies an ExternalSecret that writes into a Secret private to another
// user than its initiator (with creationPolicy Merge or Owner it would change or take it), and,
// when it makes its target private, one whose target others already read: pods of other owners,
// PushSecrets and ExternalSecrets of other initiators, which would push or render it once it is
// synced. An ExternalSecret of the same initiator that templates from the target makes its own
// target private too: the readers of that one count as well, as far as the chain goes.
func ValidateSecretTarget(ctx context.Context, lookup PrivateSecretLookup, pods PodLookup, c SecretTargetCheck) (field.ErrorList, *Refusal) {
	if lookup == nil {
		return nil, nil
	}
	var errs field.ErrorList
	u, err := lookup.SecretUsers(ctx, c.Namespace, c.Target)
	if err != nil {
		return nil, privateIndexUnavailable(err)
	}
	if len(u) > 0 && !onlyUser(u, c.Initiator) {
		errs = append(errs, field.Forbidden(c.Field, fmt.Sprintf("Secret %q is private to %s (an ExternalSecret syncs it from %s), and this object's %s is %q: it may not write into it; choose another target name",
			c.Target, userList(u), userPaths(u), AnnotationInitiatorID, c.Initiator)))
	}
	if len(c.Private) == 0 || pods == nil {
		return errs, nil
	}
	others, refusal := privateSecretReaders(ctx, lookup, pods, c)
	if refusal != nil {
		return nil, refusal
	}
	if len(others) > 0 {
		errs = append(errs, field.Forbidden(c.Field, fmt.Sprintf("this ExternalSecret syncs private paths of %s into Secret %q, which others already read: %s; they would read it once it is synced: choose another target name, or have them removed first",
			userList(c.Private), c.Target, strings.Join(others, "; "))))
	}
	return errs, nil
}

// privateSecretReaders names, for messages, the readers of the Secrets an ExternalSecret would
// make private (its target, and the targets of the ExternalSecrets of its users that template
// from one of them) that are not its users alone: pods by owner, PushSecrets and
// ExternalSecrets by initiator. It returns one group per Secret.
func privateSecretReaders(ctx context.Context, lookup PrivateSecretLookup, pods PodLookup, c SecretTargetCheck) ([]string, *Refusal) {
	whose := func(what, user string) string {
		if user == "" {
			return "no " + what
		}
		return what + " " + user
	}
	type secret struct{ name, via string }
	var groups []string
	seen := map[string]bool{}
	for queue := []secret{{name: c.Target}}; len(queue) > 0; queue = queue[1:] {
		s := queue[0]
		if seen[s.name] {
			continue
		}
		seen[s.name] = true
		var items []string
		cached, err := pods.PodsReferencing(ctx, c.Namespace, s.name)
		if err != nil {
			return nil, &Refusal{Group: RuleIntegrity, Unavailable: true, Message: fmt.Sprintf("iss-webhook cannot read the pods of %s from its cache: %v; retry", c.Namespace, err)}
		}
		for _, pod := range cached {
			if !onlyUser(c.Private, pod.Owner) {
				items = append(items, fmt.Sprintf("pod %s (%s)", pod.Name, whose("owner", pod.Owner)))
			}
		}
		readers, err := lookup.SecretReaders(ctx, c.Namespace, s.name)
		if err != nil {
			return nil, privateIndexUnavailable(err)
		}
		for _, r := range readers {
			switch {
			case r.Kind == KindExternalSecret && r.Name == c.Name:
				// Itself: what it templates from its own target is its own.
			case onlyUser(c.Private, r.Initiator):
				if r.Kind == KindExternalSecret && r.Target != "" {
					queue = append(queue, secret{name: r.Target, via: fmt.Sprintf("through ExternalSecret %s, which templates it into Secret %q", r.Name, r.Target)})
				}
			case r.Kind == KindPushSecret:
				items = append(items, fmt.Sprintf("PushSecret %s (%s), which pushes it", r.Name, whose("initiator", r.Initiator)))
			default:
				items = append(items, fmt.Sprintf("ExternalSecret %s (%s), which templates it into Secret %q", r.Name, whose("initiator", r.Initiator), r.Target))
			}
		}
		if len(items) == 0 {
			continue
		}
		slices.Sort(items)
		group := strings.Join(items, ", ")
		if s.via != "" {
			group = s.via + ": " + group
		}
		groups = append(groups, group)
	}
	return groups, nil
}

// PathUser returns the user of an OpenBao path of the users/{userId} shape, whatever its root
// segment, or "" for any other path. The index of private Secrets reads every ExternalSecret
// with it, those the webhook admitted and those from before it, under any policy's path root.
func PathUser(key string) string {
	s := strings.Split(strings.TrimPrefix(key, "/"), "/")
	if len(s) == 6 && s[2] == "users" && s[4] == "secrets" && s[3] != "" {
		return s[3]
	}
	return ""
}

// ExternalSecretUsers returns the users whose private paths an ExternalSecret reads (PathUser),
// sorted and once each.
func ExternalSecretUsers(es *ExternalSecret) []string {
	var users []string
	for _, path := range ExternalSecretPaths(es) {
		if u := PathUser(path.Key); u != "" && !slices.Contains(users, u) {
			users = append(users, u)
		}
	}
	slices.Sort(users)
	return users
}

// admitExternalSecretDeletion denies the deletion of an ExternalSecret whose Secret is private
// when it would orphan that Secret (kubectl delete --cascade=orphan): the Secret would outlive
// the ExternalSecret that marks it private, and any pod could then use it. A plain deletion
// has the garbage collector delete the Secret with it.
func admitExternalSecretDeletion(ctx context.Context, req *Request, old *SecretObject) Outcome {
	if old == nil || old.ExternalSecret == nil || !req.Orphan || req.Trusted || req.Facts.PrivateSecrets == nil {
		return Outcome{Skip: "only deletions that orphan a private ExternalSecret's Secret are judged"}
	}
	target := SecretWrites(old)[0].Name
	users, err := withSecretUsers(ctx, req.Facts.PrivateSecrets, req.Namespace, ExternalSecretUsers(old.ExternalSecret), target)
	if err != nil {
		return Outcome{Refusal: privateIndexUnavailable(err)}
	}
	if len(users) == 0 {
		return Outcome{Skip: "its Secret is private to nobody"}
	}
	out := Outcome{Group: RuleIntegrity}
	out.Add(RuleIntegrity, field.ErrorList{field.Forbidden(field.NewPath("metadata", "name"), fmt.Sprintf(
		"deleting ExternalSecret %s with propagationPolicy Orphan would leave Secret %q, synced from private paths of %s, behind as private to nobody, which any pod could then use: delete it without orphaning (kubectl delete without --cascade=orphan), so that its Secret goes with it",
		old.GetName(), target, userList(users)))})
	return out
}

// withSecretUsers returns users with the users each named Secret is private to added, sorted
// and once each. Empty names (Secrets selected by labels) add none.
func withSecretUsers(ctx context.Context, lookup PrivateSecretLookup, namespace string, users []string, secrets ...string) ([]string, error) {
	all := slices.Clone(users)
	for _, name := range secrets {
		if name == "" {
			continue
		}
		u, err := lookup.SecretUsers(ctx, namespace, name)
		if err != nil {
			return nil, err
		}
		all = append(all, u...)
	}
	slices.Sort(all)
	return slices.Compact(all), nil
}

// readNames returns the names of the Secrets an object reads.
func readNames(reads []SecretRead) []string {
	names := make([]string, len(reads))
	for i, r := range reads {
		names[i] = r.Name
	}
	return names
}

// validatePrivateTemplate denies, in an ExternalSecret or PushSecret that renders a user's
// private values (users is not empty), every template source another member of the namespace
// could rewrite: a ConfigMap, or a Secret private to nobody (one private to others is denied as a read).
// External Secrets reports the errors of a template in the object's status and Events, which
// the namespace reads: a rewritten template ({{ .password | fail }}) would print the values there.
func validatePrivateTemplate(ctx context.Context, lookup PrivateSecretLookup, namespace, initiator string, obj *SecretObject, users []string) (field.ErrorList, *Refusal) {
	if len(users) == 0 {
		return nil, nil
	}
	path := []string{"spec", "target", "template", "templateFrom"}
	if obj.PushSecret != nil {
		path = []string{"spec", "template", "templateFrom"}
	}
	list, _, _ := unstructured.NestedSlice(obj.Object, path...)
	root := field.NewPath(path[0], path[1:]...)
	var errs field.ErrorList
	for i, item := range list {
		from, _ := item.(map[string]any)
		if _, ok := from["configMap"]; ok {
			errs = append(errs, field.Forbidden(root.Index(i).Child("configMap"), fmt.Sprintf(
				"this object renders values private to %s, and any member of the namespace may rewrite a ConfigMap, making the template print the values into the object's status and Events: put the template inline in template.data", userList(users))))
		}
		secret, _ := from["secret"].(map[string]any)
		if secret == nil {
			continue
		}
		name, _ := secret["name"].(string)
		owners, err := lookup.SecretUsers(ctx, namespace, name)
		if err != nil {
			return nil, privateIndexUnavailable(err)
		}
		if len(owners) == 0 {
			// A Secret private to others is denied as a read (ValidateSecretReads).
			errs = append(errs, field.Forbidden(root.Index(i).Child("secret", "name"), fmt.Sprintf(
				"this object renders values private to %s, and Secret %q is private to nobody, so another member of the namespace could rewrite it into a template that prints the values into the object's status and Events: put the template inline in template.data, or template from a Secret synced from your own private path", userList(users), name)))
		}
	}
	return errs, nil
}

// onlyUser tells whether users holds user alone.
func onlyUser(users []string, user string) bool {
	return user != "" && len(users) > 0 && !slices.ContainsFunc(users, func(u string) bool { return u != user })
}

// userList names users for messages: "alice", or "alice and bob".
func userList(users []string) string {
	quoted := make([]string, len(users))
	for i, u := range users {
		quoted[i] = fmt.Sprintf("%q", u)
	}
	if len(quoted) <= 1 {
		return strings.Join(quoted, "")
	}
	return strings.Join(quoted[:len(quoted)-1], ", ") + " and " + quoted[len(quoted)-1]
}

// userPaths names the private paths of users for messages.
func userPaths(users []string) string {
	paths := make([]string, len(users))
	for i, u := range users {
		paths[i] = "users/" + u + "/..."
	}
	return strings.Join(paths, " and ")
}

// privateIndexUnavailable is the refusal when the index of private Secrets cannot tell.
func privateIndexUnavailable(err error) *Refusal {
	return &Refusal{Group: RuleIntegrity, Unavailable: true, Message: fmt.Sprintf(
		"iss-webhook cannot tell which Secrets are private to users (synced from users/{userId} paths): %v; it denies what it cannot check: retry", err)}
}

// AdmitPodSecrets applies the user-private Secret rules to the pods of the apps' namespaces
// (where ExternalSecrets may sync private paths): on create the binding of a pod's owner and the
// Secrets it may use, on an update of its spec (a new image) and on new ephemeral containers also
// that an untrusted requester is the user of every private Secret it uses, and on exec, attach
// and port-forward the same of the pod in the webhook's cache.
func AdmitPodSecrets(ctx context.Context, p *Policy, req *Request, pod, old *corev1.Pod) Outcome {
	action := ""
	switch {
	case req.Operation == Connect:
		if refusal := ValidatePodConnect(ctx, req.Facts.PrivateSecrets, req.Facts.Pods, req); refusal != nil {
			return Outcome{Refusal: refusal}
		}
		return Outcome{Skip: "the pod uses no Secret private to another user"}
	case req.Operation == Create && req.SubResource == "":
		old = nil
	case req.Operation == Update && req.SubResource == "ephemeralcontainers":
		action = "add debug containers to this pod"
	case req.Operation == Update && req.SubResource == "":
		if equality.Semantic.DeepEqual(old.Spec, pod.Spec) {
			return Outcome{Skip: "labels and annotations change nothing a container runs"}
		}
		action = "change this pod"
	default:
		return Outcome{Skip: "the user-private Secret rules judge pods on create, update, ephemeral containers and connect only"}
	}
	var oldMeta *metav1.ObjectMeta
	if old != nil {
		oldMeta = &old.ObjectMeta
	}
	_, isEngine := p.Engines.Match(&pod.ObjectMeta, &pod.Spec)
	return p.admitPrivateSecrets(ctx, req, "pod", &pod.ObjectMeta, oldMeta, &pod.Spec, nil, isEngine && daemonSetPod(&pod.ObjectMeta), action)
}

// AdmitWorkloadSecrets applies the user-private Secret rules to the pod templates of the
// workloads of the apps' namespaces, when they are created or their template changes: the
// binding of the template's owner, the Secrets its pods may use, no private Secret in a shared
// engine (an engine DaemonSet's), and on update that an untrusted requester is the user of every
// private Secret it uses (they could change the command to print it).
func AdmitWorkloadSecrets(ctx context.Context, p *Policy, req *Request, obj, old metav1.Object) Outcome {
	tmpl, root, _ := PodTemplate(obj)
	if tmpl == nil || old != nil && equality.Semantic.DeepEqual(WorkloadTemplate(old), WorkloadTemplate(obj)) {
		return Outcome{Skip: "the pod template is as it was"}
	}
	var oldMeta *metav1.ObjectMeta
	action := ""
	if old != nil {
		if prev, _, _ := PodTemplate(old); prev != nil {
			oldMeta = &prev.ObjectMeta
		}
		action = "change this pod template"
	}
	_, isEngine := p.Engines.Match(&tmpl.ObjectMeta, &tmpl.Spec)
	_, daemonSet := obj.(*appsv1.DaemonSet)
	return p.admitPrivateSecrets(ctx, req, "pod template", &tmpl.ObjectMeta, oldMeta, &tmpl.Spec, root, isEngine && daemonSet, action)
}

// admitPrivateSecrets judges one pod or pod template (root nil for a pod): the binding of its
// owner (oldMeta nil on create) and ValidatePrivateSecrets, with the requester's action when a
// requester who may not record others changes it.
func (p *Policy) admitPrivateSecrets(ctx context.Context, req *Request, what string, meta, oldMeta *metav1.ObjectMeta, spec *corev1.PodSpec, root *field.Path, shared bool, action string) Outcome {
	errs := ValidateOwner(oldMeta, meta, root, req.User, MayRecordOthers(req))
	refs, unknown := p.SecretReferences(meta, spec, root)
	c := PrivateSecretCheck{
		Namespace: req.Namespace, What: what, Owner: Owner(meta),
		OwnerPath: root.Child("metadata", "annotations").Key(AnnotationInitiatorID),
		Shared:    shared, Refs: refs, Unknown: unknown,
	}
	if action != "" && !MayRecordOthers(req) {
		c.Requester, c.Action = req.User, action
	}
	private, refusal := ValidatePrivateSecrets(ctx, req.Facts.PrivateSecrets, c)
	if refusal != nil {
		return Outcome{Refusal: refusal}
	}
	out := Outcome{Group: RuleIntegrity}
	out.Add(RuleIntegrity, append(errs, private...))
	return out
}

// daemonSetPod tells whether a pod is a DaemonSet's, by its controller reference: such an engine
// serves every user of its node. A forged reference only makes the rules stricter.
func daemonSetPod(meta *metav1.ObjectMeta) bool {
	ref := metav1.GetControllerOfNoCopy(meta)
	return ref != nil && ref.Kind == "DaemonSet" && strings.HasPrefix(ref.APIVersion, "apps/")
}

// admitSecretObjectPrivacy applies the user-private Secret rules to an ExternalSecret or
// PushSecret whose spec is created or changed: it reads no Secret private to another user than
// its initiator, and an ExternalSecret writes into none, makes none private that pods of other
// owners use, and owns the Secret it makes private (creationPolicy Owner), so that the Secret
// goes when it goes. An ExternalSecret that reads private paths needs an index that holds every
// ExternalSecret, so that the Secret it writes is known private before any pod can use it. The
// warnings say where the rules of pods do not hold.
func (p *Policy) admitSecretObjectPrivacy(ctx context.Context, req *Request, obj *SecretObject) (field.ErrorList, []string, *Refusal) {
	lookup := req.Facts.PrivateSecrets
	if lookup == nil {
		return nil, nil, nil
	}
	initiator := obj.GetAnnotations()[AnnotationInitiatorID]
	var users []string
	if obj.ExternalSecret != nil {
		users = ExternalSecretUsers(obj.ExternalSecret)
		if len(users) > 0 {
			if err := lookup.Watching(ctx, KindExternalSecret); err != nil {
				return nil, nil, privateIndexUnavailable(err)
			}
		}
	}
	if obj.PushSecret != nil {
		// Only a PushSecret the index holds is known to an ExternalSecret that later makes the
		// Secret it pushes private (ValidateSecretTarget).
		if err := lookup.Watching(ctx, KindPushSecret); err != nil {
			return nil, nil, privateIndexUnavailable(err)
		}
	}
	reads := SecretReads(obj)
	errs, refusal := ValidateSecretReads(ctx, lookup, req.Namespace, initiator, reads)
	if refusal != nil {
		return errs, nil, refusal
	}
	if obj.PushSecret != nil {
		// A PushSecret of its initiator's private Secret renders it with its template.
		pushed, err := withSecretUsers(ctx, lookup, req.Namespace, nil, readNames(reads)...)
		if err != nil {
			return nil, nil, privateIndexUnavailable(err)
		}
		template, refusal := validatePrivateTemplate(ctx, lookup, req.Namespace, initiator, obj, pushed)
		return append(errs, template...), nil, refusal
	}
	if obj.ExternalSecret == nil {
		return errs, nil, nil
	}
	// What it templates from private Secrets makes its target private too.
	users, err := withSecretUsers(ctx, lookup, req.Namespace, users, readNames(reads)...)
	if err != nil {
		return nil, nil, privateIndexUnavailable(err)
	}
	template, refusal := validatePrivateTemplate(ctx, lookup, req.Namespace, initiator, obj, users)
	if refusal != nil {
		return nil, nil, refusal
	}
	errs = append(errs, template...)
	if creation, _, _ := unstructured.NestedString(obj.Object, "spec", "target", "creationPolicy"); len(users) > 0 && creation != "" && creation != "Owner" {
		// Only a Secret the ExternalSecret owns goes with it (the garbage collector deletes it):
		// one that outlives it would be private to nobody the index knows.
		errs = append(errs, field.NotSupported(field.NewPath("spec", "target", "creationPolicy"), creation, []string{"Owner"}))
		errs[len(errs)-1].Detail = fmt.Sprintf("this ExternalSecret syncs private paths of %s, and with creationPolicy %s the Secret it writes would outlive it (Orphan), or not be its own (Merge, None): once the ExternalSecret is gone nothing would mark the Secret private, and any pod could use it; keep the default, Owner",
			userList(users), creation)
	}
	write := SecretWrites(obj)[0]
	target, path := write.Name, write.Field
	targetErrs, refusal := ValidateSecretTarget(ctx, lookup, req.Facts.Pods, SecretTargetCheck{
		Namespace: req.Namespace, Name: obj.GetName(), Initiator: initiator, Field: path, Target: target, Private: users})
	if refusal != nil {
		return nil, nil, refusal
	}
	var warnings []string
	if len(users) > 0 && p.Exempt(req.Namespace) {
		warnings = append(warnings, fmt.Sprintf("namespace %s is exempt by the ISSPolicy, where pods are not checked: Secret %q, synced from private paths of %s, is not kept from the pods of other users there", req.Namespace, target, userList(users)))
	}
	return append(errs, targetErrs...), warnings, nil
}
