package webhook

// The fuzz tests of the handlers: whatever the API server, or anything that reaches the
// webhook's port, sends, every handler answers with an AdmissionReview, never panics, never
// answers 5xx, and never allows what the adapter cannot decode as the kind the request names.
//
// FuzzAdmissionReviewBody feeds arbitrary bytes as the HTTP body of a review to each path;
// FuzzAdmissionReviewObjects keeps a well-formed review and varies the kind, version,
// operation, subresource, user, namespace, policy and the object and stored object. Both are
// seeded with every review of testdata/corpus; what they find is kept in testdata/fuzz, which
// plain go test replays. Run them with make fuzz (docs/development.md).

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	jsonpatch5 "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/iss-platform/iss-webhook/policy"
	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
)

// fuzzNamespaces knows the corpus's namespaces and always answers: an unavailable fact would
// be a legitimate 503, which the fuzz tests must not confuse with a failure of the handlers.
type fuzzNamespaces struct{}

func (fuzzNamespaces) Namespace(_ context.Context, name string) (policy.Namespace, error) {
	return policy.NamespaceFromLabels(name, corpusNamespaces[name]), nil
}

func (fuzzNamespaces) SelectNamespaces(ctx context.Context, selector labels.Selector) ([]policy.Namespace, error) {
	return policy.NamespaceLabels(corpusNamespaces).SelectNamespaces(ctx, selector)
}

// fuzzPolicies are the policies the objects are reviewed under: the default, every group in
// Warn mode (the mutators apply what they can, the validators admit with warnings), and the
// corpus's namespace team-a-dev exempt.
func fuzzPolicies() []*policy.Policy {
	warn := policy.Default()
	for _, g := range policy.ConfigurableRuleGroups() {
		warn.Enforcement[g] = v1alpha1.Warn
	}
	exempt := policy.Default()
	exempt.ExemptNamespaces = []string{"team-a-dev"}
	return []*policy.Policy{policy.Default(), warn, exempt}
}

// fuzzPaths are the paths the webhook serves, in a fixed order.
func fuzzPaths() []string {
	var paths []string
	for _, e := range Endpoints() {
		if !slices.Contains(paths, e.Path) {
			paths = append(paths, e.Path)
		}
	}
	sort.Strings(paths)
	return paths
}

// fuzzHandlers returns the handlers of every path under each fuzz policy, built as the server
// builds them, with facts that always answer.
func fuzzHandlers(f *testing.F) []map[string]*admission.Webhook {
	f.Helper()
	var byPolicy []map[string]*admission.Webhook
	for _, pol := range fuzzPolicies() {
		byPolicy = append(byPolicy, Handlers(NewScheme(), Options{
			Policies: policy.NewHolder(pol), Metrics: testMetrics(f), Egress: corpusEgress{}, Self: corpusSelf,
			Namespaces: fuzzNamespaces{}, Engines: corpusEngines{},
		}))
	}
	return byPolicy
}

// recording is a handler that remembers the request controller-runtime decoded from the body
// and hands it on.
type recording struct {
	inner admission.Handler
	got   **admission.Request
}

func (r recording) Handle(ctx context.Context, req admission.Request) admission.Response {
	*r.got = &req
	return r.inner.Handle(ctx, req)
}

// serve posts body to the path's webhook through its http.Handler, as the server does, with
// panics not recovered so that the fuzzer sees them, and checks the answer.
func serve(t *testing.T, hook *admission.Webhook, path string, body []byte) {
	t.Helper()
	var got *admission.Request
	wh := &admission.Webhook{Handler: recording{inner: hook.Handler, got: &got}}
	wh.WithRecoverPanic(false)
	r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	wh.ServeHTTP(w, r)
	checkAnswer(t, hook.Handler.(pathHandler), path, got, w)
}

