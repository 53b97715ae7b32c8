package webhook

// The admission corpus pins down what the webhook answers, request by request: every example of
// manifests/examples, every input of the mutators' golden tests, the objects of
// testdata/corpus/objects.yaml, and every review the API server sent during a run of the
// end-to-end suite (testdata/corpus/e2e-requests.jsonl), each in the variants that reach a
// different branch (operations, subresources, users, dry run, objects being deleted, policies
// in other modes, exempt namespaces, the OpenBao check). testdata/corpus/cases-*.jsonl hold
// the requests with the responses the handlers gave when the corpus was recorded; the test
// replays them and fails on any difference. Record again only when a change of behaviour is
// intended, and say why in the commit:
//
//	go test ./webhook/ -run TestAdmissionCorpus -record-corpus

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	jsonpatch5 "github.com/evanphx/json-patch/v5"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	"github.com/iss-platform/iss-webhook/manifests"
	"github.com/iss-platform/iss-webhook/policy"
	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
)

var recordCorpus = flag.Bool("record-corpus", false, "record the admission corpus anew from the handlers as they are")

const corpusDir = "testdata/corpus"

// corpusSelf is the user the webhook authenticates as in the corpus.
const corpusSelf = "system:serviceaccount:iss-system:iss-webhook"

// corpusCase is one review of the corpus and the answer it got.
type corpusCase struct {
	Name     string                       `json:"name"`
	Path     string                       `json:"path"`
	Policy   string                       `json:"policy"`
	Request  admissionv1.AdmissionRequest `json:"request"`
	Response corpusResponse               `json:"response"`
}

// corpusResponse is what a response says to the API server and the user. The message of an
// allowed response is left out: the API server discards it.
type corpusResponse struct {
	Allowed  bool                 `json:"allowed"`
	Code     int32                `json:"code,omitempty"`
	Reason   metav1.StatusReason  `json:"reason,omitempty"`
	Message  string               `json:"message,omitempty"`
	Causes   []metav1.StatusCause `json:"causes,omitempty"`
	Warnings []string             `json:"warnings,omitempty"`
	// Patched is the object with the response's patch applied, when there is a patch.
	Patched json.RawMessage `json:"patched,omitempty"`
}

// corpusPolicies are the policies the corpus reviews under, by name.
func corpusPolicies() map[string]*policy.Policy {
	modes := func(m v1alpha1.EnforcementMode) *policy.Policy {
		p := policy.Default()
		for _, g := range policy.ConfigurableRuleGroups() {
			p.Enforcement[g] = m
		}
		return p
	}
	exempt := policy.Default()
	exempt.ExemptNamespaces = []string{"team-a-dev", "legacy"}
	verify := func(on policy.OnUnavailable, m v1alpha1.EnforcementMode) *policy.Policy {
		p := policy.Default()
		p.OpenBao.Verify, p.OpenBao.Address, p.OpenBao.OnUnavailable = true, "https://openbao.example.org", on
		p.Enforcement[policy.RuleSecrets] = m
		return p
	}
	return map[string]*policy.Policy{
		"default":          policy.Default(),
		"warn":             modes(v1alpha1.Warn),
		"audit":            modes(v1alpha1.Audit),
		"exempt":           exempt,
		"verify-deny":      verify(policy.UnavailableDeny, v1alpha1.Enforce),
		"verify-warn":      verify(policy.UnavailableWarn, v1alpha1.Enforce),
		"verify-deny-warn": verify(policy.UnavailableDeny, v1alpha1.Warn),
		"verify-audit":     verify(policy.UnavailableDeny, v1alpha1.Audit),
	}
}

// corpusNamespaces are the namespaces of the corpus: those of the local control plane, one
// without ISS labels, and one whose engines' egress policies cannot be written.
var corpusNamespaces = map[string]map[string]string{
	"team-a-dev":     {policy.LabelAppID: "team-a", policy.LabelEnvironment: "dev"},
	"team-a-prod":    {policy.LabelAppID: "team-a", policy.LabelEnvironment: "prod"},
	"team-b-staging": {policy.LabelAppID: "team-b", policy.LabelEnvironment: "staging"},
	"egress-down":    {policy.LabelAppID: "team-a", policy.LabelEnvironment: "dev"},
	"default":        {},
}

type corpusNamespaceLookup struct{}

func (corpusNamespaceLookup) Namespace(_ context.Context, name string) (policy.Namespace, error) {
	if name == "cache-down" {
		return policy.Namespace{}, errors.New("the namespace cache is not synced")
	}
	return policy.NamespaceFromLabels(name, corpusNamespaces[name]), nil
}

