package policy

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// AutoscalingPolicy is the part of the policy about HorizontalPodAutoscalers (ISS-001 section
// 5): they scale on the GOS saturation signal, with limits against thundering herds.
type AutoscalingPolicy struct {
	// MetricType is External (a metric of the workload as a whole, the default) or Pods (a
	// per-pod metric, averaged).
	MetricType autoscalingv2.MetricSourceType
	// MetricName is the metric of the saturation signal.
	MetricName string
	// SelectorLabel is the label of the metric whose value is the HPA's scale target name.
	SelectorLabel string
	// Target is the metric value the HPA keeps the workload at.
	Target resource.Quantity
	// Behavior is what an HPA without behavior gets.
	Behavior autoscalingv2.HorizontalPodAutoscalerBehavior
	// AllowedMetrics are the metrics an HPA may have beside the saturation metric.
	AllowedMetrics []MetricRef
	// MaxScaleUp is the fastest an HPA may scale up.
	MaxScaleUp ScaleUpBound
	// ScaleTargets are the kinds an HPA may scale.
	ScaleTargets []schema.GroupKind
}

// MetricRef names a metric of an HPA: its source type and the name it is known by, the
// resource's for Resource and ContainerResource metrics, the metric's for the others.
type MetricRef struct {
	Type autoscalingv2.MetricSourceType
	Name string
}

// String returns the metric as messages name it.
func (m MetricRef) String() string { return fmt.Sprintf("%s metric %s", m.Type, m.Name) }

// ScaleUpBound is the fastest an HPA may scale up: from any number of replicas at the start of
// a period of PeriodSeconds, at most Pods replicas and at most Percent percent of them (rounded
// up, as the HPA controller rounds) more by its end, after a scale-up stabilization window of at
// least StabilizationWindowSeconds. A zero Pods or Percent sets no limit of its kind; at least
// one is set.
//
// Scale-downs are not counted: after one, the HPA controller may return to the replicas it had
// at the start of each of its policies' periods, which is not scaling up beyond them.
type ScaleUpBound struct {
	Pods, Percent              int32
	PeriodSeconds              int32
	StabilizationWindowSeconds int32
}

// String returns the bound as messages name it.
func (b ScaleUpBound) String() string {
	var parts []string
	if b.Pods > 0 {
		parts = append(parts, fmt.Sprintf("%d pods", b.Pods))
	}
	if b.Percent > 0 {
		parts = append(parts, fmt.Sprintf("%d%%", b.Percent))
	}
	s := "at most " + strings.Join(parts, " and at most ") + fmt.Sprintf(" more per %ds", b.PeriodSeconds)
	if b.StabilizationWindowSeconds > 0 {
		s += fmt.Sprintf(", after a stabilization window of at least %ds", b.StabilizationWindowSeconds)
	}
	return s
}

// DefaultAutoscalingPolicy scales on the External metric gos_saturation{workload=<target>} at
// 800m, scaling up by at most 100% or 4 pods a minute (whichever is less) and down after 300s of
// stable low saturation; HPAs may scale Deployments and StatefulSets, on that metric alone, and
// no faster than the default behavior.
func DefaultAutoscalingPolicy() AutoscalingPolicy {
	return AutoscalingPolicy{
		MetricType:    autoscalingv2.ExternalMetricSourceType,
		MetricName:    "gos_saturation",
		SelectorLabel: "workload",
		Target:        resource.MustParse("800m"),
		Behavior: autoscalingv2.HorizontalPodAutoscalerBehavior{
			ScaleUp: &autoscalingv2.HPAScalingRules{
				StabilizationWindowSeconds: ptr.To[int32](0),
				SelectPolicy:               ptr.To(autoscalingv2.MinChangePolicySelect),
				Policies: []autoscalingv2.HPAScalingPolicy{
					{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 60},
					{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 60},
				},
			},
			ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](300)},
		},
		MaxScaleUp:   ScaleUpBound{Pods: 4, Percent: 100, PeriodSeconds: 60},
		ScaleTargets: []schema.GroupKind{{Group: "apps", Kind: "Deployment"}, {Group: "apps", Kind: "StatefulSet"}},
	}
}

