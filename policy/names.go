package policy

// The label and annotation names of design.md section 2. They are part of the product's
// contract: users, charts and tests rely on them, so they never change.
const (
	// Prefix starts every ISS label and annotation.
	Prefix = "iss.platform/"

	// LabelAppID is the Namespace label naming the AppID that owns the namespace.
	LabelAppID = Prefix + "app-id"
	// LabelEnvironment is the Namespace label naming the runtime environment: dev, staging or prod.
	LabelEnvironment = Prefix + "environment"
	// LabelEngine marks a Pod or pod template as a Dagger engine when its value is "dagger".
	LabelEngine = Prefix + "engine"
	// AnnotationProfile names the quota profile of an engine; absent means the policy default.
	AnnotationProfile = Prefix + "profile"
	// AnnotationSecrets lists the logical secret keys (OCS SecretSchema) an engine mounts.
	AnnotationSecrets = Prefix + "secrets"
	// AnnotationNetworkAccess holds the OCS security.networkAccess block as JSON.
	AnnotationNetworkAccess = Prefix + "network-access"
	// LabelEgressPolicy is set by the webhook on engine pods and selects their generated egress policies.
	LabelEgressPolicy = Prefix + "egress-policy"
	// AnnotationInitiatorID holds the InitiatorID of an ExternalSecret or PushSecret.
	AnnotationInitiatorID = Prefix + "initiator-id"
	// LabelComponent marks a Deployment as a Temporal worker when its value is "temporal-worker".
	LabelComponent = Prefix + "component"
	// LabelBuildID is the Temporal BuildID that a worker Deployment serves.
	LabelBuildID = Prefix + "build-id"

	// LabelManagedBy and ManagedByValue mark the objects that the webhook generates.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of LabelManagedBy on generated objects.
	ManagedByValue = "iss-webhook"

	// EngineLabelValue is the value of LabelEngine that marks a Dagger engine.
	EngineLabelValue = "dagger"
)
