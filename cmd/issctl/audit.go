package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	openreportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/iss-platform/iss-webhook/policy"
	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
	"github.com/iss-platform/iss-webhook/webhook"
)

// ReportName is the name of the OpenReports Report that issctl audit writes in each namespace.
const ReportName = "iss-webhook-audit"

// auditOptions are the flags of issctl audit.
type auditOptions struct {
	kubeconfig   string
	output       string
	writeReports bool
}

func audit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o := auditOptions{}
	fs := flag.NewFlagSet("issctl audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: issctl audit [flags]

Lists the objects of a live cluster that violate the policy in force (the ISSPolicy "default",
else the built-in default): objects admitted before the policy tightened, in Warn or Audit mode,
or while the webhook was not installed. Every rule group is judged as if enforced. With
--write-reports, writes an OpenReports Report (openreports.io/v1alpha1) named iss-webhook-audit
into each audited namespace, which policy-report dashboards show. Exit code 0 when nothing
violates, 1 when something does, 2 when the audit could not run.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "path of a kubeconfig; empty means $KUBECONFIG, else ~/.kube/config")
	fs.StringVar(&o.output, "o", "text", "output format: text or json")
	fs.BoolVar(&o.writeReports, "write-reports", false, "write an OpenReports Report per namespace")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitConform
		}
		return exitUsage
	}
	if fs.NArg() > 0 || (o.output != "text" && o.output != "json") {
		fmt.Fprintln(stderr, "issctl audit: unexpected arguments, or -o other than text or json; see --help")
		return exitUsage
	}
	code, err := runAudit(ctx, o, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "issctl audit:", err)
		return exitUsage
	}
	return code
}

// policyInForce returns the policy the webhook enforces, judged with every rule group enforced,
// and says where it came from.
func policyInForce(ctx context.Context, c client.Client) (*policy.Policy, string, error) {
	obj := &v1alpha1.ISSPolicy{}
	err := c.Get(ctx, client.ObjectKey{Name: v1alpha1.PolicyName}, obj)
	var pol *policy.Policy
	var source string
	switch {
	case apierrors.IsNotFound(err) || meta.IsNoMatchError(err):
		pol, source = policy.Default(), "the built-in default (no ISSPolicy default)"
	case err != nil:
		return nil, "", fmt.Errorf("reading the ISSPolicy: %w", err)
	default:
		p, errs := policy.FromISSPolicy(&obj.Spec)
		if len(errs) > 0 {
			return nil, "", fmt.Errorf("the ISSPolicy default is invalid, and the webhook enforces the last good policy, which only it knows: fix the ISSPolicy first: %w", errs.ToAggregate())
		}
		pol, source = p, fmt.Sprintf("ISSPolicy default, generation %d", obj.Generation)
	}
	strict := *pol
	strict.Enforcement = maps.Clone(pol.Enforcement)
	for _, g := range policy.ConfigurableRuleGroups() {
		strict.Enforcement[g] = v1alpha1.Enforce
	}
	return &strict, source, nil
}

// platformUser is the requester that cluster-scoped objects are audited as: cluster admins write
// them, so the audit judges what they do as if a trusted identity of the policy had written them,
// not who did.
func platformUser(pol *policy.Policy) authenticationv1.UserInfo {
	user := authenticationv1.UserInfo{Username: "issctl-audit", Groups: append([]string{"system:authenticated"}, pol.TrustedIdentities.Groups...)}
	if len(pol.TrustedIdentities.Groups) == 0 && len(pol.TrustedIdentities.Users) > 0 {
		user.Username = pol.TrustedIdentities.Users[0]
	}
	return user
}

// auditedObject is one object and its outcome.
type auditedObject struct {
	obj *unstructured.Unstructured
	out outcome
}

