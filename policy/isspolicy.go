package policy

import (
	"fmt"
	"github.com/distribution/reference"
	"maps"
	"net/netip"
	"net/url"
	posixpath "path"
	"regexp"
	"slices"
	"strings"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
)

// FromISSPolicy returns the policy that an ISSPolicy spec describes: the built-in default,
// overridden field by field by what the spec sets. A section or field left out keeps its
// default; a list that is set replaces the default list. The errors name every invalid field
// with its path under spec, all at once; the policy is nil when there are any.
//
// The API server fills in the CRD's defaults, which equal Default(), before the webhook reads
// an object; the merge here gives the same result for objects it never saw (issctl --policy).
func FromISSPolicy(spec *v1alpha1.ISSPolicySpec) (*Policy, field.ErrorList) {
	p := Default()
	root := field.NewPath("spec")
	var errs field.ErrorList
	if spec == nil {
		return p, nil
	}
	if e := spec.Enforcement; e != nil {
		path := root.Child("enforcement")
		for _, g := range RuleGroups() {
			if g.Mode == nil {
				continue
			}
			switch mode := *g.Mode(e); mode {
			case "":
			case v1alpha1.Enforce, v1alpha1.Warn, v1alpha1.Audit:
				p.Enforcement[g.Group] = mode
			default:
				errs = append(errs, field.NotSupported(path.Child(string(g.Group)), mode, []string{string(v1alpha1.Enforce), string(v1alpha1.Warn), string(v1alpha1.Audit)}))
			}
		}
	}
	if spec.ExemptNamespaces != nil {
		p.ExemptNamespaces = slices.Clone(spec.ExemptNamespaces)
		for i, ns := range spec.ExemptNamespaces {
			for _, msg := range validation.IsDNS1123Label(ns) {
				errs = append(errs, field.Invalid(root.Child("exemptNamespaces").Index(i), ns, msg))
			}
		}
	}
	if t := spec.TrustedIdentities; t != nil {
		path := root.Child("trustedIdentities")
		setList(&p.TrustedIdentities.Users, t.Users)
		setList(&p.TrustedIdentities.Groups, t.Groups)
		setList(&p.TrustedIdentities.ServiceAccounts, t.ServiceAccounts)
		for i, sa := range p.TrustedIdentities.ServiceAccounts {
			ns, name, ok := strings.Cut(sa, "/")
			if !ok || len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
				errs = append(errs, field.Invalid(path.Child("serviceAccounts").Index(i), sa, "must be namespace/name, such as kube-system/namespace-controller"))
			}
		}
	}
	errs = append(errs, mergeEngines(&p.Engines, spec.Engines, root.Child("engines"))...)
	errs = append(errs, mergeSecrets(&p.Secrets, spec.Secrets, root.Child("secrets"))...)
	errs = append(errs, mergeOpenBao(&p.OpenBao, spec.OpenBao, root.Child("openbao"))...)
	errs = append(errs, mergeNetwork(&p.Network, spec.Network, root.Child("network"))...)
	errs = append(errs, mergeAutoscaling(&p.Autoscaling, spec.Autoscaling, root.Child("autoscaling"))...)
	errs = append(errs, mergeTemporal(&p.TemporalWorkers, spec.TemporalWorkers, root.Child("temporalWorkers"))...)
	errs = append(errs, mergeProvisioning(&p.Provisioning, spec.Provisioning, root.Child("provisioning"))...)
	if len(errs) > 0 {
		return nil, errs
	}
	return p, nil
}

// mergeProvisioning overrides the provisioning section field by field.
func mergeProvisioning(pp *ProvisioningPolicy, s *v1alpha1.Provisioning, path *field.Path) field.ErrorList {
	if s == nil {
		return nil
	}
	var errs field.ErrorList
	setList(&pp.ApprovedBackends, s.ApprovedBackends)
	for i, b := range s.ApprovedBackends {
		u, err := url.Parse(b)
		if err != nil || !slices.Contains([]string{"s3", "gs", "azblob"}, u.Scheme) || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			errs = append(errs, field.Invalid(path.Child("approvedBackends").Index(i), b, "must be scheme://bucket with scheme s3, gs or azblob, such as s3://acme-tf-state"))
		}
	}
	setList(&pp.ApprovedStorageAccounts, s.ApprovedStorageAccounts)
	for i, a := range s.ApprovedStorageAccounts {
		if !storageAccountName.MatchString(a) {
			errs = append(errs, field.Invalid(path.Child("approvedStorageAccounts").Index(i), a, "must be an Azure storage account name: 3 to 24 lower-case letters and digits, such as acmetfstate"))
		}
	}
	setList(&pp.AllowedEnv, s.AllowedEnv)
	for i, n := range s.AllowedEnv {
		if !envNamePattern.MatchString(n) {
			errs = append(errs, field.Invalid(path.Child("allowedEnv").Index(i), n, "must be a variable's name, or a prefix ending in *, such as AWS_REGION or TF_VAR_*"))
		} else if f, ok := redirectingEnv(n); ok {
			errs = append(errs, field.Forbidden(path.Child("allowedEnv").Index(i), fmt.Sprintf("would allow %s, which sends the state away from the approved backends or changes its encryption: leave it out", f)))
		}
	}
	setList(&pp.AllowedImages, s.AllowedImages)
	for i, img := range s.AllowedImages {
		repo, prefix := strings.CutSuffix(img, "*")
		if repo == "" || (!prefix && ImageRepository(repo) != repo) || strings.ContainsAny(repo, "@*") {
			errs = append(errs, field.Invalid(path.Child("allowedImages").Index(i), img, "must be a repository as a registry client resolves it, or a prefix of one ending in *, such as docker.io/pulumi/pulumi or ghcr.io/acme/tf-runner-*"))
		}
	}
	pp.AllowEnvFrom = s.AllowEnvFrom
	return errs
}

