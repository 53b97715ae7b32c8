package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/iss-platform/iss-webhook/policy"
	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
	"github.com/iss-platform/iss-webhook/webhook"
)

// checkOptions are the flags of issctl check.
type checkOptions struct {
	files           []string
	namespace       string
	namespaceLabels map[string]string
	user            string
	output          string
	showPatch       bool
	policyFile      string
}

func check(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o := checkOptions{}
	fs := flag.NewFlagSet("issctl check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: issctl check -f FILE|DIR|- [flags]

Runs each object of the manifests (multi-document YAML or JSON, and Lists) through the admission
webhooks of iss-webhook, as the API server would on create: mutations first, then validations.
Prints each object's outcome. The policy is the built-in default, or the ISSPolicy of --policy;
its enforcement modes apply as in the cluster (Warn admits with warnings), except that Audit
shows its violations as warnings too. Exit code 0 when all are admitted, 1 when any is denied, 2
on usage or parse errors.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.Func("f", "a manifest file, a directory of them (*.yaml, *.yml, *.json), or - for standard input; repeatable", func(v string) error {
		o.files = append(o.files, v)
		return nil
	})
	fs.StringVar(&o.namespace, "namespace", "default", "namespace of objects that name none")
	labelsFlag := fs.String("namespace-labels", "", "labels of the objects' namespace, as k=v,k=v (for example iss.platform/app-id=team-a,iss.platform/environment=dev)")
	fs.StringVar(&o.user, "user", "issctl", "the requesting user, as the webhook would see it")
	fs.StringVar(&o.output, "o", "text", "output format: text or json")
	fs.BoolVar(&o.showPatch, "show-patch", false, "also print the JSON patch the mutating webhooks would apply")
	fs.StringVar(&o.policyFile, "policy", "", "an ISSPolicy manifest to check with instead of the built-in default")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitConform
		}
		return exitUsage
	}
	if len(o.files) == 0 || fs.NArg() > 0 || (o.output != "text" && o.output != "json") {
		fmt.Fprintln(stderr, "issctl check: give manifests with -f, and -o text or json; see --help")
		return exitUsage
	}
	var err error
	if o.namespaceLabels, err = parseLabels(*labelsFlag); err != nil {
		fmt.Fprintln(stderr, "issctl check: --namespace-labels:", err)
		return exitUsage
	}
	pol := policy.Default()
	if o.policyFile != "" {
		if pol, err = loadPolicyFile(o.policyFile); err != nil {
			fmt.Fprintln(stderr, "issctl check: --policy:", err)
			return exitUsage
		}
	}
	// In the cluster Audit admits silently; offline that would hide the violation from the
	// developer, so it is shown as a Warn-mode warning.
	for g, mode := range pol.Enforcement {
		if mode == v1alpha1.Audit {
			pol.Enforcement[g] = v1alpha1.Warn
		}
	}
	objects, err := readObjects(o.files, stdin)
	if err != nil {
		fmt.Fprintln(stderr, "issctl check:", err)
		return exitUsage
	}

	metrics, err := webhook.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		fmt.Fprintln(stderr, "issctl check:", err)
		return exitUsage
	}
	handlers := webhook.Handlers(webhook.NewScheme(), webhook.Options{AllCauses: true,
		Policies: policy.NewHolder(pol), Metrics: metrics, Namespaces: fixedNamespace{name: o.namespace, labels: o.namespaceLabels},
	})
	r, err := newReviewer(handlers)
	user := authenticationv1.UserInfo{Username: o.user, Groups: []string{"system:authenticated"}}
	if err != nil {
		fmt.Fprintln(stderr, "issctl check:", err)
		return exitUsage
	}

	var results []result
	code := exitConform
	for _, obj := range objects {
		namespace := obj.GetNamespace()
		if k := webhook.FindKind(obj.GroupVersionKind().Group, obj.GetKind()); namespace == "" && (k == nil || k.Scope != admissionregistrationv1.ClusterScope) {
			namespace = o.namespace
		}
		out, err := r.review(ctx, obj.Unstructured, namespace, o.namespaceLabels, user)
		if err != nil {
			fmt.Fprintf(stderr, "issctl check: %s: %s %s: %v\n", obj.file, obj.GetKind(), obj.GetName(), err)
			return exitUsage
		}
		if !out.Allowed {
			code = exitViolation
		}
		if !o.showPatch {
			out.Patch = nil
		}
		results = append(results, result{File: obj.file, Kind: obj.GetKind(), Name: obj.GetName(), Namespace: namespace, outcome: out})
	}
	printResults(stdout, o.output, results)
	return code
}