// checkAnswer holds an answer to what every answer must be: an AdmissionReview with a response,
// no 5xx; for a body controller-runtime could not read as a review, a denial; an allow only of
// a kind the path governs, whose sides the adapter decodes (or of an operation the
// configurations never send, which the adapter admits unread); a patch that applies to the
// object and leaves it decodable.
func checkAnswer(t *testing.T, ph pathHandler, path string, req *admission.Request, w *httptest.ResponseRecorder) {
	t.Helper()
	if w.Code >= 500 {
		t.Fatalf("%s: HTTP %d: %s", path, w.Code, w.Body.Bytes())
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(w.Body.Bytes(), &review); err != nil || review.Response == nil {
		t.Fatalf("%s: the answer is no AdmissionReview with a response (%v): %s", path, err, w.Body.Bytes())
	}
	resp := review.Response
	if resp.Result != nil && resp.Result.Code >= 500 {
		t.Fatalf("%s: answered %d: %s", path, resp.Result.Code, resp.Result.Message)
	}
	if req == nil {
		if resp.Allowed {
			t.Fatalf("%s: allowed a body that is no AdmissionReview", path)
		}
		return
	}
	if resp.UID != req.UID {
		t.Fatalf("%s: the answer's uid %q is not the request's %q", path, resp.UID, req.UID)
	}
	if !resp.Allowed {
		if len(resp.Patch) > 0 {
			t.Fatalf("%s: a denial carries a patch", path)
		}
		return
	}
	a, ok := ph[schema.GroupKind{Group: req.Kind.Group, Kind: req.Kind.Kind}]
	if !ok && req.Operation == admissionv1.Connect {
		// A connect names the kind of its options; the resource says whose.
		a, ok = ph.byResource(req.Resource.Group, req.Resource.Resource)
	}
	if !ok {
		t.Fatalf("%s: allowed %s %s, which the path does not govern", path, req.Kind.Group, req.Kind.Kind)
	}
	if !a.sent[operationOn{req.Operation, req.SubResource}] || req.Operation == admissionv1.Connect {
		// A connect carries no object, which the adapter does not read.
		if len(resp.Patch) > 0 {
			t.Fatalf("%s: patched an operation it does not review", path)
		}
		return
	}
	for _, side := range []struct {
		name string
		raw  runtime.RawExtension
		need bool
	}{{"object", req.Object, req.Operation != admissionv1.Delete}, {"oldObject", req.OldObject, req.Operation != admissionv1.Create}} {
		if _, err := a.decode(side.raw, side.need); err != nil {
			t.Fatalf("%s: allowed %s %s %s whose %s cannot be decoded: %v", path, req.Operation, req.SubResource, a.kind.Kind, side.name, err)
		}
	}
	if len(resp.Patch) > 0 {
		patch, err := jsonpatch5.DecodePatch(resp.Patch)
		if err != nil {
			t.Fatalf("%s: the patch is no JSON patch: %v", path, err)
		}
		patched, err := patch.Apply(req.Object.Raw)
		if err != nil {
			t.Fatalf("%s: the patch does not apply to the object: %v\npatch %s", path, err, resp.Patch)
		}
		if _, err := a.decode(runtime.RawExtension{Raw: patched}, true); err != nil {
			t.Fatalf("%s: the patched object cannot be decoded: %v", path, err)
		}
	}
}

// corpusSeeds returns the distinct reviews of testdata/corpus, with their paths.
func corpusSeeds(f *testing.F) []corpusCase {
	f.Helper()
	files, err := filepath.Glob(filepath.Join(corpusDir, "cases-*.jsonl"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no corpus cases in %s: %v", corpusDir, err)
	}
	seen := map[string]bool{}
	var seeds []corpusCase
	for _, file := range files {
		cases, err := readJSONLines[corpusCase](file)
		if err != nil {
			f.Fatal(err)
		}
		for _, c := range cases {
			c.Request.UID = "fuzz"
			key := c.Path + string(mustJSON(c.Request))
			if !seen[key] {
				seen[key] = true
				seeds = append(seeds, c)
			}
		}
	}
	return seeds
}

// admissionReviewBody is the HTTP body of a review of req.
func admissionReviewBody(req *admissionv1.AdmissionRequest) []byte {
	return mustJSON(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  req,
	})
}

// FuzzAdmissionReviewBody: arbitrary bytes as the body of a review, to any path.
func FuzzAdmissionReviewBody(f *testing.F) {
	paths := fuzzPaths()
	hooks := fuzzHandlers(f)[0]
	for _, c := range corpusSeeds(f) {
		f.Add(uint8(slices.Index(paths, c.Path)), admissionReviewBody(&c.Request))
	}
	for i := range paths {
		for _, body := range []string{"", "{}", "null", "[]", `{"request":null}`, `{"request":{}}`, `{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x","operation":"CREATE","object":{}}}`,
			"apiVersion: admission.k8s.io/v1\nkind: AdmissionReview\nrequest: {uid: y, operation: CREATE}\n"} {
			f.Add(uint8(i), []byte(body))
		}
	}
	f.Fuzz(func(t *testing.T, endpoint uint8, body []byte) {
		path := paths[int(endpoint)%len(paths)]
		serve(t, hooks[path], path, body)
	})
}

// The users a fuzzed review comes from: an ordinary user, a trusted one, the namespace
// controller (trusted by the default policy) and the webhook itself.
var fuzzUsers = []authenticationv1.UserInfo{userAlice, userAdmin, userNSCtrl, userWebhook}

// FuzzAdmissionReviewObjects: a well-formed review of any governed kind (or another kind), to
// each path that governs it, with any operation, subresource, user, namespace and policy, and
// any bytes as the object and the stored object, in each of which any one node may be replaced
// by any JSON value. Bytes that are not JSON are sent as a JSON string, so that the review stays
// well-formed.
func FuzzAdmissionReviewObjects(f *testing.F) {
	kinds := GovernedKinds()
	hooks := fuzzHandlers(f)
	for _, c := range corpusSeeds(f) {
		r := c.Request
		kind := slices.IndexFunc(kinds, func(k Kind) bool { return k.Group == r.Kind.Group && k.Kind == r.Kind.Kind })
		if kind < 0 {
			kind = len(kinds)
		}
		user := slices.IndexFunc(fuzzUsers, func(u authenticationv1.UserInfo) bool { return u.Username == r.UserInfo.Username })
		policyIndex := uint8(0)
		switch c.Policy {
		case "warn":
			policyIndex = 1
		case "exempt":
			policyIndex = 2
		}
		f.Add(uint8(kind), r.Kind.Kind, r.Kind.Version, string(r.Operation), r.SubResource, uint8(max(user, 0)), r.Namespace, policyIndex, r.Object.Raw, r.OldObject.Raw, uint16(0), "", uint16(0), "")
	}
	f.Fuzz(func(t *testing.T, kind uint8, kindName, version, operation, subresource string, user uint8, namespace string, pol uint8, object, oldObject []byte, node uint16, value string, oldNode uint16, oldValue string) {
		req := &admissionv1.AdmissionRequest{
			UID: "fuzz", Operation: admissionv1.Operation(operation), SubResource: subresource, Namespace: namespace, Name: "fuzzed",
			UserInfo: fuzzUsers[int(user)%len(fuzzUsers)], Object: fuzzRaw(replaceNode(object, node, value)), OldObject: fuzzRaw(replaceNode(oldObject, oldNode, oldValue)),
		}
		var paths []string
		if int(kind) < len(kinds) {
			k := kinds[kind]
			if version == "" || !slices.Contains(k.Versions, version) {
				version = k.Versions[0]
			}
			req.Kind = metav1.GroupVersionKind{Group: k.Group, Version: version, Kind: k.Kind}
			req.Resource = metav1.GroupVersionResource{Group: k.Group, Version: version, Resource: k.Resource}
			for _, r := range k.Rules {
				if !slices.Contains(paths, r.Webhook.Path) {
					paths = append(paths, r.Webhook.Path)
				}
			}
		} else {
			// A kind no rule names, to every path: the handlers deny it.
			req.Kind = metav1.GroupVersionKind{Version: version, Kind: kindName}
			req.Resource = metav1.GroupVersionResource{Version: version, Resource: kindName}
			paths = fuzzPaths()
		}
		req.RequestKind, req.RequestResource = &req.Kind, &req.Resource
		body := admissionReviewBody(req)
		for _, path := range paths {
			serve(t, hooks[int(pol)%len(hooks)][path], path, body)
		}
	})
}

// fuzzRaw is an object of a fuzzed review: absent when empty, as is when JSON, else a JSON
// string of the bytes.
func fuzzRaw(b []byte) runtime.RawExtension {
	switch {
	case len(b) == 0:
		return runtime.RawExtension{}
	case json.Valid(b):
		return runtime.RawExtension{Raw: b}
	}
	return runtime.RawExtension{Raw: mustJSON(string(b))}
}

// replaceNode returns a JSON document with its node-th value (counted depth first, keys in
// sorted order, the document itself first) replaced by value read as JSON, or as a string when
// it is not JSON: byte mutations rarely turn a map into a list or a string into a number, and the
// rules read every field. Without a value, or when raw is not JSON, raw is returned as it is.
func replaceNode(raw []byte, node uint16, value string) []byte {
	var doc any
	if value == "" || json.Unmarshal(raw, &doc) != nil {
		return raw
	}
	var replacement any = value
	if json.Valid([]byte(value)) {
		_ = json.Unmarshal([]byte(value), &replacement)
	}
	var count func(v any) int
	count = func(v any) int {
		n := 1
		switch v := v.(type) {
		case map[string]any:
			for _, c := range v {
				n += count(c)
			}
		case []any:
			for _, c := range v {
				n += count(c)
			}
		}
		return n
	}
	target := int(node) % count(doc)
	var walk func(v any) any
	walk = func(v any) any {
		if target == 0 {
			target--
			return replacement
		}
		target--
		switch v := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				if target < 0 {
					break
				}
				v[k] = walk(v[k])
			}
		case []any:
			for i := range v {
				if target < 0 {
					break
				}
				v[i] = walk(v[i])
			}
		}
		return v
	}
	return mustJSON(walk(doc))
}

func TestReplaceNode(t *testing.T) {
	for _, tc := range []struct {
		node  uint16
		value string
		want  string
	}{
		{0, "", `{"a":{"b":[1,2]},"c":"d"}`},
		{0, `[]`, `[]`},
		{1, `"x"`, `{"a":"x","c":"d"}`},
		{3, `{"k":true}`, `{"a":{"b":[{"k":true},2]},"c":"d"}`},
		{5, `not json`, `{"a":{"b":[1,2]},"c":"not json"}`},
		{7, `null`, `{"a":null,"c":"d"}`}, // past the last node: counted again from the top
	} {
		if got := string(replaceNode([]byte(`{"a":{"b":[1,2]},"c":"d"}`), tc.node, tc.value)); got != tc.want {
			t.Errorf("node %d = %s: got %s, want %s", tc.node, tc.value, got, tc.want)
		}
	}
}