// storageAccountName and envNamePattern are the CRD's patterns of approvedStorageAccounts and
// allowedEnv, for issctl check, which does not run the schema.
var (
	storageAccountName = regexp.MustCompile(`^[a-z0-9]{3,24}$`)
	envNamePattern     = regexp.MustCompile(`^[-._a-zA-Z][-._a-zA-Z0-9]*\*?$`)
)

// redirectingEnv are variables that always send the state away from the approved backends or
// change its encryption (and those that start with them): allowedEnv may not allow them, nor
// hold a prefix that covers one. The CRD's CEL rule of allowedEnv says the same.
func redirectingEnv(n string) (string, bool) {
	for _, f := range []string{"PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "AWS_ENDPOINT_URL", "TF_CLI_ARGS", "TF_CLI_CONFIG_FILE", "TF_ENCRYPTION"} {
		if strings.HasPrefix(n, f) {
			return f, true
		}
		if prefix, ok := strings.CutSuffix(n, "*"); ok && strings.HasPrefix(f, prefix) {
			return f, true
		}
	}
	return "", false
}

// mergeTemporal overrides the Temporal workers section field by field.
func mergeTemporal(t *TemporalPolicy, s *v1alpha1.TemporalWorkers, path *field.Path) field.ErrorList {
	if s == nil {
		return nil
	}
	var errs field.ErrorList
	if s.Selector != nil {
		if err := t.SetSelector(s.Selector); err != nil {
			errs = append(errs, field.Invalid(path.Child("selector"), s.Selector, err.Error()))
		}
	}
	setDuration(&t.BuildRecordRetention, s.BuildRecordRetention)
	if t.BuildRecordRetention < time.Minute {
		errs = append(errs, field.Invalid(path.Child("buildRecordRetention"), t.BuildRecordRetention.String(), "must be at least 1m; keep it longer than a build's workflows may run, such as the default 720h (30 days)"))
	}
	if s.AllowImageTags != nil {
		t.AllowImageTags = *s.AllowImageTags
	}
	return errs
}

// setList replaces *dst with a copy of src when src is set (an empty list too).
func setList[T any](dst *[]T, src []T) {
	if src != nil {
		*dst = slices.Clone(src)
	}
}

// setString replaces *dst with src when src is set.
func setString[T ~string](dst *T, src T) {
	if src != "" {
		*dst = src
	}
}

// setDuration replaces *dst with src when src is set.
func setDuration(dst *time.Duration, src *metav1.Duration) {
	if src != nil {
		*dst = src.Duration
	}
}

// The resources a quota profile sets, each as a request and a limit.
var profileResources = []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage}

func mergeEngines(e *EnginePolicy, s *v1alpha1.Engines, path *field.Path) field.ErrorList {
	if s == nil {
		return nil
	}
	var errs field.ErrorList
	if s.Labels != nil {
		e.Labels = maps.Clone(s.Labels)
		errs = append(errs, validateLabels(s.Labels, path.Child("labels"))...)
	}
	if s.Images != nil {
		e.Images = make([]string, len(s.Images))
		for i, img := range s.Images {
			e.Images[i] = ImageRepository(img)
			if named, err := reference.ParseNormalizedNamed(img); err != nil || !reference.IsNameOnly(named) {
				errs = append(errs, field.Invalid(path.Child("images").Index(i), img, "must be an image repository without tag or digest, such as registry.dagger.io/engine"))
			}
		}
	}
	setString(&e.ContainerName, s.ContainerName)
	for _, msg := range validation.IsDNS1123Label(e.ContainerName) {
		errs = append(errs, field.Invalid(path.Child("containerName"), e.ContainerName, msg))
	}
	if s.Profiles != nil {
		e.Profiles = nil
		seen := map[string]bool{}
		for i, sp := range s.Profiles {
			pp := path.Child("profiles").Index(i)
			if seen[sp.Name] {
				errs = append(errs, field.Duplicate(pp.Child("name"), sp.Name))
			}
			seen[sp.Name] = true
			for _, msg := range validation.IsDNS1123Label(sp.Name) {
				errs = append(errs, field.Invalid(pp.Child("name"), sp.Name, msg))
			}
			profile, profileErrs := profileFromSpec(sp, pp)
			errs = append(errs, profileErrs...)
			e.Profiles = append(e.Profiles, profile)
		}
		if len(s.Profiles) == 0 {
			errs = append(errs, field.Required(path.Child("profiles"), "list at least one quota profile"))
		}
	}
	setString(&e.DefaultProfile, s.DefaultProfile)
	if e.Profile(e.DefaultProfile) == nil {
		errs = append(errs, field.NotSupported(path.Child("defaultProfile"), e.DefaultProfile, e.ProfileNames()))
	}
	setString(&e.SecretsMountPath, s.SecretMountPath)
	if !posixpath.IsAbs(e.SecretsMountPath) || posixpath.Clean(e.SecretsMountPath) != e.SecretsMountPath {
		errs = append(errs, field.Invalid(path.Child("secretMountPath"), e.SecretsMountPath, "must be a clean absolute path, such as /var/run/secrets/iss"))
	}
	errs = append(errs, mergeEngineVolumes(&e.Volumes, s.Volumes, path.Child("volumes"))...)
	return errs
}