// corpusEgress writes nothing; it warns with what it was asked, and fails in egress-down.
type corpusEgress struct{}

func (corpusEgress) Ensure(_ context.Context, namespace string, eng policy.Engine, pol *policy.Policy) ([]string, error) {
	if namespace == "egress-down" {
		return nil, errors.New("the API server refused the write")
	}
	return []string{fmt.Sprintf("egress objects %s/%s with backend %s", namespace, eng.EgressHash, pol.Network.FQDNBackend)}, nil
}

// corpusVerifier finds every path but those that say missing, and cannot answer for those that
// say unavailable.
type corpusVerifier struct{}

func (corpusVerifier) Exists(_ context.Context, _ policy.OpenBaoPolicy, mount, path string) (bool, error) {
	switch {
	case strings.Contains(path, "unavailable"):
		return false, fmt.Errorf("OpenBao at mount %s did not answer", mount)
	case strings.Contains(path, "missing"):
		return false, nil
	}
	return true, nil
}

// corpusEngines says one engine runs with every generated policy of team-a-dev.
type corpusEngines struct{}

func (corpusEngines) RunningEngines(_ context.Context, namespace, _ string) (int, error) {
	if namespace == "team-a-dev" {
		return 1, nil
	}
	return 0, nil
}

// corpusHandlers returns the handlers of every path under each corpus policy.
func corpusHandlers(t *testing.T) map[string]map[string]*admission.Webhook {
	t.Helper()
	metrics, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	byPolicy := map[string]map[string]*admission.Webhook{}
	for name, pol := range corpusPolicies() {
		byPolicy[name] = Handlers(NewScheme(), Options{
			Policies: policy.NewHolder(pol), Metrics: metrics, Egress: corpusEgress{}, Self: corpusSelf,
			Namespaces: corpusNamespaceLookup{}, OpenBao: corpusVerifier{}, Engines: corpusEngines{},
		})
	}
	return byPolicy
}

