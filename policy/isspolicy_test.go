package policy

import (
	"net/netip"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
)

// samePolicy compares policies through their ISSPolicy form, which holds every field.
func samePolicy(t *testing.T, got, want *Policy) {
	t.Helper()
	gotYAML, err := yaml.Marshal(ToISSPolicy(got))
	if err != nil {
		t.Fatal(err)
	}
	wantYAML, err := yaml.Marshal(ToISSPolicy(want))
	if err != nil {
		t.Fatal(err)
	}
	if string(gotYAML) != string(wantYAML) {
		t.Errorf("policies differ:\ngot:\n%s\nwant:\n%s", gotYAML, wantYAML)
	}
}

func TestEmptyISSPolicyIsTheDefault(t *testing.T) {
	for name, spec := range map[string]*v1alpha1.ISSPolicySpec{"nil": nil, "empty": {}, "empty sections": {
		Enforcement: &v1alpha1.Enforcement{}, TrustedIdentities: &v1alpha1.TrustedIdentities{}, Engines: &v1alpha1.Engines{},
		Secrets: &v1alpha1.Secrets{}, OpenBao: &v1alpha1.OpenBao{}, Network: &v1alpha1.Network{}, Autoscaling: &v1alpha1.Autoscaling{},
		TemporalWorkers: &v1alpha1.TemporalWorkers{}, Provisioning: &v1alpha1.Provisioning{},
	}} {
		t.Run(name, func(t *testing.T) {
			got, errs := FromISSPolicy(spec)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			samePolicy(t, got, Default())
		})
	}
}

func TestDefaultRoundTrips(t *testing.T) {
	obj := ToISSPolicy(Default())
	// Through YAML, as issctl policy default prints it and kubectl applies it.
	data, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	back := &v1alpha1.ISSPolicy{}
	if err := yaml.UnmarshalStrict(data, back); err != nil {
		t.Fatal(err)
	}
	got, errs := FromISSPolicy(&back.Spec)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	samePolicy(t, got, Default())
}

