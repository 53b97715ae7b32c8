package policy

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// The HPA documents of the tests: a conforming HPA, and pieces to put in its place.
const (
	hpaTarget     = "scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: engine-pool}\n"
	hpaSaturation = "- {type: External, external: {metric: {name: gos_saturation, selector: {matchLabels: {workload: engine-pool}}}, target: {type: Value, value: 800m}}}\n"
	hpaBehavior   = `behavior:
  scaleUp: {stabilizationWindowSeconds: 0, selectPolicy: Min, policies: [{type: Percent, value: 100, periodSeconds: 60}, {type: Pods, value: 4, periodSeconds: 60}]}
  scaleDown: {stabilizationWindowSeconds: 300, selectPolicy: Max, policies: [{type: Percent, value: 100, periodSeconds: 15}]}
`
	hpaCPU = "- {type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 10}}}\n"
)

// hpaOf reads an HPA from the YAML of its spec.
func hpaOf(t *testing.T, spec string) *autoscalingv2.HorizontalPodAutoscaler {
	t.Helper()
	hpa := &autoscalingv2.HorizontalPodAutoscaler{}
	if err := yaml.UnmarshalStrict([]byte("spec:\n"+indent(spec)), hpa); err != nil {
		t.Fatalf("%v in\n%s", err, spec)
	}
	return hpa
}