// result is the outcome of one object, with where it came from.
type result struct {
	File      string `json:"file,omitempty"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	outcome
}

// printResults prints results as JSON, or as text with one line per object and one per
// violation, field path first, as kubectl prints a denial.
func printResults(w io.Writer, format string, results []result) {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(results)
		return
	}
	for _, res := range results {
		status := "conforms"
		switch {
		case !res.Allowed:
			status = "denied"
		case len(res.Warnings) > 0:
			status = "admitted with warnings"
		}
		where := "namespace " + res.Namespace
		if res.Namespace == "" {
			where = "cluster-scoped"
		}
		if res.File != "" {
			where += ", " + res.File
		}
		fmt.Fprintf(w, "%s/%s (%s): %s\n", strings.ToLower(res.Kind), res.Name, where, status)
		for _, warning := range res.Warnings {
			fmt.Fprintf(w, "  Warning: %s\n", warning)
		}
		switch {
		case len(res.Violations) > 0:
			for _, v := range res.Violations {
				fmt.Fprintf(w, "  * %s: %s\n", v.Field, v.Message)
			}
		case !res.Allowed:
			fmt.Fprintf(w, "  %s\n", res.Message)
		}
		if len(res.Patch) > 0 {
			patch, _ := json.Marshal(res.Patch)
			fmt.Fprintf(w, "  patch: %s\n", patch)
		}
	}
}

// fixedNamespace answers every namespace lookup with the labels given on the command line, and
// knows one namespace to select: the one of --namespace.
type fixedNamespace struct {
	name   string
	labels map[string]string
}

func (f fixedNamespace) Namespace(_ context.Context, name string) (policy.Namespace, error) {
	return policy.NamespaceFromLabels(name, f.labels), nil
}

func (f fixedNamespace) SelectNamespaces(ctx context.Context, selector labels.Selector) ([]policy.Namespace, error) {
	return policy.NamespaceLabels{f.name: f.labels}.SelectNamespaces(ctx, selector)
}

func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if s == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

// sourcedObject is an object and the file it came from.
type sourcedObject struct {
	*unstructured.Unstructured
	file string
}

// readObjects reads every object of the files, directories and standard input, unfolding Lists.
func readObjects(paths []string, stdin io.Reader) ([]sourcedObject, error) {
	var files []string
	for _, p := range paths {
		if p == "-" {
			files = append(files, p)
			continue
		}
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			files = append(files, p)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if ext := filepath.Ext(path); !d.IsDir() && (ext == ".yaml" || ext == ".yml" || ext == ".json") {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		sort.Strings(found)
		files = append(files, found...)
	}
	var objects []sourcedObject
	for _, f := range files {
		var r io.Reader = stdin
		name := "stdin"
		if f != "-" {
			file, err := os.Open(f)
			if err != nil {
				return nil, err
			}
			defer file.Close()
			r, name = file, f
		}
		decoder := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
		for doc := 1; ; doc++ {
			obj := &unstructured.Unstructured{}
			if err := decoder.Decode(&obj.Object); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, fmt.Errorf("%s, document %d: %w", name, doc, err)
			}
			if len(obj.Object) == 0 {
				continue
			}
			if obj.GetKind() == "" || obj.GetAPIVersion() == "" {
				return nil, fmt.Errorf("%s, document %d: no apiVersion or kind", name, doc)
			}
			if obj.IsList() {
				list, err := obj.ToList()
				if err != nil {
					return nil, fmt.Errorf("%s, document %d: %w", name, doc, err)
				}
				for i := range list.Items {
					objects = append(objects, sourcedObject{Unstructured: &list.Items[i], file: name})
				}
				continue
			}
			objects = append(objects, sourcedObject{Unstructured: obj, file: name})
		}
	}
	return objects, nil
}