// APIServerScaleUpRules are the scale-up rules the API server fills in for an HPA whose
// behavior has no scaleUp (k8s.io/kubernetes pkg/apis/autoscaling/v2 defaults): 4 pods or 100%,
// whichever is more, every 15 seconds.
func APIServerScaleUpRules() autoscalingv2.HPAScalingRules {
	return autoscalingv2.HPAScalingRules{
		StabilizationWindowSeconds: ptr.To[int32](0),
		SelectPolicy:               ptr.To(autoscalingv2.MaxChangePolicySelect),
		Policies: []autoscalingv2.HPAScalingPolicy{
			{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
			{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
		},
	}
}

// SaturationMetric returns the saturation metric for an HPA's scale target.
func (a *AutoscalingPolicy) SaturationMetric(workload string) autoscalingv2.MetricSpec {
	id := autoscalingv2.MetricIdentifier{Name: a.MetricName, Selector: a.SaturationSelector(workload)}
	if a.MetricType == autoscalingv2.PodsMetricSourceType {
		return autoscalingv2.MetricSpec{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{Metric: id, Target: a.SaturationTarget()}}
	}
	return autoscalingv2.MetricSpec{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{Metric: id, Target: a.SaturationTarget()}}
}

// saturationSelector is the one selector of the saturation metric of a scale target.
func (a *AutoscalingPolicy) SaturationSelector(workload string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{a.SelectorLabel: workload}}
}

// SaturationTarget is the one target of the saturation metric: a Value for an External metric,
// an AverageValue for a Pods metric.
func (a *AutoscalingPolicy) SaturationTarget() autoscalingv2.MetricTarget {
	value := a.Target.DeepCopy()
	if a.MetricType == autoscalingv2.PodsMetricSourceType {
		return autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &value}
	}
	return autoscalingv2.MetricTarget{Type: autoscalingv2.ValueMetricType, Value: &value}
}

// metricSource is what the rules read of one metric of an HPA: the name the allowlist knows it
// by, its identifier (for the types that have one), its target, and the field of its source.
type metricSource struct {
	ref    MetricRef
	id     *autoscalingv2.MetricIdentifier
	target *autoscalingv2.MetricTarget
	field  string
}

// sourceOf reads the source of a metric's type; ok is false when that source is missing (the
// API server refuses such a metric). The sources of other types are ignored, as the HPA
// controller ignores them.
func sourceOf(m *autoscalingv2.MetricSpec) (metricSource, bool) {
	s := metricSource{ref: MetricRef{Type: m.Type}}
	switch {
	case m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil:
		s.ref.Name, s.target, s.field = string(m.Resource.Name), &m.Resource.Target, "resource"
	case m.Type == autoscalingv2.ContainerResourceMetricSourceType && m.ContainerResource != nil:
		s.ref.Name, s.target, s.field = string(m.ContainerResource.Name), &m.ContainerResource.Target, "containerResource"
	case m.Type == autoscalingv2.PodsMetricSourceType && m.Pods != nil:
		s.id, s.target, s.field = &m.Pods.Metric, &m.Pods.Target, "pods"
	case m.Type == autoscalingv2.ObjectMetricSourceType && m.Object != nil:
		s.id, s.target, s.field = &m.Object.Metric, &m.Object.Target, "object"
	case m.Type == autoscalingv2.ExternalMetricSourceType && m.External != nil:
		s.id, s.target, s.field = &m.External.Metric, &m.External.Target, "external"
	default:
		return s, false
	}
	if s.id != nil {
		s.ref.Name = s.id.Name
	}
	return s, true
}

// SaturationEntry returns the identifier and target of a metric when it is the saturation
// metric: of the policy's type and name, whatever its selector and target.
func (a *AutoscalingPolicy) SaturationEntry(m *autoscalingv2.MetricSpec) (*autoscalingv2.MetricIdentifier, *autoscalingv2.MetricTarget, bool) {
	s, ok := sourceOf(m)
	if !ok || s.id == nil || s.ref != a.saturationRef() {
		return nil, nil, false
	}
	return s.id, s.target, true
}