// answer runs one request through a handler and returns what the corpus keeps of the response.
func answer(t *testing.T, hook *admission.Webhook, req admissionv1.AdmissionRequest) corpusResponse {
	t.Helper()
	resp := hook.Handle(context.Background(), admission.Request{AdmissionRequest: req})
	out := corpusResponse{Allowed: resp.Allowed, Warnings: resp.Warnings}
	if !resp.Allowed && resp.Result != nil {
		out.Code, out.Reason, out.Message = resp.Result.Code, resp.Result.Reason, resp.Result.Message
		if resp.Result.Details != nil {
			out.Causes = resp.Result.Details.Causes
		}
	}
	if len(resp.Patches) > 0 {
		patched := applyPatches(t, req.Object.Raw, resp)
		var err error
		if out.Patched, err = canonicalJSON(patched); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// canonicalJSON re-encodes a document with sorted keys, so that equal objects compare equal.
func canonicalJSON(raw []byte) (json.RawMessage, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

func TestAdmissionCorpus(t *testing.T) {
	handlers := corpusHandlers(t)
	if *recordCorpus {
		recordAdmissionCorpus(t, handlers)
		return
	}
	files, err := filepath.Glob(filepath.Join(corpusDir, "cases-*.jsonl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus in %s (%v): record it with -record-corpus", corpusDir, err)
	}
	total, changed := 0, map[string]int{}
	for _, file := range files {
		cases, err := readJSONLines[corpusCase](file)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			total++
			hook := handlers[c.Policy][c.Path]
			if hook == nil {
				t.Errorf("%s: %s: no handler for path %s under policy %s", filepath.Base(file), c.Name, c.Path, c.Policy)
				continue
			}
			got := answer(t, hook, c.Request)
			diff := diffResponses(c.Response, got)
			if diff == "" {
				continue
			}
			if d := explainDifference(c, got); d != nil {
				changed[d.name]++
				continue
			}
			{
				t.Errorf("%s: %s (policy %s, %s %s %s/%s):\n%s", filepath.Base(file), c.Name, c.Policy, c.Request.Operation, c.Path, c.Request.Namespace, c.Request.Name, diff)
			}
		}
	}
	t.Logf("replayed %d reviews", total)
	for _, d := range intendedDifferences {
		t.Logf("%d reviews answered otherwise than when recorded, as intended: %s (%s)", changed[d.name], d.name, d.test)
	}
}

// intendedDifference is a way in which the handlers answer otherwise than when the corpus was
// recorded, because the old answer was a bug: where the handlers disagreed with each other, or
// let through what the rules exist to stop.
type intendedDifference struct {
	name string
	// test is the test that pins the new answer down.
	test string
	// matches tells whether the difference explains the new answer to a case.
	matches func(c corpusCase, got corpusResponse) bool
}

var intendedDifferences = []intendedDifference{
	{
		name: "engine pods also answer for host namespaces, helpers that run privileged or add capabilities, resource names their profile does not govern, and the budget of the whole pod: every other container declares its requests and limits, exactly one container runs the engine, ephemeral containers need a pod whose containers all have limits (rules added after the recording)",
		test: "policy.TestEngineIsolation, policy.TestEngineResourceNames, policy.TestEngineBudget, policy.TestEphemeralContainersNeedABoundedPod",
		matches: func(c corpusCase, got corpusResponse) bool {
			return onlyAdds(c.Response, got, func(text string) bool {
				for _, s := range []string{"engine pods may not set host", "is not the engine: only the engine container", "does not govern: engine pods may use",
					"is not the engine and declares no", "leaves the engine", "ephemeral containers cannot declare resources",
					"exactly one container of an engine pod", "is named like the engine container", "the pod's effective", "claim dynamic resources",
					"which engine pods may not use", "no volume type this build", "but engine pods may mount only directories below", "must request its storage",
					"only the StatefulSet controller creates pods", "is storage on the node that no quota profile bounds"} {
					if strings.Contains(text, s) {
						return true
					}
				}
				return false
			})
		},
	},
	{
		name: "the storage of an engine's volume claims is summed against the profile's, in one cause that lists them (each claim was compared alone)",
		test: "policy.TestEngineVolumes, policy.TestValidateWorkload",
		matches: func(c corpusCase, got corpusResponse) bool {
			summed := func(want, got string) bool {
				return want == got || strings.Contains(want, "asks for more than the") && strings.Contains(got, "the volume claims of an engine pod ask for")
			}
			if c.Response.Allowed != got.Allowed || c.Response.Code != got.Code || len(got.Causes) != len(c.Response.Causes) || len(got.Warnings) != len(c.Response.Warnings) {
				return false
			}
			for i, w := range c.Response.Causes {
				if g := got.Causes[i]; g.Field != w.Field || !summed(w.Message, g.Message) {
					return false
				}
			}
			for i, w := range c.Response.Warnings {
				if !summed(w, got.Warnings[i]) {
					return false
				}
			}
			return !reflect.DeepEqual(c.Response, got)
		},
	},
	{
		name: "an update of an object being deleted that changes only metadata is denied only for the integrity rules of what it changes, not again for its unchanged spec (the pod handler denied it for both)",
		test: "TestObjectsBeingDeleted",
		matches: func(c corpusCase, got corpusResponse) bool {
			if !strings.Contains(c.Name, "/update-deleting-") || c.Response.Code != 422 || got.Code != 422 || len(got.Causes) >= len(c.Response.Causes) {
				return false
			}
			for _, g := range got.Causes {
				if !slices.ContainsFunc(c.Response.Causes, func(w metav1.StatusCause) bool { return w == g }) {
					return false
				}
			}
			return true
		},
	},
	{
		name: "an undecodable object names its kind as the API does (the pod and namespace handlers said pod and namespace)",
		test: "TestUndecodableObjects",
		matches: func(c corpusCase, got corpusResponse) bool {
			return c.Response.Code == 400 && got.Code == 400 &&
				strings.NewReplacer("the pod:", "the Pod:", "previous pod:", "previous Pod:", "the namespace:", "the Namespace:", "previous namespace:", "previous Namespace:").Replace(c.Response.Message) == got.Message
		},
	},
	{
		name: "an object that cannot be decoded is refused everywhere: in exempt namespaces (the validating pod handler exempted before decoding), by the secrets handlers (which read only the fields they knew), and for kinds read unstructured, whose malformed metadata read as empty",
		test: "TestUndecodableObjects",
		matches: func(c corpusCase, got corpusResponse) bool {
			return strings.Contains(c.Name, "undecodable") && c.Response.Code != 400 && got.Code == 400 && strings.HasPrefix(got.Message, "iss-webhook cannot decode")
		},
	},
	{
		name: "an update of an object being deleted that changes only metadata is judged only by the integrity rules of what it changes, so that no rule of the unchanged spec keeps its finalizers (several handlers judged the whole object again, and denied an object admitted in Warn mode)",
		test: "TestObjectsBeingDeleted",
		matches: func(c corpusCase, got corpusResponse) bool {
			// Before: denied by the kind's rules of the spec (a 422), mutated, or warned about;
			// never a refusal, which still holds (a generated object stays the webhook's).
			was := c.Response
			judged := (!was.Allowed && was.Code == 422) || (was.Allowed && (was.Patched != nil || len(was.Warnings) > 0))
			return strings.HasSuffix(c.Name, "/update-deleting-finalizer") && judged && got.Allowed && got.Patched == nil && len(got.Warnings) == 0
		},
	},
	{
		name: "an update of an object being deleted that changes more than metadata is denied for every kind (the secrets, workload and provisioning handlers admitted any update of such an object: a PushSecret held by its finalizer could be retargeted)",
		test: "TestObjectsBeingDeleted",
		matches: func(c corpusCase, got corpusResponse) bool {
			return strings.HasSuffix(c.Name, "/update-deleting-spec") && (c.Response.Allowed || c.Response.Code == 422) &&
				!got.Allowed && got.Code == 422 && strings.Contains(got.Message, "is being deleted")
		},
	},
	{
		name: "Stacks and Terraforms are denied for the same fields with messages that say what was found: the kubernetes backend and its Secret (it said \"stores state in ,\"), variables outside the allowlist of names, the line of the backend block (rules rewritten after the recording)",
		test: "policy.TestValidateStack, policy.TestValidateTerraform",
		matches: func(c corpusCase, got corpusResponse) bool {
			was := c.Response
			if c.Path != ValidateProvisioningPath || was.Allowed != got.Allowed || was.Code != got.Code || len(got.Warnings) < len(was.Warnings) {
				return false
			}
			for _, w := range was.Causes {
				if !slices.ContainsFunc(got.Causes, func(g metav1.StatusCause) bool { return g.Field == w.Field }) {
					return false
				}
			}
			return true
		},
	},
	{
		name: "Temporal worker Deployments created (or becoming workers) select their pods by the build id and pin images by digest, and every change of their worker code is named field by field (rules added after the recording; a Deployment with a build id is a worker without the worker label too)",
		test: "policy.TestValidateTemporalWorker",
		matches: func(c corpusCase, got corpusResponse) bool {
			want := c.Response
			if c.Path != ValidateWorkloadsPath || c.Request.Kind.Kind != "Deployment" || !bytes.Equal(want.Patched, got.Patched) ||
				!(got.Allowed == want.Allowed && got.Code == want.Code || want.Allowed && !got.Allowed && got.Code == 422) {
				return false
			}
			temporal := func(text string) bool {
				return strings.Contains(text, "Temporal") || strings.Contains(text, "build id") || strings.Contains(text, policy.LabelBuildID)
			}
			differ := func(a, b []string) bool {
				for _, x := range a {
					if !slices.Contains(b, x) && !temporal(x) {
						return false
					}
				}
				return true
			}
			causes := func(r corpusResponse) []string {
				var out []string
				for _, cause := range r.Causes {
					out = append(out, cause.Field+": "+cause.Message)
				}
				return out
			}
			return differ(causes(got), causes(want)) && differ(causes(want), causes(got)) && differ(got.Warnings, want.Warnings) && differ(want.Warnings, got.Warnings)
		},
	},
	{
		name: "HPAs also answer for metrics beside the saturation metric, its selector and target, the scale target, and a behavior that is missing or scales up faster than the policy's maxScaleUp (rules added after the recording; the corpus sends HPAs to the validating webhook without the behavior the mutating one gives them)",
		test: "policy.TestValidateHPA, policy.TestScaleUpBoundHolds",
		matches: func(c corpusCase, got corpusResponse) bool {
			return strings.HasPrefix(c.Path, "/validate-hpas") && onlyAdds(c.Response, got, func(text string) bool {
				return strings.Contains(text, "spec.behavior") || strings.Contains(text, "without behavior the HPA controller") ||
					strings.Contains(text, "beside the saturation metric") || strings.Contains(text, "the saturation metric selects") ||
					strings.Contains(text, "the saturation metric's target") || strings.Contains(text, "HPAs in app namespaces scale")
			})
		},
	},
}

// explainDifference returns the listed difference that explains got, or nil.
func explainDifference(c corpusCase, got corpusResponse) *intendedDifference {
	for i := range intendedDifferences {
		if intendedDifferences[i].matches(c, got) {
			return &intendedDifferences[i]
		}
	}
	return nil
}

// diffResponses says how got differs from want, or nothing.
func diffResponses(want, got corpusResponse) string {
	w, _ := json.Marshal(want)
	g, _ := json.Marshal(got)
	if bytes.Equal(w, g) {
		return ""
	}
	return "  want " + want.summary() + "\n   got " + got.summary()
}

// summary is a response in one line.
func (r corpusResponse) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "allowed=%v", r.Allowed)
	if !r.Allowed {
		fmt.Fprintf(&b, " code=%d message=%q", r.Code, r.Message)
	}
	for _, c := range r.Causes {
		fmt.Fprintf(&b, " cause[%s]=%q", c.Field, c.Message)
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, " warning=%q", w)
	}
	if r.Patched != nil {
		sum := sha256.Sum256(r.Patched)
		fmt.Fprintf(&b, " patched=%x", sum[:4])
	}
	return b.String()
}