func TestISSPolicyOverridesFieldByField(t *testing.T) {
	spec := &v1alpha1.ISSPolicySpec{
		Enforcement:      &v1alpha1.Enforcement{EnginePods: v1alpha1.Warn},
		ExemptNamespaces: []string{"legacy"},
		Engines:          &v1alpha1.Engines{Images: []string{"registry.dagger.io/engine", "ghcr.io/acme/engine"}},
		Secrets:          &v1alpha1.Secrets{PathRoot: "kv"},
		OpenBao:          &v1alpha1.OpenBao{Verify: true, Address: "https://openbao:8200", CacheTTL: &v1alpha1.OpenBaoCacheTTL{Miss: &metav1.Duration{Duration: time.Second}}},
		Network: &v1alpha1.Network{FQDNBackend: "none", GCGracePeriod: &metav1.Duration{Duration: time.Minute},
			WildcardBases: &v1alpha1.WildcardBases{Allow: []string{"amazonaws.com"}}, PrivateRanges: []string{"169.254.0.0/16", "fd00::/8"}},
		TemporalWorkers: &v1alpha1.TemporalWorkers{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/component": "worker"}}},
	}
	got, errs := FromISSPolicy(spec)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	want := Default()
	want.Enforcement[RuleEnginePods] = v1alpha1.Warn
	want.ExemptNamespaces = []string{"legacy"}
	want.Engines.Images = []string{"registry.dagger.io/engine", "ghcr.io/acme/engine"}
	want.Secrets.PathRoot = "kv"
	want.OpenBao.Verify, want.OpenBao.Address, want.OpenBao.MissTTL = true, "https://openbao:8200", time.Second
	want.Network.FQDNBackend, want.Network.GCGracePeriod = BackendNone, time.Minute
	// A list that is set replaces the default one; deny, not set, keeps its default.
	want.Network.WildcardBases.Allow = []string{"amazonaws.com"}
	want.Network.PrivateRanges = []netip.Prefix{netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("fd00::/8")}
	want.TemporalWorkers, _ = NewTemporalPolicy(spec.TemporalWorkers.Selector)
	samePolicy(t, got, want)
	if got.Mode(RuleSecrets) != v1alpha1.Enforce || got.Mode(RuleIntegrity) != v1alpha1.Enforce || !got.Exempt("legacy") || got.Exempt("team-a") {
		t.Error("modes and exemptions are not as set")
	}
}

func TestISSPolicyAutoscaling(t *testing.T) {
	got, errs := FromISSPolicy(&v1alpha1.ISSPolicySpec{Autoscaling: &v1alpha1.Autoscaling{
		AllowedMetrics: []v1alpha1.AllowedMetric{{Type: "Resource", Name: "cpu"}},
		MaxScaleUp:     &v1alpha1.ScaleUpBound{Pods: ptr.To[int32](8)},
		ScaleTargets:   []v1alpha1.ScaleTarget{{Group: "apps", Kind: "Deployment"}, {Group: "argoproj.io", Kind: "Rollout"}},
	}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	want := Default()
	want.Autoscaling.AllowedMetrics = []MetricRef{{Type: autoscalingv2.ResourceMetricSourceType, Name: "cpu"}}
	// Set as a whole: the percent limit is gone, the period is the default one.
	want.Autoscaling.MaxScaleUp = ScaleUpBound{Pods: 8, PeriodSeconds: 60}
	want.Autoscaling.ScaleTargets = []schema.GroupKind{{Group: "apps", Kind: "Deployment"}, {Group: "argoproj.io", Kind: "Rollout"}}
	samePolicy(t, got, want)
}

func TestInvalidISSPolicy(t *testing.T) {
	q := resource.MustParse
	for _, tc := range []struct {
		name string
		spec v1alpha1.ISSPolicySpec
		want []wantErr
	}{
		{"unknown mode", v1alpha1.ISSPolicySpec{Enforcement: &v1alpha1.Enforcement{Secrets: "Block"}}, []wantErr{{"spec.enforcement.secrets", `"Block"`}}},
		{"exempt namespace", v1alpha1.ISSPolicySpec{ExemptNamespaces: []string{"Team_A"}}, []wantErr{{"spec.exemptNamespaces[0]", "RFC 1123"}}},
		{"service account", v1alpha1.ISSPolicySpec{TrustedIdentities: &v1alpha1.TrustedIdentities{ServiceAccounts: []string{"ci"}}}, []wantErr{{"spec.trustedIdentities.serviceAccounts[0]", "namespace/name"}}},
		{"profiles", v1alpha1.ISSPolicySpec{Engines: &v1alpha1.Engines{Profiles: []v1alpha1.Profile{
			{Name: "small", Requests: v1alpha1.ProfileResources{CPU: "2", Memory: "1Gi", EphemeralStorage: "1Gi"}, Limits: v1alpha1.ProfileResources{CPU: "1", Memory: "1Gi", EphemeralStorage: "1Gi"}},
			{Name: "small", Requests: v1alpha1.ProfileResources{CPU: "1", Memory: "lots", EphemeralStorage: "0"}},
		}}}, []wantErr{
			{"spec.engines.profiles[0].requests.cpu", "above the limit 1"},
			{"spec.engines.profiles[1].name", "Duplicate"},
			{"spec.engines.profiles[1].requests.ephemeral-storage", "above zero"},
			{"spec.engines.profiles[1].requests.memory", "must be a quantity"},
			{"spec.engines.profiles[1].limits.cpu", "Required"},
			{"spec.engines.profiles[1].limits.ephemeral-storage", "Required"},
			{"spec.engines.profiles[1].limits.memory", "Required"},
			{"spec.engines.defaultProfile", `"standard"`},
		}},
		{"engine image with a tag", v1alpha1.ISSPolicySpec{Engines: &v1alpha1.Engines{Images: []string{"registry.dagger.io/engine:v0.18"}}}, []wantErr{{"spec.engines.images[0]", "without tag or digest"}}},
		{"secrets", v1alpha1.ISSPolicySpec{Secrets: &v1alpha1.Secrets{PathRoot: "a/b", Environments: []v1alpha1.SecretEnvironment{{Name: "dev"}, {Name: "dev", Store: v1alpha1.StoreRef{Name: "x", Kind: "Vault"}, Mount: "kv"}}}}, []wantErr{
			{"spec.secrets.pathRoot", "contains"},
			{"spec.secrets.environments[0].store.name", "Required"},
			{"spec.secrets.environments[0].mount", "Required"},
			{"spec.secrets.environments[1].name", "Duplicate"},
			{"spec.secrets.environments[1].store.kind", "supported values"},
		}},
		{"generators and store providers", v1alpha1.ISSPolicySpec{Secrets: &v1alpha1.Secrets{
			AllowedGeneratorKinds: []string{"Password", "ClusterGenerator", "Vault"}, AllowedStoreProviders: []string{"aws", "hashicorp"},
		}}, []wantErr{
			{"spec.secrets.allowedGeneratorKinds[1]", "wraps a generator of any kind"},
			{"spec.secrets.allowedGeneratorKinds[2]", `"VaultDynamicSecret"`},
			{"spec.secrets.allowedStoreProviders[1]", `"webhook"`},
		}},
		{"openbao", v1alpha1.ISSPolicySpec{OpenBao: &v1alpha1.OpenBao{Verify: true, Auth: &v1alpha1.OpenBaoAuth{Method: "ldap"}, Timeout: &metav1.Duration{Duration: 5 * time.Second}, OnUnavailable: "Allow"}}, []wantErr{
			{"spec.openbao.address", "needs the address"},
			{"spec.openbao.auth.method", "supported values"},
			{"spec.openbao.timeout", "at most 4s"},
			{"spec.openbao.onUnavailable", "supported values"},
		}},
		{"network", v1alpha1.ISSPolicySpec{Network: &v1alpha1.Network{FQDNBackend: "calico", DNS: &v1alpha1.DNS{Ports: []int32{0}}, ClusterNetworkPolicyPriority: ptr.To[int32](1001), GCGracePeriod: &metav1.Duration{Duration: time.Millisecond}}}, []wantErr{
			{"spec.network.fqdnBackend", "supported values"},
			{"spec.network.dns.ports[0]", "1 to 65535"},
			{"spec.network.clusterNetworkPolicyPriority", "0 to 1000"},
			{"spec.network.gcGracePeriod", "at least 1s"},
		}},
		{"wildcard bases and private ranges", v1alpha1.ISSPolicySpec{Network: &v1alpha1.Network{
			WildcardBases: &v1alpha1.WildcardBases{Allow: []string{"amazonaws.com", "com", "Example.org", "nip.io"}, Deny: []string{"a..b", "nip.io"}},
			PrivateRanges: []string{"10.0.0.0/8", "10.0.0.1/8", "169.254.169.254", "fe80::/10%eth0", "::ffff:10.0.0.0/104", "10.0.0.0/8"},
		}}, []wantErr{
			{"spec.network.wildcardBases.allow[1]", "at least two labels"},
			{"spec.network.wildcardBases.allow[2]", "lower-case DNS name"},
			{"spec.network.wildcardBases.deny[0]", "lower-case DNS name"},
			{"spec.network.wildcardBases.allow[3]", "is in deny too"},
			{"spec.network.privateRanges[1]", "write 10.0.0.0/8"},
			{"spec.network.privateRanges[2]", "must be a CIDR"},
			{"spec.network.privateRanges[3]", "must be a CIDR"},
			{"spec.network.privateRanges[4]", "IPv4-mapped"},
			{"spec.network.privateRanges[5]", "Duplicate"},
		}},
		{"no private ranges", v1alpha1.ISSPolicySpec{Network: &v1alpha1.Network{PrivateRanges: []string{}}}, []wantErr{{"spec.network.privateRanges", "169.254.0.0/16"}}},
		{"autoscaling", v1alpha1.ISSPolicySpec{Autoscaling: &v1alpha1.Autoscaling{Metric: &v1alpha1.SaturationMetric{Type: "Resource", Target: ptr.To(q("0"))}}}, []wantErr{
			{"spec.autoscaling.metric.type", "supported values"},
			{"spec.autoscaling.metric.target", "above zero"},
		}},
		{"HPA behavior the HPA API refuses", v1alpha1.ISSPolicySpec{Autoscaling: &v1alpha1.Autoscaling{Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
			ScaleUp: &autoscalingv2.HPAScalingRules{SelectPolicy: ptr.To[autoscalingv2.ScalingPolicySelect]("Bogus"), Policies: []autoscalingv2.HPAScalingPolicy{{Type: "Bananas", Value: 1, PeriodSeconds: 60}}},
		}}}, []wantErr{
			{"spec.autoscaling.behavior.scaleUp.selectPolicy", "supported values"},
			{"spec.autoscaling.behavior.scaleUp.policies[0].type", "supported values"},
		}},
		{"HPA bounds, metrics and targets", v1alpha1.ISSPolicySpec{Autoscaling: &v1alpha1.Autoscaling{
			AllowedMetrics: []v1alpha1.AllowedMetric{{Type: "Resource", Name: "cpu"}, {Type: "Resource", Name: "cpu"}, {Type: "External", Name: "gos_saturation"}, {Type: "Custom", Name: "x"}, {Type: "Pods"}},
			MaxScaleUp:     &v1alpha1.ScaleUpBound{PeriodSeconds: 3600, StabilizationWindowSeconds: ptr.To[int32](-1)},
			ScaleTargets:   []v1alpha1.ScaleTarget{{Group: "Apps!", Kind: "Deployment"}, {Kind: ""}, {Group: "Apps!", Kind: "Deployment"}},
		}}, []wantErr{
			{"spec.autoscaling.allowedMetrics[1]", "Duplicate"},
			{"spec.autoscaling.allowedMetrics[2]", "is the saturation metric"},
			{"spec.autoscaling.allowedMetrics[3].type", "supported values"},
			{"spec.autoscaling.allowedMetrics[4].name", "Required"},
			{"spec.autoscaling.scaleTargets[0].group", "RFC 1123"},
			{"spec.autoscaling.scaleTargets[1].kind", "Required"},
			{"spec.autoscaling.scaleTargets[2].group", "RFC 1123"},
			{"spec.autoscaling.scaleTargets[2]", "Duplicate"},
			{"spec.autoscaling.maxScaleUp", "set pods, percent or both"},
			{"spec.autoscaling.maxScaleUp.periodSeconds", "1 to 1800"},
			{"spec.autoscaling.maxScaleUp.stabilizationWindowSeconds", "0 to 3600"},
		}},
		{"no scale targets", v1alpha1.ISSPolicySpec{Autoscaling: &v1alpha1.Autoscaling{ScaleTargets: []v1alpha1.ScaleTarget{}}}, []wantErr{
			{"spec.autoscaling.scaleTargets", "every HPA is denied"},
		}},
		{"a bound the default behavior exceeds", v1alpha1.ISSPolicySpec{Autoscaling: &v1alpha1.Autoscaling{MaxScaleUp: &v1alpha1.ScaleUpBound{Pods: ptr.To[int32](2), StabilizationWindowSeconds: ptr.To[int32](30)}}}, []wantErr{
			{"spec.autoscaling.behavior.scaleUp.stabilizationWindowSeconds", "change one or the other"},
			{"spec.autoscaling.behavior.scaleUp.policies", "within 2 pods per 60s"},
		}},
		{"a behavior without scaleUp gets the API server's, faster than the bound", v1alpha1.ISSPolicySpec{Autoscaling: &v1alpha1.Autoscaling{Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
			ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](300)},
		}}}, []wantErr{
			{"spec.autoscaling.behavior.scaleUp.policies[0].periodSeconds", "spec.autoscaling.maxScaleUp"},
			{"spec.autoscaling.behavior.scaleUp.policies[1].periodSeconds", "spec.autoscaling.maxScaleUp"},
		}},
		{"temporal selector selects everything", v1alpha1.ISSPolicySpec{TemporalWorkers: &v1alpha1.TemporalWorkers{Selector: &metav1.LabelSelector{}}}, []wantErr{{"spec.temporalWorkers.selector", "every Deployment"}}},
		{"backend with a path", v1alpha1.ISSPolicySpec{Provisioning: &v1alpha1.Provisioning{ApprovedBackends: []string{"s3://bucket/prefix", "http://bucket"}}}, []wantErr{
			{"spec.provisioning.approvedBackends[0]", "scheme://bucket"},
			{"spec.provisioning.approvedBackends[1]", "scheme://bucket"},
		}},
		{"provisioning allowlists", v1alpha1.ISSPolicySpec{Provisioning: &v1alpha1.Provisioning{
			ApprovedStorageAccounts: []string{"Acme-State"},
			AllowedEnv:              []string{"AWS_REGION", "1BAD", "AWS_ENDPOINT_URL_S3", "AWS_*", "*", "PULUMI_CONFIG_PASSPHRASE_FILE", "TF_VAR_*"},
			AllowedImages:           []string{"pulumi/pulumi", "ghcr.io/acme/runner:v1", "ghcr.io/acme/*", "*"},
		}}, []wantErr{
			{"spec.provisioning.approvedStorageAccounts[0]", "storage account name"},
			{"spec.provisioning.allowedEnv[1]", "variable's name"},
			{"spec.provisioning.allowedEnv[2]", "would allow AWS_ENDPOINT_URL"},
			{"spec.provisioning.allowedEnv[3]", "would allow AWS_ENDPOINT_URL"},
			{"spec.provisioning.allowedEnv[4]", "variable's name"},
			{"spec.provisioning.allowedEnv[5]", "would allow PULUMI_CONFIG_PASSPHRASE"},
			{"spec.provisioning.allowedImages[0]", "docker.io/pulumi/pulumi"},
			{"spec.provisioning.allowedImages[1]", "registry client resolves it"},
			{"spec.provisioning.allowedImages[3]", "registry client resolves it"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, errs := FromISSPolicy(&tc.spec)
			if p != nil {
				t.Error("an invalid spec returned a policy")
			}
			checkErrs(t, errs, tc.want)
		})
	}
}

// TestModesOnlyForConfigurableGroups: the integrity rules and egress writes have no mode, even
// when a policy value names them.
func TestModesOnlyForConfigurableGroups(t *testing.T) {
	p := Default()
	for _, g := range []RuleGroup{RuleIntegrity, RuleEgressWrite} {
		p.Enforcement[g] = v1alpha1.Audit
		if p.Mode(g) != v1alpha1.Enforce {
			t.Errorf("%s took a mode", g)
		}
	}
	p.Enforcement[RuleEnginePods] = v1alpha1.Warn
	if p.Mode(RuleEnginePods) != v1alpha1.Warn || p.Mode(RuleSecrets) != v1alpha1.Enforce {
		t.Error("configurable groups do not follow the policy")
	}
}