func mergeEngineVolumes(v *VolumePolicy, s *v1alpha1.EngineVolumes, path *field.Path) field.ErrorList {
	if s == nil {
		return nil
	}
	var errs field.ErrorList
	if s.AllowedTypes != nil {
		v.AllowedTypes = slices.Clone(s.AllowedTypes)
		for i, t := range s.AllowedTypes {
			if !slices.Contains(volumeTypes, t) {
				errs = append(errs, field.NotSupported(path.Child("allowedTypes").Index(i), t, volumeTypes))
			}
		}
	}
	if s.HostPathPrefixes != nil {
		v.HostPathPrefixes = slices.Clone(s.HostPathPrefixes)
		for i, p := range s.HostPathPrefixes {
			if !posixpath.IsAbs(p) || posixpath.Clean(p) != p || p == "/" {
				errs = append(errs, field.Invalid(path.Child("hostPathPrefixes").Index(i), p, "must be a clean absolute directory other than /, such as /var/lib/dagger"))
			}
		}
	}
	return errs
}

// profileResourceList parses a profile's requests or limits, which are quantities written as
// strings, each of which must be above zero.
func profileResourceList(r v1alpha1.ProfileResources, path *field.Path) (corev1.ResourceList, field.ErrorList) {
	var errs field.ErrorList
	list := corev1.ResourceList{}
	for name, value := range map[corev1.ResourceName]string{corev1.ResourceCPU: r.CPU, corev1.ResourceMemory: r.Memory, corev1.ResourceEphemeralStorage: r.EphemeralStorage} {
		q, err := resource.ParseQuantity(value)
		switch {
		case value == "":
			errs = append(errs, field.Required(path.Child(string(name)), "a profile sets a request and a limit of cpu, memory and ephemeral-storage"))
		case err != nil:
			errs = append(errs, field.Invalid(path.Child(string(name)), value, "must be a quantity, such as 500m, 2 or 4Gi"))
		case q.Sign() <= 0:
			errs = append(errs, field.Invalid(path.Child(string(name)), value, "must be above zero"))
		default:
			list[name] = q
		}
	}
	slices.SortFunc(errs, func(a, b *field.Error) int { return strings.Compare(a.Field, b.Field) })
	return list, errs
}

// profileFromSpec returns the profile of an ISSPolicy profile, or every invalid field: each
// request and limit a quantity above zero, and no request above its limit.
func profileFromSpec(sp v1alpha1.Profile, path *field.Path) (Profile, field.ErrorList) {
	requests, errs := profileResourceList(sp.Requests, path.Child("requests"))
	limits, limitErrs := profileResourceList(sp.Limits, path.Child("limits"))
	errs = append(errs, limitErrs...)
	for _, r := range profileResources {
		req, hasReq := requests[r]
		lim, hasLim := limits[r]
		if hasReq && hasLim && req.Cmp(lim) > 0 {
			errs = append(errs, field.Invalid(path.Child("requests", string(r)), req.String(), fmt.Sprintf("is above the limit %s: a request may not exceed its limit", lim.String())))
		}
	}
	pr := Profile{Name: sp.Name, Requests: requests, Limits: limits}
	for i, name := range sp.AllowedResources {
		for _, msg := range validation.IsQualifiedName(name) {
			errs = append(errs, field.Invalid(path.Child("allowedResources").Index(i), name, msg+": name a resource, such as nvidia.com/gpu"))
		}
		pr.AllowedResources = append(pr.AllowedResources, corev1.ResourceName(name))
	}
	return pr, errs
}

// profileToSpec returns a profile as an ISSPolicy profile.
func profileToSpec(p Profile) v1alpha1.Profile {
	toSpec := func(l corev1.ResourceList) v1alpha1.ProfileResources {
		q := func(name corev1.ResourceName) string {
			v := l[name]
			return v.String()
		}
		return v1alpha1.ProfileResources{CPU: q(corev1.ResourceCPU), Memory: q(corev1.ResourceMemory), EphemeralStorage: q(corev1.ResourceEphemeralStorage)}
	}
	var allowed []string
	for _, r := range p.AllowedResources {
		allowed = append(allowed, string(r))
	}
	return v1alpha1.Profile{Name: p.Name, Requests: toSpec(p.Requests), Limits: toSpec(p.Limits), AllowedResources: allowed}
}

// validateLabels checks label keys and values.
func validateLabels(labels map[string]string, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, msg := range validation.IsQualifiedName(k) {
			errs = append(errs, field.Invalid(path.Key(k), k, msg))
		}
		for _, msg := range validation.IsValidLabelValue(labels[k]) {
			errs = append(errs, field.Invalid(path.Key(k), labels[k], msg))
		}
	}
	return errs
}