func readJSONLines[T any](file string) ([]T, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", file, line, err)
		}
		out = append(out, v)
	}
	return out, sc.Err()
}

func writeJSONLines[T any](file string, items []T) error {
	var buf bytes.Buffer
	for _, it := range items {
		line, err := json.Marshal(it)
		if err != nil {
			return err
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	return os.WriteFile(file, buf.Bytes(), 0o644)
}

// corpusRoute is one webhook of the embedded configurations.
type corpusRoute struct {
	name, path        string
	mutating          bool
	rules             []admissionregistrationv1.RuleWithOperations
	namespaceSelector *metav1.LabelSelector
	objectSelector    *metav1.LabelSelector
}

func corpusRoutes(t *testing.T) []corpusRoute {
	t.Helper()
	mutating, validating, err := manifests.ParseWebhookConfigurations()
	if err != nil {
		t.Fatal(err)
	}
	var routes []corpusRoute
	for _, w := range mutating.Webhooks {
		routes = append(routes, corpusRoute{w.Name, *w.ClientConfig.Service.Path, true, w.Rules, w.NamespaceSelector, w.ObjectSelector})
	}
	for _, w := range validating.Webhooks {
		routes = append(routes, corpusRoute{w.Name, *w.ClientConfig.Service.Path, false, w.Rules, w.NamespaceSelector, w.ObjectSelector})
	}
	return routes
}

// sends tells whether the API server sends the request to this webhook, matchConditions aside
// (they only spare calls that the handlers answer with allowed).
func (r *corpusRoute) sends(req *admissionv1.AdmissionRequest, obj, old *unstructured.Unstructured) bool {
	resource := req.Resource.Resource
	if req.SubResource != "" {
		resource += "/" + req.SubResource
	}
	matched := false
	for _, rule := range r.rules {
		if slices.ContainsFunc(rule.Operations, func(op admissionregistrationv1.OperationType) bool {
			return string(op) == string(req.Operation) || op == admissionregistrationv1.OperationAll
		}) && slices.Contains(rule.APIGroups, req.Resource.Group) && slices.Contains(rule.APIVersions, req.Resource.Version) && slices.Contains(rule.Resources, resource) {
			matched = true
		}
	}
	if !matched {
		return false
	}
	if r.namespaceSelector != nil && req.Namespace != "" {
		set := labels.Set{"kubernetes.io/metadata.name": req.Namespace}
		for k, v := range corpusNamespaces[req.Namespace] {
			set[k] = v
		}
		if s, err := metav1.LabelSelectorAsSelector(r.namespaceSelector); err != nil || !s.Matches(set) {
			return false
		}
	}
	if r.objectSelector != nil {
		s, err := metav1.LabelSelectorAsSelector(r.objectSelector)
		if err != nil {
			return false
		}
		hit := false
		for _, o := range []*unstructured.Unstructured{obj, old} {
			if o != nil && s.Matches(labels.Set(o.GetLabels())) {
				hit = true
			}
		}
		return hit
	}
	return true
}

// clusterScoped are the governed kinds without a namespace.
var clusterScoped = map[string]bool{"Namespace": true, "ClusterNetworkPolicy": true, "ISSPolicy": true, "ClusterSecretStore": true}

// The users of the corpus.
var (
	userAlice   = authenticationv1.UserInfo{Username: "alice", Groups: []string{"system:authenticated"}}
	userAdmin   = authenticationv1.UserInfo{Username: "admin", Groups: []string{"system:masters", "system:authenticated"}}
	userNSCtrl  = authenticationv1.UserInfo{Username: "system:serviceaccount:kube-system:namespace-controller", Groups: []string{"system:serviceaccounts"}}
	userWebhook = authenticationv1.UserInfo{Username: corpusSelf, Groups: []string{"system:serviceaccounts"}}
)

// corpusBuilder collects the cases of one source.
type corpusBuilder struct {
	t        *testing.T
	handlers map[string]map[string]*admission.Webhook
	routes   []corpusRoute
	seen     map[string]bool
	cases    []corpusCase
}

// review sends a request to every webhook that the API server would send it to, under the
// policy named, mutating ones first; with chain, validating webhooks get the mutated object, as
// from the API server.
func (b *corpusBuilder) review(name, pol string, req admissionv1.AdmissionRequest, chain bool) {
	obj, old := decodeCorpusObject(req.Object.Raw), decodeCorpusObject(req.OldObject.Raw)
	for _, mutating := range []bool{true, false} {
		for _, r := range b.routes {
			if r.mutating != mutating || !r.sends(&req, obj, old) {
				continue
			}
			b.add(name, r.path, pol, req)
			if chain && mutating {
				if p := b.cases[len(b.cases)-1].Response.Patched; p != nil {
					req.Object.Raw = p
				}
			}
		}
	}
}

// add records one case unless the same request went to the same path under the same policy.
func (b *corpusBuilder) add(name, path, pol string, req admissionv1.AdmissionRequest) {
	req.UID = types.UID(fmt.Sprintf("corpus-%d", len(b.cases)))
	key, _ := json.Marshal(struct {
		P, Pol string
		R      admissionv1.AdmissionRequest
	}{path, pol, withUID(req, "")})
	sum := sha256.Sum256(key)
	k := hex.EncodeToString(sum[:])
	if b.seen[k] {
		return
	}
	b.seen[k] = true
	req.UID = types.UID("corpus-" + k[:16])
	b.cases = append(b.cases, corpusCase{Name: name, Path: path, Policy: pol, Request: req, Response: answer(b.t, b.handlers[pol][path], req)})
}

func withUID(req admissionv1.AdmissionRequest, uid types.UID) admissionv1.AdmissionRequest {
	req.UID = uid
	return req
}

func decodeCorpusObject(raw []byte) *unstructured.Unstructured {
	if len(raw) == 0 {
		return nil
	}
	u := &unstructured.Unstructured{}
	if err := json.Unmarshal(raw, &u.Object); err != nil {
		return nil
	}
	return u
}

// request is the admission request of an operation on obj (old for updates and deletes).
func request(op admissionv1.Operation, subresource string, user authenticationv1.UserInfo, obj, old *unstructured.Unstructured) admissionv1.AdmissionRequest {
	ref := obj
	if ref == nil {
		ref = old
	}
	gvk := ref.GroupVersionKind()
	req := admissionv1.AdmissionRequest{
		Kind:        metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
		Resource:    metav1.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: FindKind(gvk.Group, gvk.Kind).Resource},
		SubResource: subresource, Name: ref.GetName(), Namespace: ref.GetNamespace(), Operation: op, UserInfo: user,
	}
	req.RequestKind, req.RequestResource = &req.Kind, &req.Resource
	if obj != nil {
		req.Object.Raw = typedJSON(obj)
	}
	if old != nil {
		req.OldObject.Raw = typedJSON(old)
	}
	return req
}

var corpusCodecs = serializer.NewCodecFactory(NewScheme())

// typedJSON encodes an object as the API server sends it to webhooks: built-in kinds through
// their typed form, which writes the empty structs that patches refer to; other kinds as they are.
func typedJSON(obj *unstructured.Unstructured) []byte {
	raw := mustJSON(obj.Object)
	typed, _, err := corpusCodecs.UniversalDeserializer().Decode(raw, nil, nil)
	if err != nil {
		return raw
	}
	return mustJSON(typed)
}

func mustJSON(v any) []byte {
	raw, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return raw
}

// variants reviews one object in the variants that reach different branches of the handlers;
// next is another object of the same kind, the other side of an update that changes the spec.
func (b *corpusBuilder) variants(name string, obj, next *unstructured.Unstructured) {
	if ns := obj.GetNamespace(); ns == "" && !clusterScoped[obj.GetKind()] {
		obj.SetNamespace("team-a-dev")
	} else if clusterScoped[obj.GetKind()] {
		obj.SetNamespace("")
	}
	create := request(admissionv1.Create, "", userAlice, obj, nil)
	for _, pol := range []string{"default", "warn", "audit", "exempt", "verify-deny", "verify-warn", "verify-deny-warn", "verify-audit"} {
		if strings.HasPrefix(pol, "verify") && obj.GetKind() != "ExternalSecret" {
			continue
		}
		b.review(name+"/create", pol, create, true)
	}
	dry := create
	dry.DryRun = ptrTo(true)
	b.review(name+"/create-dry-run", "default", dry, true)
	b.review(name+"/create-admin", "default", request(admissionv1.Create, "", userAdmin, obj, nil), true)
	b.review(name+"/create-webhook", "default", request(admissionv1.Create, "", userWebhook, obj, nil), true)
	if !clusterScoped[obj.GetKind()] {
		for _, ns := range []string{"default", "egress-down", "cache-down", "team-b-staging"} {
			moved := obj.DeepCopy()
			moved.SetNamespace(ns)
			b.review(name+"/create-in-"+ns, "default", request(admissionv1.Create, "", userAlice, moved, nil), true)
		}
	}
	if initiator := obj.GetAnnotations()[policy.AnnotationInitiatorID]; initiator != "" {
		self := authenticationv1.UserInfo{Username: initiator, Groups: []string{"system:authenticated"}}
		b.review(name+"/create-by-initiator", "default", request(admissionv1.Create, "", self, obj, nil), true)
	}

	for _, u := range []authenticationv1.UserInfo{userAlice, userAdmin, userWebhook} {
		b.review(name+"/update-unchanged-"+u.Username, "default", request(admissionv1.Update, "", u, obj, obj), false)
		relabelled := obj.DeepCopy()
		lbls := relabelled.GetLabels()
		if lbls == nil {
			lbls = map[string]string{}
		}
		lbls["team"] = "other"
		lbls[policy.LabelEngine] = "dagger"
		relabelled.SetLabels(lbls)
		b.review(name+"/update-labels-"+u.Username, "default", request(admissionv1.Update, "", u, relabelled, obj), false)
		unannotated := obj.DeepCopy()
		unannotated.SetAnnotations(nil)
		b.review(name+"/update-annotations-removed-"+u.Username, "default", request(admissionv1.Update, "", u, unannotated, obj), false)
		b.review(name+"/delete-"+u.Username, "default", request(admissionv1.Delete, "", u, nil, obj), false)
	}
	b.review(name+"/delete-ns-controller", "default", request(admissionv1.Delete, "", userNSCtrl, nil, obj), false)
	for _, sub := range []string{"status", "scale", "resize", "ephemeralcontainers", "finalize"} {
		changed := obj.DeepCopy()
		changed.SetLabels(map[string]string{"touched": "yes"})
		b.review(name+"/update-"+sub, "default", request(admissionv1.Update, sub, userAlice, changed, obj), false)
		b.review(name+"/update-"+sub+"-unchanged", "default", request(admissionv1.Update, sub, userAlice, obj, obj), false)
	}
	if next != nil {
		moved := next.DeepCopy()
		moved.SetName(obj.GetName())
		moved.SetNamespace(obj.GetNamespace())
		for _, pol := range []string{"default", "warn", "exempt"} {
			b.review(name+"/update-spec", pol, request(admissionv1.Update, "", userAlice, moved, obj), false)
		}
		b.review(name+"/update-spec-admin", "default", request(admissionv1.Update, "", userAdmin, moved, obj), false)
		// An object held by a finalizer while being deleted: a finalizer removed, and the spec
		// changed.
		deleting := obj.DeepCopy()
		deleting.SetDeletionTimestamp(&metav1.Time{Time: mustTime("2026-01-02T03:04:05Z")})
		deleting.SetFinalizers([]string{"example.org/hold", "example.org/other"})
		released := deleting.DeepCopy()
		released.SetFinalizers([]string{"example.org/other"})
		b.review(name+"/update-deleting-finalizer", "default", request(admissionv1.Update, "", userAlice, released, deleting), false)
		retargeted := moved.DeepCopy()
		retargeted.SetDeletionTimestamp(deleting.GetDeletionTimestamp())
		retargeted.SetFinalizers(deleting.GetFinalizers())
		b.review(name+"/update-deleting-spec", "default", request(admissionv1.Update, "", userAlice, retargeted, deleting), false)
	}
	// Undecodable bodies: a field of the wrong type.
	broken := obj.DeepCopy()
	broken.Object["metadata"] = map[string]any{"name": obj.GetName(), "namespace": obj.GetNamespace(), "labels": "not-a-map"}
	for _, pol := range []string{"default", "exempt"} {
		b.review(name+"/create-undecodable", pol, request(admissionv1.Create, "", userAlice, broken, nil), false)
	}
	b.review(name+"/update-undecodable", "default", request(admissionv1.Update, "", userAlice, broken, obj), false)
}

func ptrTo[T any](v T) *T { return &v }

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// corpusObjects reads the objects of YAML files, skipping empty documents.
func corpusObjects(t *testing.T, files ...string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		dec := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
		for {
			doc, err := dec.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			j, err := yaml.YAMLToJSON(doc)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			u := &unstructured.Unstructured{}
			if err := json.Unmarshal(j, &u.Object); err != nil || u.Object == nil || u.GetKind() == "" {
				continue
			}
			objs = append(objs, u)
		}
	}
	return objs
}