func runAudit(ctx context.Context, o auditOptions, stdout, stderr io.Writer) (int, error) {
	c, err := clusterClient(o.kubeconfig)
	if err != nil {
		return 0, err
	}
	pol, source, err := policyInForce(ctx, c)
	if err != nil {
		return 0, err
	}
	nsList := &corev1.NamespaceList{}
	if err := c.List(ctx, nsList); err != nil {
		return 0, fmt.Errorf("listing namespaces: %w", err)
	}
	// Namespace lookups are answered from the namespaces listed at the start of the audit.
	namespaces := policy.NamespaceLabels{}
	for _, ns := range nsList.Items {
		namespaces[ns.Name] = ns.Labels
	}
	metrics, err := webhook.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		return 0, err
	}
	handlers := webhook.Handlers(webhook.NewScheme(), webhook.Options{AllCauses: true, Policies: policy.NewHolder(pol), Metrics: metrics, Namespaces: namespaces})
	r, err := newReviewer(handlers)
	if err != nil {
		return 0, err
	}

	byNamespace := map[string][]auditedObject{}
	total := 0
	for _, kind := range webhook.GovernedKinds() {
		if !kind.Audited {
			continue
		}
		gvk := schema.GroupVersionKind{Group: kind.Group, Version: kind.Versions[0], Kind: kind.Kind}
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := c.List(ctx, list); err != nil {
			if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
				continue // the cluster does not serve the kind
			}
			return 0, fmt.Errorf("listing %s: %w", gvk.Kind, err)
		}
		fmt.Fprintf(stderr, "audited %d %s\n", len(list.Items), kind.Resource)
		for i := range list.Items {
			obj := &list.Items[i]
			if skipInAudit(obj) || pol.Exempt(obj.GetNamespace()) {
				continue
			}
			// The reviewer sends each object as the API server would: to the webhooks whose
			// namespace selectors match its namespace's labels.
			user := authenticationv1.UserInfo{Username: "issctl-audit", Groups: []string{"system:authenticated"}}
			if initiator := recordedInitiator(obj); initiator != "" {
				// The initiator created it (or its pod template); the audit judges what it reads,
				// not who asks now.
				user.Username = initiator
			}
			if kind.Scope == admissionregistrationv1.ClusterScope {
				user = platformUser(pol)
			}
			if owner := metav1.GetControllerOfNoCopy(obj); gvk.Kind == "Pod" && owner != nil && owner.Kind == "StatefulSet" {
				// The StatefulSet controller creates the pods of a StatefulSet, with its claims.
				user.Username = policy.StatefulSetControllers[0]
			}
			out, err := r.review(ctx, obj, obj.GetNamespace(), namespaces[obj.GetNamespace()], user)
			if err != nil {
				return 0, fmt.Errorf("%s %s/%s: %w", gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
			}
			total++
			byNamespace[obj.GetNamespace()] = append(byNamespace[obj.GetNamespace()], auditedObject{obj: obj, out: out})
		}
	}

	var results []result
	for _, ns := range slices.Sorted(maps.Keys(byNamespace)) {
		for _, a := range byNamespace[ns] {
			if !a.out.Allowed {
				a.out.Patch, a.out.Warnings = nil, nil
				results = append(results, result{Kind: a.obj.GetKind(), Name: a.obj.GetName(), Namespace: ns, outcome: a.out})
			}
		}
	}
	printResults(stdout, o.output, results)
	if o.output == "text" {
		fmt.Fprintf(stdout, "%d objects in %d namespaces audited against %s: %d violate it\n", total, len(byNamespace), source, len(results))
	}
	if o.writeReports {
		now := time.Now()
		written := 0
		for _, ns := range slices.Sorted(maps.Keys(byNamespace)) {
			if ns == "" {
				continue // cluster-scoped objects have no namespace to hold a Report; the output lists them
			}
			if err := writeReport(ctx, c, ns, byNamespace[ns], now); err != nil {
				return 0, err
			}
			written++
		}
		stale, err := deleteStaleReports(ctx, c, byNamespace)
		if err != nil {
			return 0, err
		}
		fmt.Fprintf(stderr, "wrote Report %s in %d namespaces, deleted %d of namespaces with nothing audited any more\n", ReportName, written, stale)
	}
	if len(results) > 0 {
		return exitViolation, nil
	}
	return exitConform, nil
}

// skipInAudit tells which listed objects are not audited: those being deleted, the webhook's own
// generated policies, and the ReplicaSets and Jobs that a Deployment or CronJob owns, whose
// template is the owner's, audited with it.
func skipInAudit(obj *unstructured.Unstructured) bool {
	if obj.GetDeletionTimestamp() != nil || obj.GetLabels()[policy.LabelManagedBy] == policy.ManagedByValue {
		return true
	}
	for _, ref := range obj.GetOwnerReferences() {
		if (obj.GetKind() == "ReplicaSet" && ref.Kind == "Deployment") || (obj.GetKind() == "Job" && ref.Kind == "CronJob") {
			return true
		}
	}
	return false
}