func mergeSecrets(sp *SecretsPolicy, s *v1alpha1.Secrets, path *field.Path) field.ErrorList {
	if s == nil {
		return nil
	}
	var errs field.ErrorList
	setString(&sp.PathRoot, s.PathRoot)
	if reason := checkPathSegment(sp.PathRoot, false); reason != "" {
		errs = append(errs, field.Invalid(path.Child("pathRoot"), sp.PathRoot, reason))
	}
	if s.Environments != nil {
		sp.Environments = map[string]SecretEnvironment{}
		for i, env := range s.Environments {
			ep := path.Child("environments").Index(i)
			if _, dup := sp.Environments[env.Name]; dup {
				errs = append(errs, field.Duplicate(ep.Child("name"), env.Name))
			}
			for _, msg := range validation.IsDNS1123Label(env.Name) {
				errs = append(errs, field.Invalid(ep.Child("name"), env.Name, msg))
			}
			kind := env.Store.Kind
			if kind == "" {
				kind = "ClusterSecretStore"
			}
			if kind != "ClusterSecretStore" && kind != "SecretStore" {
				errs = append(errs, field.NotSupported(ep.Child("store", "kind"), kind, []string{"ClusterSecretStore", "SecretStore"}))
			}
			if env.Store.Name == "" {
				errs = append(errs, field.Required(ep.Child("store", "name"), "name the environment's store, such as openbao-"+env.Name))
			}
			if env.Mount == "" {
				errs = append(errs, field.Required(ep.Child("mount"), "name the environment's OpenBao KV v2 mount, such as kv-"+env.Name))
			}
			sp.Environments[env.Name] = SecretEnvironment{Store: StoreRef{Kind: kind, Name: env.Store.Name}, Mount: env.Mount}
		}
	}
	setList(&sp.AllowedGeneratorKinds, s.AllowedGeneratorKinds)
	for i, kind := range sp.AllowedGeneratorKinds {
		switch {
		case kind == ClusterGeneratorKind:
			errs = append(errs, field.Forbidden(path.Child("allowedGeneratorKinds").Index(i), "a ClusterGenerator wraps a generator of any kind, which the rules cannot see: allow the namespaced kind it would wrap instead"))
		case !slices.Contains(GeneratorKindNames(), kind):
			errs = append(errs, field.NotSupported(path.Child("allowedGeneratorKinds").Index(i), kind, GeneratorKindNames()))
		}
	}
	setList(&sp.AllowedStoreProviders, s.AllowedStoreProviders)
	for i, provider := range sp.AllowedStoreProviders {
		if !slices.Contains(StoreProviders(), provider) {
			errs = append(errs, field.NotSupported(path.Child("allowedStoreProviders").Index(i), provider, StoreProviders()))
		}
	}
	return errs
}

func mergeOpenBao(o *OpenBaoPolicy, s *v1alpha1.OpenBao, path *field.Path) field.ErrorList {
	if s == nil {
		return nil
	}
	var errs field.ErrorList
	o.Verify = s.Verify
	setString(&o.Address, s.Address)
	if a := s.Auth; a != nil {
		setString(&o.AuthMethod, a.Method)
		setString(&o.KubernetesMount, a.KubernetesMount)
		setString(&o.KubernetesRole, a.Role)
	}
	setDuration(&o.Timeout, s.Timeout)
	if c := s.CacheTTL; c != nil {
		setDuration(&o.HitTTL, c.Hit)
		setDuration(&o.MissTTL, c.Miss)
	}
	setString(&o.OnUnavailable, OnUnavailable(s.OnUnavailable))

	if o.Address != "" {
		if u, err := url.Parse(o.Address); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, field.Invalid(path.Child("address"), o.Address, "must be an http or https URL, such as https://openbao.openbao.svc:8200"))
		}
	} else if o.Verify {
		errs = append(errs, field.Required(path.Child("address"), "verify needs the address of OpenBao, such as https://openbao.openbao.svc:8200"))
	}
	switch o.AuthMethod {
	case AuthKubernetes, AuthToken:
	default:
		errs = append(errs, field.NotSupported(path.Child("auth", "method"), o.AuthMethod, []string{AuthKubernetes, AuthToken}))
	}
	if o.Timeout <= 0 || o.Timeout > 4*time.Second {
		errs = append(errs, field.Invalid(path.Child("timeout"), o.Timeout.String(), "must be above 0s and at most 4s, within the API server's 5s webhook timeout"))
	}
	if o.HitTTL < 0 {
		errs = append(errs, field.Invalid(path.Child("cacheTTL", "hit"), o.HitTTL.String(), "must not be negative"))
	}
	if o.MissTTL < 0 {
		errs = append(errs, field.Invalid(path.Child("cacheTTL", "miss"), o.MissTTL.String(), "must not be negative"))
	}
	if o.OnUnavailable != UnavailableDeny && o.OnUnavailable != UnavailableWarn {
		errs = append(errs, field.NotSupported(path.Child("onUnavailable"), o.OnUnavailable, []string{string(UnavailableDeny), string(UnavailableWarn)}))
	}
	return errs
}