// recordAdmissionCorpus writes the corpus anew, one file per source.
func recordAdmissionCorpus(t *testing.T, handlers map[string]map[string]*admission.Webhook) {
	routes := corpusRoutes(t)
	glob := func(pattern string) []string {
		files, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(files)
		return files
	}
	sources := []struct {
		name  string
		files []string
	}{
		{"examples", glob("../manifests/examples/*.yaml")},
		{"goldens", glob("../mutators/testdata/*.in.yaml")},
		{"objects", []string{filepath.Join(corpusDir, "objects.yaml")}},
	}
	for _, src := range sources {
		b := &corpusBuilder{t: t, handlers: handlers, routes: routes, seen: map[string]bool{}}
		objs := corpusObjects(t, src.files...)
		for i, obj := range objs {
			var next *unstructured.Unstructured
			for j := 1; j < len(objs); j++ {
				if o := objs[(i+j)%len(objs)]; o.GetKind() == obj.GetKind() && o.GetAPIVersion() == obj.GetAPIVersion() {
					next = o
					break
				}
			}
			b.variants(fmt.Sprintf("%s/%s/%s", src.name, obj.GetKind(), obj.GetName()), obj, next)
		}
		writeCorpus(t, src.name, b.cases)
	}
	// The reviews of an end-to-end run, as the API server sent them, under each policy.
	recorded := filepath.Join(corpusDir, "e2e-requests.jsonl")
	if _, err := os.Stat(recorded); err == nil {
		reviews, err := readJSONLines[recordedReview](recorded)
		if err != nil {
			t.Fatal(err)
		}
		b := &corpusBuilder{t: t, handlers: handlers, routes: routes, seen: map[string]bool{}}
		for _, r := range reviews {
			name := fmt.Sprintf("e2e/%s/%s/%s", r.Request.Kind.Kind, r.Request.Namespace, r.Request.Name)
			for _, pol := range []string{"default", "warn", "audit", "exempt"} {
				b.add(name, r.Path, pol, r.Request)
			}
		}
		writeCorpus(t, "e2e", b.cases)
	}
}