// writeReport writes the namespace's OpenReports Report: one failed result per violation, and
// the conforming objects counted as passed.
func writeReport(ctx context.Context, c client.Client, namespace string, audited []auditedObject, now time.Time) error {
	report := &openreportsv1alpha1.Report{
		ObjectMeta: metav1.ObjectMeta{Name: ReportName, Namespace: namespace, Labels: map[string]string{"app.kubernetes.io/managed-by": "issctl"}},
		Source:     "iss-webhook",
	}
	ts := metav1.Timestamp{Seconds: now.Unix()}
	for _, a := range audited {
		if a.out.Allowed {
			report.Summary.Pass++
			continue
		}
		subject := corev1.ObjectReference{APIVersion: a.obj.GetAPIVersion(), Kind: a.obj.GetKind(), Namespace: namespace, Name: a.obj.GetName(), UID: a.obj.GetUID()}
		fail := func(message string, props map[string]string) {
			report.Summary.Fail++
			report.Results = append(report.Results, openreportsv1alpha1.ReportResult{
				Source: "iss-webhook", Policy: "ISS-001", Rule: a.out.DeniedBy, Category: ruleCategory(a.out.DeniedBy),
				Severity: "high", Result: "fail", Timestamp: ts, Subjects: []corev1.ObjectReference{subject},
				Description: message, Properties: props,
			})
		}
		if len(a.out.Violations) == 0 {
			fail(a.out.Message, nil)
		}
		for _, v := range a.out.Violations {
			fail(v.Field+": "+v.Message, map[string]string{"field": v.Field})
		}
	}
	existing := &openreportsv1alpha1.Report{}
	err := c.Get(ctx, client.ObjectKeyFromObject(report), existing)
	switch {
	case apierrors.IsNotFound(err):
		err = c.Create(ctx, report)
	case err == nil:
		report.ResourceVersion = existing.ResourceVersion
		err = c.Update(ctx, report)
	}
	if err != nil {
		return fmt.Errorf("writing Report %s/%s: %w", namespace, ReportName, err)
	}
	return nil
}

// deleteStaleReports deletes the Reports of earlier audits in namespaces that have nothing to
// audit any more, so that dashboards do not show violations that are gone.
func deleteStaleReports(ctx context.Context, c client.Client, audited map[string][]auditedObject) (int, error) {
	reports := &openreportsv1alpha1.ReportList{}
	if err := c.List(ctx, reports, client.MatchingLabels{"app.kubernetes.io/managed-by": "issctl"}); err != nil {
		return 0, fmt.Errorf("listing Reports: %w", err)
	}
	deleted := 0
	for i := range reports.Items {
		r := &reports.Items[i]
		if _, ok := audited[r.Namespace]; ok || r.Name != ReportName {
			continue
		}
		if err := c.Delete(ctx, r); client.IgnoreNotFound(err) != nil {
			return deleted, fmt.Errorf("deleting Report %s/%s: %w", r.Namespace, r.Name, err)
		}
		deleted++
	}
	return deleted, nil
}

// ruleCategory is the part of a webhook's name before its first dot: engine-pods, workloads,
// external-secrets and so on.
func ruleCategory(webhookName string) string {
	category, _, _ := strings.Cut(webhookName, ".")
	return category
}

// recordedInitiator returns the iss.platform/initiator-id an object records: its own, or its pod
// template's (the owner of a workload's pods).
func recordedInitiator(obj *unstructured.Unstructured) string {
	if initiator := obj.GetAnnotations()[policy.AnnotationInitiatorID]; initiator != "" {
		return initiator
	}
	for _, path := range [][]string{{"spec", "template"}, {"spec", "jobTemplate", "spec", "template"}, {"template"}} {
		if initiator, _, _ := unstructured.NestedString(obj.Object, append(path, "metadata", "annotations", policy.AnnotationInitiatorID)...); initiator != "" {
			return initiator
		}
	}
	return ""
}