func mergeNetwork(n *NetworkSection, s *v1alpha1.Network, path *field.Path) field.ErrorList {
	if s == nil {
		return nil
	}
	var errs field.ErrorList
	setString(&n.FQDNBackend, FQDNBackend(s.FQDNBackend))
	switch n.FQDNBackend {
	case BackendAuto, BackendCilium, BackendClusterNetworkPolicy, BackendNone:
	default:
		errs = append(errs, field.NotSupported(path.Child("fqdnBackend"), n.FQDNBackend,
			[]string{string(BackendAuto), string(BackendCilium), string(BackendClusterNetworkPolicy), string(BackendNone)}))
	}
	if d := s.DNS; d != nil {
		setString(&n.DNSNamespace, d.Namespace)
		for _, msg := range validation.IsDNS1123Label(n.DNSNamespace) {
			errs = append(errs, field.Invalid(path.Child("dns", "namespace"), n.DNSNamespace, msg))
		}
		if d.PodSelector != nil {
			n.DNSPodLabels = maps.Clone(d.PodSelector)
			errs = append(errs, validateLabels(d.PodSelector, path.Child("dns", "podSelector"))...)
			if len(d.PodSelector) == 0 {
				errs = append(errs, field.Required(path.Child("dns", "podSelector"), "select the DNS pods, such as k8s-app: kube-dns"))
			}
		}
		if d.Ports != nil {
			n.DNSPorts = slices.Clone(d.Ports)
			for i, port := range d.Ports {
				if port < 1 || port > 65535 {
					errs = append(errs, field.Invalid(path.Child("dns", "ports").Index(i), port, "must be a port from 1 to 65535"))
				}
			}
			if len(d.Ports) == 0 {
				errs = append(errs, field.Required(path.Child("dns", "ports"), "list the DNS ports, such as 53"))
			}
		}
	}
	if s.ClusterNetworkPolicyPriority != nil {
		n.ClusterNetworkPolicyPriority = *s.ClusterNetworkPolicyPriority
		if n.ClusterNetworkPolicyPriority < 0 || n.ClusterNetworkPolicyPriority > 1000 {
			errs = append(errs, field.Invalid(path.Child("clusterNetworkPolicyPriority"), n.ClusterNetworkPolicyPriority, "must be from 0 to 1000"))
		}
	}
	setDuration(&n.GCGracePeriod, s.GCGracePeriod)
	if n.GCGracePeriod < time.Second {
		errs = append(errs, field.Invalid(path.Child("gcGracePeriod"), n.GCGracePeriod.String(), "must be at least 1s; keep it well above the time between admission and the pod's creation, such as the default 5m"))
	}
	if w := s.WildcardBases; w != nil {
		wp := path.Child("wildcardBases")
		setList(&n.WildcardBases.Allow, w.Allow)
		setList(&n.WildcardBases.Deny, w.Deny)
		errs = append(errs, validateWildcardBases(n.WildcardBases.Allow, wp.Child("allow"))...)
		errs = append(errs, validateWildcardBases(n.WildcardBases.Deny, wp.Child("deny"))...)
		for i, d := range n.WildcardBases.Allow {
			if slices.Contains(n.WildcardBases.Deny, d) {
				errs = append(errs, field.Invalid(wp.Child("allow").Index(i), d, "is in deny too, where it wins: remove it from one of the lists"))
			}
		}
	}
	if s.PrivateRanges != nil {
		rp := path.Child("privateRanges")
		n.PrivateRanges = nil
		seen := map[netip.Prefix]bool{}
		for i, r := range s.PrivateRanges {
			prefix, err := netip.ParsePrefix(r)
			switch {
			case err != nil:
				errs = append(errs, field.Invalid(rp.Index(i), r, "must be a CIDR, such as 10.0.0.0/8 or fc00::/7"))
				continue
			case prefix != prefix.Masked():
				errs = append(errs, field.Invalid(rp.Index(i), r, fmt.Sprintf("has bits set after the prefix: write %s", prefix.Masked())))
				continue
			case prefix.Addr().Zone() != "" || prefix.Addr().Is4In6():
				errs = append(errs, field.Invalid(rp.Index(i), r, "must be an IPv4 or IPv6 CIDR without zone or IPv4-mapped form, such as 10.0.0.0/8 or fc00::/7"))
				continue
			case seen[prefix]:
				errs = append(errs, field.Duplicate(rp.Index(i), r))
				continue
			}
			seen[prefix] = true
			n.PrivateRanges = append(n.PrivateRanges, prefix)
		}
		if len(s.PrivateRanges) == 0 {
			errs = append(errs, field.Required(rp, "list at least one range, such as 169.254.0.0/16, where the cloud metadata servers are"))
		}
		if len(s.PrivateRanges) > 25 {
			errs = append(errs, field.TooMany(rp, len(s.PrivateRanges), 25))
		}
	}
	return errs
}

// validateWildcardBases checks the domains of spec.network.wildcardBases: lower-case DNS names
// of at least two labels, as wildcard bases are written.
func validateWildcardBases(domains []string, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, d := range domains {
		labels := strings.Split(d, ".")
		if len(d) > 253 || len(labels) < 2 || slices.ContainsFunc(labels, func(l string) bool { return !isDNSLabel(l) }) {
			errs = append(errs, field.Invalid(path.Index(i), d, "must be a lower-case DNS name of at least two labels, with A-labels (punycode) for IDNs, such as amazonaws.com"))
		}
	}
	return errs
}