func (a *AutoscalingPolicy) saturationRef() MetricRef {
	return MetricRef{Type: a.MetricType, Name: a.MetricName}
}

// ValidateHPA denies an HPA that does not scale on the saturation signal of its own target
// alone, as the policy sets it, or that may scale up faster than the policy's bound: its scale
// target is a kind the policy names, with a name the metric's selector can carry; its metrics
// are the saturation metric, once, with exactly the policy's selector and target, and the
// metrics the policy allows beside it; its behavior's scaleUp keeps within MaxScaleUp.
func (a *AutoscalingPolicy) ValidateHPA(hpa *autoscalingv2.HorizontalPodAutoscaler) field.ErrorList {
	spec := field.NewPath("spec")
	errs := a.validateScaleTarget(hpa.Spec.ScaleTargetRef, spec.Child("scaleTargetRef"))
	errs = append(errs, a.validateMetrics(hpa.Spec.Metrics, hpa.Spec.ScaleTargetRef.Name, spec.Child("metrics"))...)
	return append(errs, a.validateBehavior(hpa.Spec.Behavior, spec.Child("behavior"))...)
}

func (a *AutoscalingPolicy) validateScaleTarget(ref autoscalingv2.CrossVersionObjectReference, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		errs = append(errs, field.Invalid(path.Child("apiVersion"), ref.APIVersion, "must be group/version, such as apps/v1"))
	} else if gk := (schema.GroupKind{Group: gv.Group, Kind: ref.Kind}); !slices.Contains(a.ScaleTargets, gk) {
		names := make([]string, len(a.ScaleTargets))
		for i, t := range a.ScaleTargets {
			names[i] = groupKindString(t)
		}
		errs = append(errs, field.Forbidden(path.Child("kind"), fmt.Sprintf(
			"HPAs in app namespaces scale %s, and %s (apiVersion %q, kind %q) is not one of them: scale one of those, or ask the platform team to add the kind to spec.autoscaling.scaleTargets of the ISSPolicy",
			strings.Join(names, ", "), groupKindString(gk), ref.APIVersion, ref.Kind)))
	}
	if ref.Name == "" {
		errs = append(errs, field.Required(path.Child("name"), "name the workload the HPA scales"))
	}
	for _, msg := range validation.IsValidLabelValue(ref.Name) {
		errs = append(errs, field.Invalid(path.Child("name"), ref.Name, fmt.Sprintf(
			"the saturation metric selects the series of the scale target by the label %s=<name>, which cannot carry this name (%s): scale a workload whose name is at most 63 characters",
			a.SelectorLabel, msg)))
	}
	return errs
}

// groupKindString is a group and kind as kubectl names them: Deployment.apps, or Pod for the
// core group.
func groupKindString(gk schema.GroupKind) string {
	if gk.Group == "" {
		return gk.Kind
	}
	return gk.Kind + "." + gk.Group
}

func (a *AutoscalingPolicy) validateMetrics(metrics []autoscalingv2.MetricSpec, target string, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	saturation := -1
	for i := range metrics {
		p := path.Index(i)
		id, t, ok := a.SaturationEntry(&metrics[i])
		switch {
		case ok && saturation >= 0:
			errs = append(errs, field.Forbidden(p, fmt.Sprintf("the saturation metric is listed once, at %s: remove this entry", path.Index(saturation))))
		case ok:
			saturation = i
			src := p.Child(sourceField(a.MetricType))
			errs = append(errs, a.validateSaturation(id, t, target, src)...)
		default:
			errs = append(errs, a.validateOtherMetric(&metrics[i], p)...)
		}
	}
	if saturation < 0 {
		errs = append(errs, field.Required(path, fmt.Sprintf(
			"ISS-001 section 5 wants HPAs tuned on the GOS saturation signal: add the %s metric %s with the selector {matchLabels: {%s: %s}} and the target %s, or leave metrics out to have it filled in",
			a.MetricType, a.MetricName, a.SelectorLabel, target, a.Target.String())))
	}
	return errs
}

// sourceField is the field of a metric spec that holds the source of a type.
func sourceField(t autoscalingv2.MetricSourceType) string {
	if t == autoscalingv2.PodsMetricSourceType {
		return "pods"
	}
	return "external"
}