func indent(s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	for i := range lines {
		lines[i] = "  " + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}

// scaleUp returns a behavior with the given scaleUp rules and the default scaleDown.
func scaleUp(rules string) string {
	return "behavior:\n  scaleUp: " + rules + "\n  scaleDown: {stabilizationWindowSeconds: 300, selectPolicy: Max, policies: [{type: Percent, value: 100, periodSeconds: 15}]}\n"
}

func TestValidateHPA(t *testing.T) {
	allowCPU := DefaultAutoscalingPolicy()
	allowCPU.AllowedMetrics = []MetricRef{{Type: autoscalingv2.ResourceMetricSourceType, Name: "cpu"}}
	podsOnly := DefaultAutoscalingPolicy()
	podsOnly.MaxScaleUp = ScaleUpBound{Pods: 10, PeriodSeconds: 60}
	percentOnly := DefaultAutoscalingPolicy()
	percentOnly.MaxScaleUp = ScaleUpBound{Percent: 200, PeriodSeconds: 60}
	settled := DefaultAutoscalingPolicy()
	settled.MaxScaleUp.StabilizationWindowSeconds = 60
	withRS := DefaultAutoscalingPolicy()
	withRS.ScaleTargets = append(withRS.ScaleTargets, schema.GroupKind{Group: "apps", Kind: "ReplicaSet"})
	metrics := func(m ...string) string { return "metrics:\n" + strings.Join(m, "") }
	for _, tc := range []struct {
		name   string
		policy *AutoscalingPolicy
		spec   string
		want   []wantErr
	}{
		{name: "the saturation metric and the default behavior", spec: hpaTarget + metrics(hpaSaturation) + hpaBehavior},
		{name: "the target written otherwise (0.8 is 800m)", spec: hpaTarget + metrics(strings.Replace(hpaSaturation, "800m", "0.8", 1)) + hpaBehavior},
		{name: "a StatefulSet", spec: strings.Replace(hpaTarget, "Deployment", "StatefulSet", 1) + metrics(hpaSaturation) + hpaBehavior},

		// The bypass as found: a saturation metric that selects nothing, at a target it never reaches, beside 10% CPU.
		{name: "a saturation metric that selects nothing beside a CPU metric", spec: hpaTarget + metrics(hpaCPU,
			"- {type: External, external: {metric: {name: gos_saturation, selector: {matchLabels: {workload: nothing}}}, target: {type: Value, value: 1e6}}}\n") + hpaBehavior, want: []wantErr{
			{"spec.metrics[0]", "Resource metric cpu beside the saturation metric"},
			{"spec.metrics[1].external.metric.selector", "set selector {matchLabels: {workload: engine-pool}}"},
			{"spec.metrics[1].external.target", `"{type: Value, value: 1M}": the saturation metric's target is the policy's, so that every HPA scales at the same saturation: set target {type: Value, value: 800m}`},
		}},
		{name: "a selector with another label besides", spec: hpaTarget + metrics(strings.Replace(hpaSaturation, "{workload: engine-pool}", "{workload: engine-pool, shard: a}", 1)) + hpaBehavior, want: []wantErr{
			{"spec.metrics[0].external.metric.selector", "shard=a,workload=engine-pool"},
		}},
		{name: "a selector by expression", spec: hpaTarget + metrics(strings.Replace(hpaSaturation, "{matchLabels: {workload: engine-pool}}", "{matchExpressions: [{key: workload, operator: In, values: [engine-pool, other]}]}", 1)) + hpaBehavior, want: []wantErr{
			{"spec.metrics[0].external.metric.selector", "workload in (engine-pool,other)"},
		}},
		{name: "the same label and an expression that selects nothing", spec: hpaTarget + metrics(strings.Replace(hpaSaturation, "{matchLabels: {workload: engine-pool}}", "{matchLabels: {workload: engine-pool}, matchExpressions: [{key: workload, operator: DoesNotExist}]}", 1)) + hpaBehavior, want: []wantErr{
			{"spec.metrics[0].external.metric.selector", "and nothing else"},
		}},
		{name: "an empty selector (every series)", spec: hpaTarget + metrics(strings.Replace(hpaSaturation, "{matchLabels: {workload: engine-pool}}", "{}", 1)) + hpaBehavior, want: []wantErr{
			{"spec.metrics[0].external.metric.selector", "and nothing else"},
		}},
		{name: "no selector", spec: hpaTarget + metrics(strings.Replace(hpaSaturation, ", selector: {matchLabels: {workload: engine-pool}}", "", 1)) + hpaBehavior, want: []wantErr{
			{"spec.metrics[0].external.metric.selector", "Required value"},
		}},
		{name: "a lower target", spec: hpaTarget + metrics(strings.Replace(hpaSaturation, "800m", "100m", 1)) + hpaBehavior, want: []wantErr{
			{"spec.metrics[0].external.target", "value: 100m"},
		}},
		{name: "an AverageValue target", spec: hpaTarget + metrics(strings.Replace(hpaSaturation, "{type: Value, value: 800m}", "{type: AverageValue, averageValue: 800m}", 1)) + hpaBehavior, want: []wantErr{
			{"spec.metrics[0].external.target", "{type: AverageValue, averageValue: 800m}"},
		}},
		{name: "a second value beside the target's", spec: hpaTarget + metrics(strings.Replace(hpaSaturation, "value: 800m", "value: 800m, averageValue: 1e6", 1)) + hpaBehavior, want: []wantErr{
			{"spec.metrics[0].external.target", "averageValue: 1M"},
		}},
		{name: "no target", spec: hpaTarget + metrics(strings.Replace(hpaSaturation, ", target: {type: Value, value: 800m}", "", 1)) + hpaBehavior, want: []wantErr{
			{"spec.metrics[0].external.target", "Required value"},
		}},
		{name: "the saturation metric twice", spec: hpaTarget + metrics(hpaSaturation, hpaSaturation) + hpaBehavior, want: []wantErr{
			{"spec.metrics[1]", "listed once, at spec.metrics[0]"},
		}},
		{name: "a good saturation metric and a bad one", spec: hpaTarget + metrics(hpaSaturation, strings.Replace(hpaSaturation, "800m", "1e6", 1)) + hpaBehavior, want: []wantErr{
			{"spec.metrics[1]", "listed once"},
		}},
		{name: "every other metric type", spec: hpaTarget + metrics(hpaSaturation, hpaCPU,
			"- {type: ContainerResource, containerResource: {name: memory, container: app, target: {type: Utilization, averageUtilization: 10}}}\n",
			"- {type: Pods, pods: {metric: {name: requests_per_second}, target: {type: AverageValue, averageValue: 1}}}\n",
			"- {type: Object, object: {describedObject: {apiVersion: v1, kind: Service, name: web}, metric: {name: hits}, target: {type: Value, value: 1}}}\n",
			"- {type: External, external: {metric: {name: queue_length}, target: {type: Value, value: 1}}}\n") + hpaBehavior, want: []wantErr{
			{"spec.metrics[1]", "Resource metric cpu beside"},
			{"spec.metrics[2]", "ContainerResource metric memory beside"},
			{"spec.metrics[3]", "Pods metric requests_per_second beside"},
			{"spec.metrics[4]", "Object metric hits beside"},
			{"spec.metrics[5]", "External metric queue_length beside"},
		}},
		{name: "the saturation metric's name as a Pods metric", spec: hpaTarget + metrics("- {type: Pods, pods: {metric: {name: gos_saturation, selector: {matchLabels: {workload: engine-pool}}}, target: {type: AverageValue, averageValue: 800m}}}\n") + hpaBehavior, want: []wantErr{
			{"spec.metrics[0]", "The saturation metric is the External metric gos_saturation"},
			{"spec.metrics", "add the External metric gos_saturation"},
		}},
		{name: "CPU only (an autoscaling/v1 targetCPUUtilizationPercentage)", spec: hpaTarget + metrics(hpaCPU) + hpaBehavior, want: []wantErr{
			{"spec.metrics[0]", "Resource metric cpu"},
			{"spec.metrics", "ISS-001 section 5 wants HPAs tuned on the GOS saturation signal: add the External metric gos_saturation with the selector {matchLabels: {workload: engine-pool}} and the target 800m"},
		}},
		{name: "no metrics", spec: hpaTarget + hpaBehavior, want: []wantErr{{"spec.metrics", "add the External metric gos_saturation"}}},
		{name: "a metric type without its source", spec: hpaTarget + metrics(hpaSaturation, "- {type: External}\n") + hpaBehavior, want: []wantErr{{"spec.metrics[1]", "without its source"}}},
		{name: "an allowed metric beside the saturation metric", policy: &allowCPU, spec: hpaTarget + metrics(hpaCPU, hpaSaturation) + hpaBehavior},
		{name: "an allowed metric alone", policy: &allowCPU, spec: hpaTarget + metrics(hpaCPU) + hpaBehavior, want: []wantErr{{"spec.metrics", "add the External metric"}}},
		{name: "a metric the allowed one does not name", policy: &allowCPU, spec: hpaTarget + metrics(hpaSaturation, strings.Replace(hpaCPU, "cpu", "memory", 1)) + hpaBehavior, want: []wantErr{
			{"spec.metrics[1]", "allows only Resource metric cpu besides"},
		}},

		// The scale target.
		{name: "another workload's saturation", spec: strings.Replace(hpaTarget, "engine-pool", "billing", 1) + metrics(hpaSaturation) + hpaBehavior, want: []wantErr{
			{"spec.metrics[0].external.metric.selector", "set selector {matchLabels: {workload: billing}}"},
		}},
		{name: "a ReplicaSet", spec: strings.Replace(hpaTarget, "Deployment", "ReplicaSet", 1) + metrics(hpaSaturation) + hpaBehavior, want: []wantErr{
			{"spec.scaleTargetRef.kind", "ReplicaSet.apps"},
		}},
		{name: "a ReplicaSet the policy allows", policy: &withRS, spec: strings.Replace(hpaTarget, "Deployment", "ReplicaSet", 1) + metrics(hpaSaturation) + hpaBehavior},
		{name: "a Deployment of another group", spec: strings.Replace(hpaTarget, "apps/v1", "example.com/v1", 1) + metrics(hpaSaturation) + hpaBehavior, want: []wantErr{
			{"spec.scaleTargetRef.kind", `Deployment.example.com (apiVersion "example.com/v1"`},
		}},
		{name: "a Deployment without apiVersion", spec: strings.Replace(hpaTarget, "apiVersion: apps/v1, ", "", 1) + metrics(hpaSaturation) + hpaBehavior, want: []wantErr{
			{"spec.scaleTargetRef.kind", `Deployment (apiVersion "", kind "Deployment")`},
		}},
		{name: "a malformed apiVersion", spec: strings.Replace(hpaTarget, "apps/v1", "apps/v1/x", 1) + metrics(hpaSaturation) + hpaBehavior, want: []wantErr{
			{"spec.scaleTargetRef.apiVersion", "group/version"},
		}},
		{name: "a name no label value can carry", spec: strings.Replace(hpaTarget, "engine-pool", strings.Repeat("a", 64), 1) + metrics(strings.Replace(hpaSaturation, "engine-pool", strings.Repeat("a", 64), 1)) + hpaBehavior, want: []wantErr{
			{"spec.scaleTargetRef.name", "at most 63 characters"},
		}},

		// The behavior.
		{name: "no behavior", spec: hpaTarget + metrics(hpaSaturation), want: []wantErr{{"spec.behavior", "leave behavior out when applying"}}},
		{name: "no scaleUp", spec: hpaTarget + metrics(hpaSaturation) + "behavior: {scaleDown: {stabilizationWindowSeconds: 60}}\n", want: []wantErr{{"spec.behavior.scaleUp", "Required value"}}},
		{name: "the API server's scaleUp", spec: hpaTarget + metrics(hpaSaturation) + scaleUp("{stabilizationWindowSeconds: 0, selectPolicy: Max, policies: [{type: Pods, value: 4, periodSeconds: 15}, {type: Percent, value: 100, periodSeconds: 15}]}"), want: []wantErr{
			{"spec.behavior.scaleUp.policies[0].periodSeconds", "with selectPolicy Max"},
			{"spec.behavior.scaleUp.policies[1].periodSeconds", "set periodSeconds to at least 60, or selectPolicy: Min"},
		}},
		{name: "Disabled", spec: hpaTarget + metrics(hpaSaturation) + scaleUp("{selectPolicy: Disabled, policies: [{type: Percent, value: 1000, periodSeconds: 1}]}")},
		{name: "a selectPolicy the bound does not know", spec: hpaTarget + metrics(hpaSaturation) + scaleUp("{selectPolicy: Fastest, policies: [{type: Pods, value: 1, periodSeconds: 60}]}"), want: []wantErr{
			{"spec.behavior.scaleUp.selectPolicy", `supported values: "Min", "Max", "Disabled"`},
		}},
		{name: "Min with a faster percent", spec: hpaTarget + metrics(hpaSaturation) + scaleUp("{selectPolicy: Min, policies: [{type: Percent, value: 1000, periodSeconds: 60}, {type: Pods, value: 4, periodSeconds: 60}]}"), want: []wantErr{
			{"spec.behavior.scaleUp.policies", "no policy keeps scaling up within 100% per 60s"},
		}},
		{name: "Max of the default policies", spec: hpaTarget + metrics(hpaSaturation) + scaleUp("{selectPolicy: Max, policies: [{type: Percent, value: 100, periodSeconds: 60}, {type: Pods, value: 4, periodSeconds: 60}]}"), want: []wantErr{
			{"spec.behavior.scaleUp.policies[0]", "faster than 4 pods per 60s"},
			{"spec.behavior.scaleUp.policies[1]", "faster than 100% per 60s"},
		}},
		{name: "no selectPolicy (Max) with one slow policy", spec: hpaTarget + metrics(hpaSaturation) + scaleUp("{policies: [{type: Pods, value: 1, periodSeconds: 60}]}")},
		{name: "one pod every 15s from one replica is 400% a minute", spec: hpaTarget + metrics(hpaSaturation) + scaleUp("{policies: [{type: Pods, value: 1, periodSeconds: 15}]}"), want: []wantErr{
			{"spec.behavior.scaleUp.policies", "within 100% per 60s"},
		}},
		{name: "percent over a shorter period compounds", spec: hpaTarget + metrics(hpaSaturation) + scaleUp("{selectPolicy: Min, policies: [{type: Percent, value: 50, periodSeconds: 30}, {type: Pods, value: 4, periodSeconds: 60}]}"), want: []wantErr{
			{"spec.behavior.scaleUp.policies", "within 100% per 60s"},
		}},
		{name: "slower than the bound in both", spec: hpaTarget + metrics(hpaSaturation) + scaleUp("{stabilizationWindowSeconds: 120, selectPolicy: Min, policies: [{type: Percent, value: 50, periodSeconds: 120}, {type: Pods, value: 2, periodSeconds: 300}]}")},
		{name: "a tolerance", spec: hpaTarget + metrics(hpaSaturation) + scaleUp("{tolerance: 0, selectPolicy: Min, policies: [{type: Percent, value: 100, periodSeconds: 60}, {type: Pods, value: 4, periodSeconds: 60}]}")},
		{name: "no policies", spec: hpaTarget + metrics(hpaSaturation) + scaleUp("{selectPolicy: Min, policies: []}"), want: []wantErr{
			{"spec.behavior.scaleUp.policies", "such as {type: Pods, value: 4, periodSeconds: 60} and {type: Percent, value: 100, periodSeconds: 60}"},
		}},
		{name: "a shorter stabilization window", policy: &settled, spec: hpaTarget + metrics(hpaSaturation) + hpaBehavior, want: []wantErr{
			{"spec.behavior.scaleUp.stabilizationWindowSeconds", "must be at least 60"},
		}},
		{name: "a pods bound: 5 pods every 30s is 10 a minute", policy: &podsOnly, spec: hpaTarget + metrics(hpaSaturation) + scaleUp("{policies: [{type: Pods, value: 5, periodSeconds: 30}]}")},
		{name: "a pods bound: 6 pods every 30s is 12 a minute", policy: &podsOnly, spec: hpaTarget + metrics(hpaSaturation) + scaleUp("{policies: [{type: Pods, value: 6, periodSeconds: 30}]}"), want: []wantErr{
			{"spec.behavior.scaleUp.policies", "within 10 pods per 60s"},
		}},
		{name: "a pods bound: a percent grows past it", policy: &podsOnly, spec: hpaTarget + metrics(hpaSaturation) + scaleUp("{policies: [{type: Percent, value: 1, periodSeconds: 1800}]}"), want: []wantErr{
			{"spec.behavior.scaleUp.policies", "within 10 pods per 60s"},
		}},
		{name: "a percent bound: 2 pods a minute is 200% of one", policy: &percentOnly, spec: hpaTarget + metrics(hpaSaturation) + scaleUp("{selectPolicy: Max, policies: [{type: Pods, value: 2, periodSeconds: 60}, {type: Percent, value: 200, periodSeconds: 120}]}")},
		{name: "a percent bound: 3 pods a minute is more", policy: &percentOnly, spec: hpaTarget + metrics(hpaSaturation) + scaleUp("{policies: [{type: Pods, value: 3, periodSeconds: 60}]}"), want: []wantErr{
			{"spec.behavior.scaleUp.policies", "within 200% per 60s"},
		}},
		{name: "values that overflow int32 when multiplied", spec: hpaTarget + metrics(hpaSaturation) + scaleUp("{policies: [{type: Pods, value: 2147483647, periodSeconds: 1}]}"), want: []wantErr{
			{"spec.behavior.scaleUp.policies", "within 4 pods"},
			{"spec.behavior.scaleUp.policies", "within 100%"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.policy
			if a == nil {
				d := DefaultAutoscalingPolicy()
				a = &d
			}
			checkErrs(t, a.ValidateHPA(hpaOf(t, tc.spec)), tc.want)
		})
	}
}

// TestAdmitHPAOnEveryVerb: the rule judges the whole object on create and on every update, so
// an update or patch that swaps the metric, its selector, the scale target or the behavior is
// judged as a new HPA would be.
func TestAdmitHPAOnEveryVerb(t *testing.T) {
	p := Default()
	good := hpaOf(t, hpaTarget+"metrics:\n"+hpaSaturation+hpaBehavior)
	for _, tc := range []struct {
		name string
		op   Operation
		spec string
		deny string
	}{
		{"create", Create, hpaTarget + "metrics:\n" + hpaSaturation + hpaBehavior, ""},
		{"an update that swaps the metric for CPU", Update, hpaTarget + "metrics:\n" + hpaCPU + hpaBehavior, "spec.metrics[0]"},
		{"an update that adds CPU beside", Update, hpaTarget + "metrics:\n" + hpaSaturation + hpaCPU + hpaBehavior, "spec.metrics[1]"},
		{"an update that points the selector elsewhere", Update, hpaTarget + "metrics:\n" + strings.Replace(hpaSaturation, "workload: engine-pool", "workload: idle", 1) + hpaBehavior, "spec.metrics[0].external.metric.selector"},
		{"an update that retargets the HPA", Update, strings.Replace(hpaTarget, "engine-pool", "billing", 1) + "metrics:\n" + hpaSaturation + hpaBehavior, "spec.metrics[0].external.metric.selector"},
		{"a patch that speeds scaleUp up", Update, hpaTarget + "metrics:\n" + hpaSaturation + scaleUp("{selectPolicy: Max, policies: [{type: Pods, value: 100, periodSeconds: 15}]}"), "spec.behavior.scaleUp.policies"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var old *autoscalingv2.HorizontalPodAutoscaler
			if tc.op == Update {
				old = good
			}
			out := AdmitHPA(context.Background(), p, &Request{Operation: tc.op}, hpaOf(t, tc.spec), old)
			switch {
			case tc.deny == "" && len(out.Findings) > 0:
				t.Errorf("denied: %v", out.Findings)
			case tc.deny != "" && (len(out.Findings) == 0 || out.Findings[0].Errors[0].Field != tc.deny):
				t.Errorf("got %v, want a denial at %s", out.Findings, tc.deny)
			}
		})
	}
}

// TestScaleUpBoundHolds runs the HPA controller's scale-up limit (k8s.io/kubernetes
// pkg/controller/podautoscaler, calculateScaleUpLimitWithScalingRules) on random scale-up rules
// that ValidateScaleUp admits, with a desired replica count that is always larger, stepping
// every second, and checks that no window of the bound's period adds more than the bound allows
// from the replicas at its start.
func TestScaleUpBoundHolds(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 7))
	admitted := 0
	for range 20000 {
		a := DefaultAutoscalingPolicy()
		a.MaxScaleUp = ScaleUpBound{PeriodSeconds: []int32{15, 60, 90}[rng.IntN(3)]}
		switch rng.IntN(3) {
		case 0:
			a.MaxScaleUp.Pods = 1 + rng.Int32N(8)
		case 1:
			a.MaxScaleUp.Percent = 1 + rng.Int32N(300)
		default:
			a.MaxScaleUp.Pods, a.MaxScaleUp.Percent = 1+rng.Int32N(8), 1+rng.Int32N(300)
		}
		rules := autoscalingv2.HPAScalingRules{SelectPolicy: ptr.To([]autoscalingv2.ScalingPolicySelect{autoscalingv2.MinChangePolicySelect, autoscalingv2.MaxChangePolicySelect}[rng.IntN(2)])}
		for range 1 + rng.IntN(3) {
			pol := autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PodsScalingPolicy, Value: 1 + rng.Int32N(8), PeriodSeconds: []int32{5, 15, 20, 30, 60, 90, 120}[rng.IntN(7)]}
			if rng.IntN(2) == 0 {
				pol.Type, pol.Value = autoscalingv2.PercentScalingPolicy, 1+rng.Int32N(300)
			}
			rules.Policies = append(rules.Policies, pol)
		}
		if len(a.ValidateScaleUp(&rules, field.NewPath("scaleUp"))) > 0 {
			continue
		}
		admitted++
		start := 1 + rng.Int32N(40)
		replicas := simulateScaleUp(&rules, start, 600)
		b, period := a.MaxScaleUp, int(a.MaxScaleUp.PeriodSeconds)
		for now := range replicas {
			before := start
			if now >= period {
				before = replicas[now-period]
			}
			allowed := int32(math.MaxInt32)
			if b.Pods > 0 {
				allowed = b.Pods
			}
			if b.Percent > 0 {
				allowed = min(allowed, int32(math.Ceil(float64(before)*(1+float64(b.Percent)/100)))-before)
			}
			if replicas[now]-before > allowed {
				t.Fatalf("rules %+v (policies %+v) were admitted under %s, and scaled from %d to %d within %ds (by second %d)", rules, rules.Policies, b, before, replicas[now], period, now)
			}
		}
	}
	if admitted < 1000 {
		t.Fatalf("only %d of the random rules were admitted: the test checks too little", admitted)
	}
}

// simulateScaleUp returns the replicas after each second of an HPA that always wants more, as
// the HPA controller limits it.
func simulateScaleUp(rules *autoscalingv2.HPAScalingRules, start int32, seconds int) []int32 {
	type event struct {
		at     int
		change int32
	}
	var events []event
	current := start
	out := make([]int32, seconds)
	for now := range seconds {
		limit := int32(math.MinInt32)
		pick := func(a, b int32) int32 { return max(a, b) }
		if *rules.SelectPolicy == autoscalingv2.MinChangePolicySelect {
			limit, pick = math.MaxInt32, func(a, b int32) int32 { return min(a, b) }
		}
		for _, pol := range rules.Policies {
			added := int32(0)
			for _, e := range events {
				if e.at > now-int(pol.PeriodSeconds) {
					added += e.change
				}
			}
			periodStart := current - added
			proposed := periodStart + pol.Value
			if pol.Type == autoscalingv2.PercentScalingPolicy {
				proposed = int32(math.Ceil(float64(periodStart) * (1 + float64(pol.Value)/100)))
			}
			limit = pick(limit, proposed)
		}
		if limit > current {
			events = append(events, event{now, limit - current})
			current = limit
		}
		out[now] = current
	}
	return out
}