func mergeAutoscaling(a *AutoscalingPolicy, s *v1alpha1.Autoscaling, path *field.Path) field.ErrorList {
	if s == nil {
		return nil
	}
	var errs field.ErrorList
	if m := s.Metric; m != nil {
		mp := path.Child("metric")
		setString(&a.MetricType, m.Type)
		if a.MetricType != autoscalingv2.ExternalMetricSourceType && a.MetricType != autoscalingv2.PodsMetricSourceType {
			errs = append(errs, field.NotSupported(mp.Child("type"), a.MetricType, []string{string(autoscalingv2.ExternalMetricSourceType), string(autoscalingv2.PodsMetricSourceType)}))
		}
		setString(&a.MetricName, m.Name)
		setString(&a.SelectorLabel, m.SelectorLabel)
		for _, msg := range validation.IsQualifiedName(a.SelectorLabel) {
			errs = append(errs, field.Invalid(mp.Child("selectorLabel"), a.SelectorLabel, msg))
		}
		if m.Target != nil {
			a.Target = m.Target.DeepCopy()
			if a.Target.Sign() <= 0 {
				errs = append(errs, field.Invalid(mp.Child("target"), a.Target.String(), "must be above zero"))
			}
		}
	}
	if s.Behavior != nil {
		a.Behavior = *s.Behavior.DeepCopy()
		bp := path.Child("behavior")
		for _, dir := range []struct {
			name  string
			rules *autoscalingv2.HPAScalingRules
		}{{"scaleUp", a.Behavior.ScaleUp}, {"scaleDown", a.Behavior.ScaleDown}} {
			name, rules := dir.name, dir.rules
			if rules == nil {
				continue
			}
			if w := rules.StabilizationWindowSeconds; w != nil && (*w < 0 || *w > 3600) {
				errs = append(errs, field.Invalid(bp.Child(name, "stabilizationWindowSeconds"), *w, "must be from 0 to 3600"))
			}
			// The HPA's own API refuses other values: a policy with them would make every HPA
			// that gets this behavior fail to apply.
			if sp := rules.SelectPolicy; sp != nil && !slices.Contains([]autoscalingv2.ScalingPolicySelect{autoscalingv2.MaxChangePolicySelect, autoscalingv2.MinChangePolicySelect, autoscalingv2.DisabledPolicySelect}, *sp) {
				errs = append(errs, field.NotSupported(bp.Child(name, "selectPolicy"), *sp, []string{"Max", "Min", "Disabled"}))
			}
			if len(rules.Policies) == 0 && (rules.SelectPolicy == nil || *rules.SelectPolicy != autoscalingv2.DisabledPolicySelect) && name == "scaleUp" {
				errs = append(errs, field.Required(bp.Child(name, "policies"), "list at least one scaling policy, or set selectPolicy: Disabled"))
			}
			for i, pol := range rules.Policies {
				if pol.Type != autoscalingv2.PodsScalingPolicy && pol.Type != autoscalingv2.PercentScalingPolicy {
					errs = append(errs, field.NotSupported(bp.Child(name, "policies").Index(i).Child("type"), pol.Type, []string{"Pods", "Percent"}))
				}
				if pol.Value <= 0 {
					errs = append(errs, field.Invalid(bp.Child(name, "policies").Index(i).Child("value"), pol.Value, "must be above zero"))
				}
				if pol.PeriodSeconds <= 0 || pol.PeriodSeconds > 1800 {
					errs = append(errs, field.Invalid(bp.Child(name, "policies").Index(i).Child("periodSeconds"), pol.PeriodSeconds, "must be from 1 to 1800"))
				}
			}
		}
	}
	errs = append(errs, mergeAllowedMetrics(a, s.AllowedMetrics, path.Child("allowedMetrics"))...)
	errs = append(errs, mergeScaleTargets(a, s.ScaleTargets, path.Child("scaleTargets"))...)
	if m := s.MaxScaleUp; m != nil {
		mp := path.Child("maxScaleUp")
		a.MaxScaleUp = ScaleUpBound{Pods: ptr.Deref(m.Pods, 0), Percent: ptr.Deref(m.Percent, 0), PeriodSeconds: m.PeriodSeconds, StabilizationWindowSeconds: ptr.Deref(m.StabilizationWindowSeconds, 0)}
		if a.MaxScaleUp.PeriodSeconds == 0 {
			a.MaxScaleUp.PeriodSeconds = DefaultAutoscalingPolicy().MaxScaleUp.PeriodSeconds
		}
		b := a.MaxScaleUp
		if m.Pods == nil && m.Percent == nil {
			errs = append(errs, field.Required(mp, "set pods, percent or both: a bound without either bounds nothing"))
		}
		if m.Pods != nil && b.Pods < 1 {
			errs = append(errs, field.Invalid(mp.Child("pods"), b.Pods, "must be at least 1"))
		}
		if m.Percent != nil && b.Percent < 1 {
			errs = append(errs, field.Invalid(mp.Child("percent"), b.Percent, "must be at least 1"))
		}
		if b.PeriodSeconds < 1 || b.PeriodSeconds > 1800 {
			errs = append(errs, field.Invalid(mp.Child("periodSeconds"), b.PeriodSeconds, "must be from 1 to 1800, as an HPA's scaling policy period"))
		}
		if b.StabilizationWindowSeconds < 0 || b.StabilizationWindowSeconds > 3600 {
			errs = append(errs, field.Invalid(mp.Child("stabilizationWindowSeconds"), b.StabilizationWindowSeconds, "must be from 0 to 3600, as an HPA's stabilization window"))
		}
	}
	if len(errs) == 0 {
		// Every HPA without behavior gets the policy's: it must keep within the policy's own
		// bound, or each of them would be denied. Without scaleUp the API server fills in its own.
		rules := a.Behavior.ScaleUp
		if rules == nil {
			def := APIServerScaleUpRules()
			rules = &def
		}
		for _, e := range a.ValidateScaleUp(rules, path.Child("behavior", "scaleUp")) {
			e.Detail += "; the behavior HPAs get must keep within spec.autoscaling.maxScaleUp: change one or the other"
			errs = append(errs, e)
		}
	}
	return errs
}