// recordedReview is one line of e2e-requests.jsonl: a review the API server sent.
type recordedReview struct {
	Path    string                       `json:"path"`
	Request admissionv1.AdmissionRequest `json:"request"`
}

func writeCorpus(t *testing.T, source string, cases []corpusCase) {
	t.Helper()
	file := filepath.Join(corpusDir, "cases-"+source+".jsonl")
	if err := writeJSONLines(file, cases); err != nil {
		t.Fatal(err)
	}
	denied := 0
	for _, c := range cases {
		if !c.Response.Allowed {
			denied++
		}
	}
	t.Logf("%s: %d reviews, %d denied", file, len(cases), denied)
}

// onlyAdds tells whether got answers as want did but for violations that added says are new: a
// denial with more causes, or, in Warn mode, more warnings, or a denial of what was admitted,
// for new causes only.
func onlyAdds(want, got corpusResponse, added func(text string) bool) bool {
	contains := func(list []metav1.StatusCause, c metav1.StatusCause) bool {
		return slices.ContainsFunc(list, func(w metav1.StatusCause) bool { return w == c })
	}
	newCauses, newWarnings := 0, 0
	for _, g := range got.Causes {
		if !contains(want.Causes, g) {
			if !added(g.Message) {
				return false
			}
			newCauses++
		}
	}
	for _, g := range got.Warnings {
		if !slices.Contains(want.Warnings, g) {
			if !added(g) {
				return false
			}
			newWarnings++
		}
	}
	switch {
	case !got.Allowed && got.Code == 422:
		// A refusal that came after the rules (egress objects not written) now gives way to them.
		return newCauses > 0 && (want.Allowed || want.Code == 422 || (want.Code == 403 && newCauses == len(got.Causes)))
	case got.Allowed && want.Allowed:
		return newWarnings > 0 && bytes.Equal(got.Patched, want.Patched)
	}
	return false
}

// applyPatches returns the object of a request with the response's JSON patch applied.
func applyPatches(t testing.TB, object []byte, resp admission.Response) []byte {
	t.Helper()
	ops, err := json.Marshal(resp.Patches)
	if err != nil {
		t.Fatal(err)
	}
	patch, err := jsonpatch5.DecodePatch(ops)
	if err != nil {
		t.Fatal(err)
	}
	patched, err := patch.Apply(object)
	if err != nil {
		t.Fatalf("the patch %s does not apply: %v", ops, err)
	}
	return patched
}