// validateSaturation holds the saturation metric to the policy's selector and target: a
// selector that matches other series (or none) or another target would scale on another signal.
func (a *AutoscalingPolicy) validateSaturation(id *autoscalingv2.MetricIdentifier, t *autoscalingv2.MetricTarget, workload string, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	want := a.SaturationSelector(workload)
	wantText := fmt.Sprintf("{matchLabels: {%s: %s}}", a.SelectorLabel, workload)
	sel := path.Child("metric", "selector")
	switch {
	case id.Selector == nil:
		errs = append(errs, field.Required(sel, fmt.Sprintf("the saturation metric selects the series of its own scale target: set selector %s, or leave it out when applying to have it filled in", wantText)))
	case len(id.Selector.MatchExpressions) > 0 || !maps.Equal(id.Selector.MatchLabels, want.MatchLabels):
		errs = append(errs, field.Invalid(sel, metav1.FormatLabelSelector(id.Selector), fmt.Sprintf(
			"the saturation metric selects the series of its own scale target %s and nothing else: set selector %s, or leave it out to have it filled in", workload, wantText)))
	}
	wantTarget := a.SaturationTarget()
	if !sameTarget(*t, wantTarget) {
		fix := fmt.Sprintf("set target %s, or leave it out to have it filled in", targetString(wantTarget))
		if *t == (autoscalingv2.MetricTarget{}) {
			errs = append(errs, field.Required(path.Child("target"), "the saturation metric's target is the policy's: "+fix))
		} else {
			errs = append(errs, field.Invalid(path.Child("target"), targetString(*t), "the saturation metric's target is the policy's, so that every HPA scales at the same saturation: "+fix))
		}
	}
	return errs
}

// sameTarget tells whether a target is want: the same type and value, and no other value set.
func sameTarget(got, want autoscalingv2.MetricTarget) bool {
	same := func(a, b *resource.Quantity) bool { return (a == nil) == (b == nil) && (a == nil || a.Cmp(*b) == 0) }
	return got.Type == want.Type && same(got.Value, want.Value) && same(got.AverageValue, want.AverageValue) && got.AverageUtilization == nil
}