// metricSourceTypes are the metric source types an HPA may name.
var metricSourceTypes = []autoscalingv2.MetricSourceType{
	autoscalingv2.ResourceMetricSourceType, autoscalingv2.ContainerResourceMetricSourceType, autoscalingv2.PodsMetricSourceType,
	autoscalingv2.ObjectMetricSourceType, autoscalingv2.ExternalMetricSourceType,
}

func mergeAllowedMetrics(a *AutoscalingPolicy, metrics []v1alpha1.AllowedMetric, path *field.Path) field.ErrorList {
	if metrics == nil {
		return nil
	}
	var errs field.ErrorList
	a.AllowedMetrics = make([]MetricRef, 0, len(metrics))
	for i, m := range metrics {
		p := path.Index(i)
		ref := MetricRef{Type: m.Type, Name: m.Name}
		switch {
		case !slices.Contains(metricSourceTypes, m.Type):
			errs = append(errs, field.NotSupported(p.Child("type"), m.Type, []string{"Resource", "ContainerResource", "Pods", "Object", "External"}))
		case m.Name == "":
			errs = append(errs, field.Required(p.Child("name"), "name the resource (cpu, memory) or the metric"))
		case ref == a.saturationRef():
			errs = append(errs, field.Invalid(p, ref.String(), "is the saturation metric, which every HPA has once with the policy's selector and target: remove it from the list"))
		case slices.Contains(a.AllowedMetrics, ref):
			errs = append(errs, field.Duplicate(p, ref.String()))
		}
		a.AllowedMetrics = append(a.AllowedMetrics, ref)
	}
	return errs
}

func mergeScaleTargets(a *AutoscalingPolicy, targets []v1alpha1.ScaleTarget, path *field.Path) field.ErrorList {
	if targets == nil {
		return nil
	}
	var errs field.ErrorList
	if len(targets) == 0 {
		errs = append(errs, field.Required(path, "name at least one kind, such as {group: apps, kind: Deployment}: without any, every HPA is denied"))
	}
	a.ScaleTargets = make([]schema.GroupKind, 0, len(targets))
	for i, t := range targets {
		p := path.Index(i)
		gk := schema.GroupKind{Group: t.Group, Kind: t.Kind}
		if t.Group != "" {
			for _, msg := range validation.IsDNS1123Subdomain(t.Group) {
				errs = append(errs, field.Invalid(p.Child("group"), t.Group, msg))
			}
		}
		if t.Kind == "" {
			errs = append(errs, field.Required(p.Child("kind"), "name the kind, such as Deployment"))
		}
		if slices.Contains(a.ScaleTargets, gk) {
			errs = append(errs, field.Duplicate(p, groupKindString(gk)))
		}
		a.ScaleTargets = append(a.ScaleTargets, gk)
	}
	return errs
}

// ToISSPolicy returns p as the ISSPolicy "default" with every field set: `issctl policy
// default` prints the built-in default with it, and FromISSPolicy turns the result back into p.
func ToISSPolicy(p *Policy) *v1alpha1.ISSPolicy {
	profiles := make([]v1alpha1.Profile, len(p.Engines.Profiles))
	for i, pr := range p.Engines.Profiles {
		profiles[i] = profileToSpec(pr)
	}
	envNames := make([]string, 0, len(p.Secrets.Environments))
	for name := range p.Secrets.Environments {
		envNames = append(envNames, name)
	}
	// dev, staging, prod first, in that order, then any others by name.
	order := func(n string) int {
		if i := slices.Index([]string{"dev", "staging", "prod"}, n); i >= 0 {
			return i
		}
		return 3
	}
	slices.SortFunc(envNames, func(a, b string) int {
		if oa, ob := order(a), order(b); oa != ob {
			return oa - ob
		}
		return strings.Compare(a, b)
	})
	envs := make([]v1alpha1.SecretEnvironment, len(envNames))
	for i, name := range envNames {
		e := p.Secrets.Environments[name]
		envs[i] = v1alpha1.SecretEnvironment{Name: name, Store: v1alpha1.StoreRef{Kind: e.Store.kind(), Name: e.Store.Name}, Mount: e.Mount}
	}
	target := p.Autoscaling.Target.DeepCopy()
	enforcement := &v1alpha1.Enforcement{}
	for _, g := range RuleGroups() {
		if g.Mode != nil {
			*g.Mode(enforcement) = p.Mode(g.Group)
		}
	}
	return &v1alpha1.ISSPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "ISSPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.PolicyName},
		Spec: v1alpha1.ISSPolicySpec{
			Enforcement:      enforcement,
			ExemptNamespaces: slices.Clone(p.ExemptNamespaces),
			TrustedIdentities: &v1alpha1.TrustedIdentities{
				Users: slices.Clone(p.TrustedIdentities.Users), Groups: slices.Clone(p.TrustedIdentities.Groups),
				ServiceAccounts: slices.Clone(p.TrustedIdentities.ServiceAccounts),
			},
			Engines: &v1alpha1.Engines{
				Labels: maps.Clone(p.Engines.Labels), Images: slices.Clone(p.Engines.Images), ContainerName: p.Engines.ContainerName,
				Profiles: profiles, DefaultProfile: p.Engines.DefaultProfile, SecretMountPath: p.Engines.SecretsMountPath,
				Volumes: &v1alpha1.EngineVolumes{
					AllowedTypes: slices.Clone(p.Engines.Volumes.AllowedTypes), HostPathPrefixes: slices.Clone(p.Engines.Volumes.HostPathPrefixes),
				},
			},
			Secrets: &v1alpha1.Secrets{
				PathRoot: p.Secrets.PathRoot, Environments: envs,
				AllowedGeneratorKinds: slices.Clone(p.Secrets.AllowedGeneratorKinds), AllowedStoreProviders: slices.Clone(p.Secrets.AllowedStoreProviders),
			},
			OpenBao: &v1alpha1.OpenBao{
				Verify: p.OpenBao.Verify, Address: p.OpenBao.Address,
				Auth: &v1alpha1.OpenBaoAuth{
					Method: p.OpenBao.AuthMethod, KubernetesMount: p.OpenBao.KubernetesMount, Role: p.OpenBao.KubernetesRole,
				},
				Timeout:       &metav1.Duration{Duration: p.OpenBao.Timeout},
				CacheTTL:      &v1alpha1.OpenBaoCacheTTL{Hit: &metav1.Duration{Duration: p.OpenBao.HitTTL}, Miss: &metav1.Duration{Duration: p.OpenBao.MissTTL}},
				OnUnavailable: v1alpha1.OnUnavailable(p.OpenBao.OnUnavailable),
			},
			Network: &v1alpha1.Network{
				FQDNBackend: v1alpha1.FQDNBackend(p.Network.FQDNBackend),
				DNS: &v1alpha1.DNS{
					Namespace: p.Network.DNSNamespace, PodSelector: maps.Clone(p.Network.DNSPodLabels), Ports: slices.Clone(p.Network.DNSPorts),
				},
				ClusterNetworkPolicyPriority: ptr.To(p.Network.ClusterNetworkPolicyPriority),
				GCGracePeriod:                &metav1.Duration{Duration: p.Network.GCGracePeriod},
				WildcardBases: &v1alpha1.WildcardBases{
					Allow: slices.Clone(p.Network.WildcardBases.Allow), Deny: slices.Clone(p.Network.WildcardBases.Deny),
				},
				PrivateRanges: p.Network.privateRangeStrings(),
			},
			Autoscaling: &v1alpha1.Autoscaling{
				Metric: &v1alpha1.SaturationMetric{
					Type: p.Autoscaling.MetricType, Name: p.Autoscaling.MetricName, SelectorLabel: p.Autoscaling.SelectorLabel, Target: &target,
				},
				Behavior:       p.Autoscaling.Behavior.DeepCopy(),
				AllowedMetrics: allowedMetricsToSpec(p.Autoscaling.AllowedMetrics),
				MaxScaleUp:     scaleUpBoundToSpec(p.Autoscaling.MaxScaleUp),
				ScaleTargets:   scaleTargetsToSpec(p.Autoscaling.ScaleTargets),
			},
			TemporalWorkers: &v1alpha1.TemporalWorkers{
				Selector:             p.TemporalWorkers.Selector.DeepCopy(),
				BuildRecordRetention: &metav1.Duration{Duration: p.TemporalWorkers.BuildRecordRetention},
				AllowImageTags:       ptr.To(p.TemporalWorkers.AllowImageTags),
			},
			Provisioning: &v1alpha1.Provisioning{
				ApprovedBackends: slices.Clone(p.Provisioning.ApprovedBackends), ApprovedStorageAccounts: slices.Clone(p.Provisioning.ApprovedStorageAccounts),
				AllowedEnv: slices.Clone(p.Provisioning.AllowedEnv), AllowedImages: slices.Clone(p.Provisioning.AllowedImages),
				AllowEnvFrom: p.Provisioning.AllowEnvFrom,
			},
		},
	}
}

func allowedMetricsToSpec(refs []MetricRef) []v1alpha1.AllowedMetric {
	if len(refs) == 0 {
		return nil
	}
	out := make([]v1alpha1.AllowedMetric, len(refs))
	for i, r := range refs {
		out[i] = v1alpha1.AllowedMetric{Type: r.Type, Name: r.Name}
	}
	return out
}

func scaleUpBoundToSpec(b ScaleUpBound) *v1alpha1.ScaleUpBound {
	opt := func(v int32) *int32 {
		if v == 0 {
			return nil
		}
		return ptr.To(v)
	}
	return &v1alpha1.ScaleUpBound{Pods: opt(b.Pods), Percent: opt(b.Percent), PeriodSeconds: b.PeriodSeconds, StabilizationWindowSeconds: ptr.To(b.StabilizationWindowSeconds)}
}

func scaleTargetsToSpec(targets []schema.GroupKind) []v1alpha1.ScaleTarget {
	out := make([]v1alpha1.ScaleTarget, len(targets))
	for i, t := range targets {
		out[i] = v1alpha1.ScaleTarget{Group: t.Group, Kind: t.Kind}
	}
	return out
}