// targetString writes a target as in YAML.
func targetString(t autoscalingv2.MetricTarget) string {
	parts := []string{"type: " + string(t.Type)}
	if t.Value != nil {
		parts = append(parts, "value: "+t.Value.String())
	}
	if t.AverageValue != nil {
		parts = append(parts, "averageValue: "+t.AverageValue.String())
	}
	if t.AverageUtilization != nil {
		parts = append(parts, fmt.Sprintf("averageUtilization: %d", *t.AverageUtilization))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// validateOtherMetric denies a metric beside the saturation metric that the policy does not
// allow: the HPA scales on the largest proposal of its metrics, so any other one can scale the
// workload up when the saturation signal does not.
func (a *AutoscalingPolicy) validateOtherMetric(m *autoscalingv2.MetricSpec, path *field.Path) field.ErrorList {
	s, ok := sourceOf(m)
	if !ok {
		return field.ErrorList{field.Required(path, fmt.Sprintf("a metric of type %q without its source: the saturation metric is the %s", m.Type, a.saturationRef()))}
	}
	if slices.Contains(a.AllowedMetrics, s.ref) {
		return nil
	}
	allowed := "the ISSPolicy allows no metric besides (spec.autoscaling.allowedMetrics)"
	if len(a.AllowedMetrics) > 0 {
		names := make([]string, len(a.AllowedMetrics))
		for i, r := range a.AllowedMetrics {
			names[i] = r.String()
		}
		allowed = "the ISSPolicy allows only " + strings.Join(names, ", ") + " besides (spec.autoscaling.allowedMetrics)"
	}
	hint := ""
	if s.ref.Name == a.MetricName {
		hint = fmt.Sprintf(" The saturation metric is the %s.", a.saturationRef())
	}
	return field.ErrorList{field.Forbidden(path, fmt.Sprintf(
		"%s beside the saturation metric: the HPA scales on the largest proposal of its metrics, so this one could scale the workload up when the saturation signal does not (ISS-001 section 5): remove it; %s.%s",
		s.ref, allowed, hint))}
}

func (a *AutoscalingPolicy) validateBehavior(b *autoscalingv2.HorizontalPodAutoscalerBehavior, path *field.Path) field.ErrorList {
	if b == nil {
		return field.ErrorList{field.Required(path, fmt.Sprintf(
			"without behavior the HPA controller scales up by 4 pods or 100%% every 15s, faster than the policy's %s: leave behavior out when applying to have the policy's filled in, or set behavior.scaleUp within that", a.MaxScaleUp))}
	}
	if b.ScaleUp == nil {
		return field.ErrorList{field.Required(path.Child("scaleUp"), fmt.Sprintf(
			"without scaleUp the HPA controller scales up by 4 pods or 100%% every 15s, faster than the policy's %s: leave scaleUp out when applying to have the policy's filled in, or set it within that", a.MaxScaleUp))}
	}
	return a.ValidateScaleUp(b.ScaleUp, path.Child("scaleUp"))
}

// ValidateScaleUp denies scale-up rules that can scale up faster than MaxScaleUp, at path. The
// HPA controller limits each step to the largest (selectPolicy Max, the default) or the smallest
// (Min) of its policies' proposals, each from the replicas at the start of that policy's period;
// Disabled never scales up. So the rules keep within the bound when:
//
//   - selectPolicy is Disabled; or
//   - their stabilization window is at least the bound's, and with Min (or a single policy) for
//     each of the bound's limits one policy keeps within it, or with Max and several policies
//     each policy keeps within every limit and has a period no shorter than the bound's (a
//     shorter one could add its pods again within the bound's period, after another policy).
//
// A policy keeps within the pods limit when it is a Pods policy whose value, times the number of
// its periods that the bound's period spans (rounded up), is at most the limit; within the percent
// limit when it is a Percent policy of at most that percent over at least the bound's period, or
// a Pods policy that adds no more than the percent limit allows from one replica.
func (a *AutoscalingPolicy) ValidateScaleUp(rules *autoscalingv2.HPAScalingRules, path *field.Path) field.ErrorList {
	b := a.MaxScaleUp
	sp := ptr.Deref(rules.SelectPolicy, autoscalingv2.MaxChangePolicySelect)
	switch sp {
	case autoscalingv2.DisabledPolicySelect:
		return nil
	case autoscalingv2.MaxChangePolicySelect, autoscalingv2.MinChangePolicySelect:
	default:
		return field.ErrorList{field.NotSupported(path.Child("selectPolicy"), sp, []string{"Min", "Max", "Disabled"})}
	}
	var errs field.ErrorList
	if w := ptr.Deref(rules.StabilizationWindowSeconds, 0); w < b.StabilizationWindowSeconds {
		errs = append(errs, field.Invalid(path.Child("stabilizationWindowSeconds"), w, fmt.Sprintf(
			"must be at least %d: the policy's bound on scaling up is %s", b.StabilizationWindowSeconds, b)))
	}
	policies := path.Child("policies")
	if len(rules.Policies) == 0 {
		return append(errs, field.Required(policies, fmt.Sprintf("list the scaling policies, such as %s, or set selectPolicy: Disabled", b.suggestion())))
	}
	limits := b.limits()
	if sp == autoscalingv2.MaxChangePolicySelect && len(rules.Policies) > 1 {
		for i, pol := range rules.Policies {
			if pol.PeriodSeconds < b.PeriodSeconds {
				errs = append(errs, field.Invalid(policies.Index(i).Child("periodSeconds"), pol.PeriodSeconds, fmt.Sprintf(
					"with selectPolicy Max the HPA takes the fastest of its policies at every step, and a policy of a shorter period than the bound's %ds can add its pods again within it, after another: set periodSeconds to at least %d, or selectPolicy: Min (the policy's bound is %s)",
					b.PeriodSeconds, b.PeriodSeconds, b)))
				continue
			}
			for _, l := range limits {
				if !l.within(pol, b.PeriodSeconds) {
					errs = append(errs, field.Invalid(policies.Index(i), policyString(pol), fmt.Sprintf(
						"scales up faster than %s per %ds: with selectPolicy Max the HPA takes the fastest of its policies, so each must keep within the policy's bound (%s); lower the value, or set selectPolicy: Min and add %s",
						l, b.PeriodSeconds, b, l.suggestion(b.PeriodSeconds))))
				}
			}
		}
		return errs
	}
	for _, l := range limits {
		if !slices.ContainsFunc(rules.Policies, func(pol autoscalingv2.HPAScalingPolicy) bool { return l.within(pol, b.PeriodSeconds) }) {
			names := make([]string, len(rules.Policies))
			for i, pol := range rules.Policies {
				names[i] = policyString(pol)
			}
			errs = append(errs, field.Invalid(policies, strings.Join(names, ", "), fmt.Sprintf(
				"no policy keeps scaling up within %s per %ds, and the HPA takes the slowest of them at most (selectPolicy Min, or a single policy): add %s, keeping selectPolicy: Min (the policy's bound is %s)",
				l, b.PeriodSeconds, l.suggestion(b.PeriodSeconds), b)))
		}
	}
	return errs
}

// scaleLimit is one limit of a ScaleUpBound: pods or percent per the bound's period.
type scaleLimit struct {
	policy autoscalingv2.HPAScalingPolicyType
	value  int32
}

func (b ScaleUpBound) limits() []scaleLimit {
	var l []scaleLimit
	if b.Pods > 0 {
		l = append(l, scaleLimit{autoscalingv2.PodsScalingPolicy, b.Pods})
	}
	if b.Percent > 0 {
		l = append(l, scaleLimit{autoscalingv2.PercentScalingPolicy, b.Percent})
	}
	return l
}

// String returns the limit as messages name it.
func (l scaleLimit) String() string {
	if l.policy == autoscalingv2.PodsScalingPolicy {
		return fmt.Sprintf("%d pods", l.value)
	}
	return fmt.Sprintf("%d%%", l.value)
}

// suggestion is the scaling policy that keeps exactly within the limit.
func (l scaleLimit) suggestion(period int32) string {
	return policyString(autoscalingv2.HPAScalingPolicy{Type: l.policy, Value: l.value, PeriodSeconds: period})
}

// suggestion is the scaling policies that keep exactly within the bound.
func (b ScaleUpBound) suggestion() string {
	var s []string
	for _, l := range b.limits() {
		s = append(s, l.suggestion(b.PeriodSeconds))
	}
	return strings.Join(s, " and ")
}

// within tells whether a scaling policy keeps within the limit over period seconds: see
// ValidateScaleUp.
func (l scaleLimit) within(pol autoscalingv2.HPAScalingPolicy, period int32) bool {
	if pol.Value <= 0 || pol.PeriodSeconds <= 0 {
		return false // the API server refuses it; it bounds nothing
	}
	// The most a Pods policy adds within the bound's period: its value in each of its periods
	// that the bound's period spans.
	spans := (int64(period) + int64(pol.PeriodSeconds) - 1) / int64(pol.PeriodSeconds)
	podsPerPeriod := spans * int64(pol.Value)
	switch {
	case pol.Type == autoscalingv2.PodsScalingPolicy && l.policy == autoscalingv2.PodsScalingPolicy:
		return podsPerPeriod <= int64(l.value)
	case pol.Type == autoscalingv2.PodsScalingPolicy && l.policy == autoscalingv2.PercentScalingPolicy:
		// From one replica the percent limit allows ceil(percent/100) more.
		return podsPerPeriod <= (int64(l.value)+99)/100
	case pol.Type == autoscalingv2.PercentScalingPolicy && l.policy == autoscalingv2.PercentScalingPolicy:
		// Percents compound over shorter periods (and their rounding up does from one replica):
		// only a period as long as the bound's keeps within it.
		return pol.PeriodSeconds >= period && pol.Value <= l.value
	}
	// A Percent policy adds more than any number of pods from enough replicas.
	return false
}

// policyString writes a scaling policy as in YAML.
func policyString(p autoscalingv2.HPAScalingPolicy) string {
	return fmt.Sprintf("{type: %s, value: %d, periodSeconds: %d}", p.Type, p.Value, p.PeriodSeconds)
}
