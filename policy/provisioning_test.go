package policy

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
)

func unstructuredOf(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := json.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

// provisioningObject builds a Stack or Terraform in team-a-dev from a good spec, with the
// top-level spec fields of overrides (YAML) set over it; a null override removes the field.
func provisioningObject(t *testing.T, apiVersion, kind, base, overrides string) *unstructured.Unstructured {
	t.Helper()
	spec := map[string]any{}
	if err := yaml.Unmarshal([]byte(base), &spec); err != nil {
		t.Fatal(err)
	}
	over := map[string]any{}
	if err := yaml.Unmarshal([]byte(overrides), &over); err != nil {
		t.Fatalf("overrides: %v\n%s", err, overrides)
	}
	for k, v := range over {
		if v == nil {
			delete(spec, k)
		} else {
			spec[k] = v
		}
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": apiVersion, "kind": kind,
		"metadata": map[string]any{"name": "infra", "namespace": "team-a-dev"},
		"spec":     spec,
	}}
}

const goodStack = `
stack: team-a/vpc/dev
projectRepo: https://git.example.org/team-a/infra
branch: main
backend: s3://iss-platform-state/team-a
secretsProvider: awskms://alias/iss-team-a?region=eu-west-1
destroyOnFinalize: true
`

const openBaoAddress = "https://openbao.openbao.svc:8200"

func TestValidateStack(t *testing.T) {
	allowEnvFrom := DefaultProvisioningPolicy()
	allowEnvFrom.AllowEnvFrom = true
	noToken := DefaultProvisioningPolicy()
	noToken.AllowedEnv = []string{"AWS_REGION"}
	for _, tc := range []struct {
		name       string
		apiVersion string
		overrides  string
		policy     *ProvisioningPolicy
		want       []wantErr
	}{
		{name: "approved backend, managed key, destroy on delete"},
		{name: "v1alpha1 is judged the same", apiVersion: "pulumi.com/v1alpha1", overrides: "envRefs: {AWS_ENDPOINT_URL_S3: {type: Literal, literal: {value: https://evil.example.org}}}",
			want: []wantErr{{"spec.envRefs[AWS_ENDPOINT_URL_S3]", "AWS_ENDPOINT_URL_S3 is not a variable a provisioning run may set"}}},
		{name: "everything a stack may set", overrides: `
envRefs:
  AWS_REGION: {type: Literal, literal: {value: eu-west-1}}
  AWS_ACCESS_KEY_ID: {type: Secret, secret: {name: aws, key: id}}
  AWS_SECRET_ACCESS_KEY: {type: Secret, secret: {name: aws, key: secret, namespace: team-a-dev}}
accessTokenSecret: pulumi-token
config: {aws:region: eu-west-1}
secretsRef: {db: {type: Secret, secret: {name: db, key: password}}}
workspaceTemplate:
  metadata: {labels: {team: a}}
  spec:
    image: pulumi/pulumi-python:3.150.0-nonroot
    imagePullPolicy: IfNotPresent
    serviceAccountName: team-a-infra
    securityProfile: restricted
    resources: {requests: {cpu: "1", memory: 1Gi}}
    env: [{name: AWS_REGION, value: eu-west-1}, {name: TZ, value: UTC}, {name: AWS_ROLE_ARN, valueFrom: {secretKeyRef: {name: role, key: arn}}}]
    podTemplate:
      metadata: {annotations: {a: b}}
      spec:
        tolerations: [{key: infra, operator: Exists}]
        nodeSelector: {pool: infra}
        containers: [{name: pulumi, image: docker.io/pulumi/pulumi:3.150.0, env: [{name: NO_COLOR, value: "1"}], resources: {limits: {memory: 2Gi}}}]
updateTemplate:
  metadata: {labels: {team: a}}
  spec: {ttlAfterCompleted: 1h, message: nightly}
`},
		{name: "local state, passphrase, no deprovisioning", overrides: "{backend: 'file:///tmp/state', secretsProvider: passphrase, destroyOnFinalize: null}", want: []wantErr{
			{"spec.backend", "approved encrypted, object-locked bucket"},
			{"spec.secretsProvider", `"awskms://"`},
			{"spec.destroyOnFinalize", "DEPROVISION"},
		}},
		{name: "someone else's bucket", overrides: "backend: s3://someone-elses-bucket", want: []wantErr{{"spec.backend", "approved"}}},
		{name: "credentials in the backend URL", overrides: "backend: s3://user@iss-platform-state/x", want: []wantErr{{"spec.backend", "approved"}}},
		{name: "endpoint in the backend URL", overrides: "backend: s3://iss-platform-state?endpoint=evil.example.org", want: []wantErr{{"spec.backend", "may not carry query parameters"}}},
		{name: "endpoint in the key's URL", overrides: "secretsProvider: awskms://alias/iss?region=eu-west-1&endpoint=https://evil.example.org", want: []wantErr{{"spec.secretsProvider", "the parameter endpoint is not admitted"}}},
		{name: "envRefs redirect the backend and the endpoint", overrides: `
envRefs:
  PULUMI_BACKEND_URL: {type: Literal, literal: {value: "file:///tmp"}}
  AWS_ENDPOINT_URL_S3: {type: Secret, secret: {name: x, key: y}}
  PULUMI_CONFIG_PASSPHRASE: {type: Literal, literal: {value: x}}
`, want: []wantErr{
			{"spec.envRefs[AWS_ENDPOINT_URL_S3]", "cloud's own endpoint"},
			{"spec.envRefs[PULUMI_BACKEND_URL]", "set spec.backend instead"},
			{"spec.envRefs[PULUMI_CONFIG_PASSPHRASE]", "set spec.secretsProvider"},
		}},
		{name: "envRefs from the operator's environment and files, and another namespace", overrides: `
envRefs:
  AWS_REGION: {type: Env, env: {name: AWS_REGION}}
  TZ: {type: FS, filesystem: {path: /etc/tz}}
  AWS_ACCESS_KEY_ID: {type: Secret, secret: {name: aws, key: id, namespace: team-b-staging}}
`, want: []wantErr{
			{"spec.envRefs[AWS_ACCESS_KEY_ID].secret.namespace", "another namespace"},
			{"spec.envRefs[AWS_REGION].type", `"Env"`},
			{"spec.envRefs[TZ].type", `"FS"`},
		}},
		{name: "envs and envSecrets load whole objects", overrides: "{envs: [team-env], envSecrets: [team-secrets]}", want: []wantErr{
			{"spec.envs", "each ConfigMap"},
			{"spec.envSecrets", "each Secret"},
		}},
		{name: "envs and envSecrets when the policy allows them", policy: &allowEnvFrom, overrides: "{envs: [team-env], envSecrets: [team-secrets], workspaceTemplate: {spec: {envFrom: [{configMapRef: {name: x}}]}}}"},
		{name: "the access token when the policy does not allow it", policy: &noToken, overrides: "accessTokenSecret: pulumi-token",
			want: []wantErr{{"spec.accessTokenSecret", "PULUMI_ACCESS_TOKEN is not a variable"}}},
		{name: "ESC environments", overrides: "environment: [team-a/dev]", want: []wantErr{{"spec.environment", "Pulumi ESC"}}},
		{name: "a field the rules do not know", overrides: "backendOverride: file:///tmp", want: []wantErr{{"spec.backendOverride", "does not know"}}},
		{name: "the workspace's env and envFrom", overrides: `
workspaceTemplate:
  spec:
    env: [{name: PULUMI_BACKEND_URL, value: "file:///tmp"}, {name: AWS_ENDPOINT_URL, valueFrom: {secretKeyRef: {name: x, key: y}}}, {name: PULUMI_HOME, value: /share/source}]
    envFrom: [{secretRef: {name: everything}}]
`, want: []wantErr{
			{"spec.workspaceTemplate.spec.env[0].name", "set spec.backend instead"},
			{"spec.workspaceTemplate.spec.env[1].name", "AWS_ENDPOINT_URL is not"},
			{"spec.workspaceTemplate.spec.env[2].name", "PULUMI_HOME is not"},
			{"spec.workspaceTemplate.spec.envFrom", "cannot read those keys"},
		}},
		{name: "merge directives that drop the operator's backend", overrides: `
workspaceTemplate:
  $patch: replace
  spec:
    $retainKeys: [image]
    env: [{name: PULUMI_BACKEND_URL, $patch: delete}]
`, want: []wantErr{
			{"spec.workspaceTemplate.$patch", "strategic merge patch directive"},
			{"spec.workspaceTemplate.spec.$retainKeys", "strategic merge patch directive"},
			{"spec.workspaceTemplate.spec.env[0].$patch", "strategic merge patch directive"},
			{"spec.workspaceTemplate.spec.env[0].name", "set spec.backend instead"},
		}},
		{name: "every container of the workspace pod", overrides: `
workspaceTemplate:
  spec:
    stacks: [{name: team-a/vpc/dev, secretsProvider: passphrase}]
    podTemplate:
      spec:
        hostAliases: [{ip: 10.0.0.1, hostnames: [iss-platform-state.s3.eu-west-1.amazonaws.com]}]
        volumes: [{name: aws, configMap: {name: aws-config}}]
        initContainers: [{name: extra, image: busybox, command: [sh, -c, "echo PULUMI_BACKEND_URL=file:///tmp >> $PULUMI_ENV"]}]
        containers:
        - name: pulumi
          command: [sh, -c, "export AWS_ENDPOINT_URL_S3=https://evil.example.org; exec /share/agent serve"]
          volumeMounts: [{name: aws, mountPath: /home/pulumi/.aws}]
          env: [{name: AWS_ENDPOINT_URL_S3, value: https://evil.example.org}]
          envFrom: [{configMapRef: {name: x}}]
          image: evil.example.org/pulumi
        - name: sidecar
          image: busybox
`, want: []wantErr{
			{"spec.workspaceTemplate.spec.stacks", "the operator's list of stacks"},
			{"spec.workspaceTemplate.spec.podTemplate.spec.hostAliases", "where the bucket's host name resolves"},
			{"spec.workspaceTemplate.spec.podTemplate.spec.initContainers", "$PULUMI_ENV"},
			{"spec.workspaceTemplate.spec.podTemplate.spec.volumes", "endpoint_url"},
			{"spec.workspaceTemplate.spec.podTemplate.spec.containers[0].command", "can set variables"},
			{"spec.workspaceTemplate.spec.podTemplate.spec.containers[0].volumeMounts", "endpoint_url"},
			{"spec.workspaceTemplate.spec.podTemplate.spec.containers[0].env[0].name", "AWS_ENDPOINT_URL_S3 is not"},
			{"spec.workspaceTemplate.spec.podTemplate.spec.containers[0].envFrom", "cannot read those keys"},
			{"spec.workspaceTemplate.spec.podTemplate.spec.containers[0].image", "evil.example.org/pulumi is not one"},
			{"spec.workspaceTemplate.spec.podTemplate.spec.containers[1].name", `only the container "pulumi"`},
		}},
		{name: "another image for the workspace", overrides: "workspaceTemplate: {spec: {image: 'docker.io/evil/pulumi:3'}}",
			want: []wantErr{{"spec.workspaceTemplate.spec.image", "docker.io/evil/pulumi is not one"}}},
		{name: "the update template retargeted", overrides: "updateTemplate: {spec: {stackName: team-b/vpc/prod, workspaceName: other, type: destroy}}", want: []wantErr{
			{"spec.updateTemplate.spec.stackName", "set spec.stack instead"},
			{"spec.updateTemplate.spec.type", "may set only"},
			{"spec.updateTemplate.spec.workspaceName", "the operator's"},
		}},
		{name: "the approved storage account of an azblob backend", overrides: "{backend: azblob://iss-platform-state/team-a, envRefs: {AZURE_STORAGE_ACCOUNT: {type: Literal, literal: {value: issplatformstate}}}}"},
		{name: "another storage account, from a Secret, by expansion", overrides: `
backend: azblob://iss-platform-state/team-a
envRefs:
  AZURE_STORAGE_ACCOUNT: {type: Literal, literal: {value: evilaccount}}
workspaceTemplate:
  spec:
    env: [{name: TZ, value: evilaccount}, {name: AZURE_STORAGE_ACCOUNT, value: $(TZ)}, {name: AZURE_STORAGE_ACCOUNT, valueFrom: {secretKeyRef: {name: x, key: y}}}]
`, want: []wantErr{
			{"spec.envRefs[AZURE_STORAGE_ACCOUNT]", `one of the approved accounts "issplatformstate"`},
			{"spec.workspaceTemplate.spec.env[1].name", "storage account"},
			{"spec.workspaceTemplate.spec.env[2].name", "storage account"},
		}},
		{name: "OpenBao's address for hashivault", overrides: "{secretsProvider: hashivault://iss-team-a, envRefs: {VAULT_ADDR: {type: Literal, literal: {value: '" + openBaoAddress + "'}}, VAULT_TOKEN: {type: Secret, secret: {name: bao, key: token}}}}"},
		{name: "another key server", overrides: "{secretsProvider: hashivault://iss-team-a, envRefs: {VAULT_ADDR: {type: Literal, literal: {value: 'https://evil.example.org'}}, BAO_ADDR: {type: Secret, secret: {name: x, key: y}}}}", want: []wantErr{
			{"spec.envRefs[BAO_ADDR]", `the platform's OpenBao "` + openBaoAddress + `"`},
			{"spec.envRefs[VAULT_ADDR]", "data keys"},
		}},
		{name: "fields of the wrong type", overrides: "{envRefs: [x], envs: team-env, workspaceTemplate: {spec: {env: PULUMI_BACKEND_URL}}}", want: []wantErr{
			{"spec.envRefs", "must be an object"},
			{"spec.envs", "must be a list"},
			{"spec.workspaceTemplate.spec.env", "must be a list"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultProvisioningPolicy()
			if tc.policy != nil {
				p = *tc.policy
			}
			apiVersion := tc.apiVersion
			if apiVersion == "" {
				apiVersion = "pulumi.com/v1"
			}
			checkErrs(t, p.ValidateStack(provisioningObject(t, apiVersion, "Stack", goodStack, tc.overrides), openBaoAddress), tc.want)
		})
	}
}

const goodTerraform = `
interval: 10m
path: ./vpc
approvePlan: auto
sourceRef: {kind: GitRepository, name: infra}
destroyResourcesOnDeletion: true
backendConfig:
  customConfiguration: |
    backend "s3" {
      bucket       = "iss-platform-state"
      key          = "team-a/vpc.tfstate"
      region       = "eu-west-1"
      encrypt      = true
      use_lockfile = true
    }
`

// withBackend returns Terraform overrides with the given customConfiguration.
func withBackend(custom string) string {
	b, _ := json.Marshal(map[string]any{"backendConfig": map[string]any{"customConfiguration": custom}})
	return string(b)
}

func TestValidateTerraform(t *testing.T) {
	const cfg = "spec.backendConfig.customConfiguration"
	allowEnvFrom := DefaultProvisioningPolicy()
	allowEnvFrom.AllowEnvFrom = true
	for _, tc := range []struct {
		name       string
		apiVersion string
		overrides  string
		policy     *ProvisioningPolicy
		want       []wantErr
	}{
		{name: "an encrypted, locked S3 backend in the approved bucket"},
		{name: "v1alpha1 is judged the same", apiVersion: "infra.contrib.fluxcd.io/v1alpha1", overrides: "runnerPodTemplate: {spec: {env: [{name: AWS_ENDPOINT_URL_S3, value: https://evil.example.org}]}}",
			want: []wantErr{{"spec.runnerPodTemplate.spec.env[0].name", "AWS_ENDPOINT_URL_S3 is not"}}},
		{name: "everything a Terraform may set", overrides: `
vars: [{name: region, value: eu-west-1}, {name: password, valueFrom: {secretKeyRef: {name: db, key: password}}}]
varsFrom: [{kind: ConfigMap, name: team-vars}]
values: {size: 3}
workspace: dev
cliConfigSecretRef: {name: tfrc, namespace: team-a-dev}
tfstate: {forceUnlock: "yes", lockIdentifier: abc}
writeOutputsToSecret: {name: outputs}
runnerPodTemplate:
  metadata: {labels: {team: a}}
  spec:
    image: ghcr.io/flux-iac/tf-runner:v0.16.0-rc.5
    env: [{name: AWS_REGION, value: eu-west-1}, {name: TF_VAR_size, value: "3"}, {name: AWS_SECRET_ACCESS_KEY, valueFrom: {secretKeyRef: {name: aws, key: secret}}}]
    resources: {limits: {memory: 1Gi}}
    tolerations: [{key: infra, operator: Exists}]
`},
		{name: "the runner's environment, files and names", overrides: `
runnerPodTemplate:
  spec:
    image: ghcr.io/evil/tf-runner:v1
    env: [{name: AWS_ENDPOINT_URL_S3, value: https://evil.example.org}, {name: TF_CLI_ARGS_init, value: -backend-config=bucket=evil}, {name: AWS_CONFIG_FILE, value: /tmp/config}]
    envFrom: [{secretRef: {name: everything}}]
    initContainers: [{name: prep, image: busybox}]
    volumes: [{name: aws, secret: {secretName: aws}}]
    volumeMounts: [{name: aws, mountPath: /home/runner/.aws}]
    hostAliases: [{ip: 10.0.0.1, hostnames: [s3.eu-west-1.amazonaws.com]}]
`, want: []wantErr{
			{"spec.runnerPodTemplate.spec.hostAliases", "resolves"},
			{"spec.runnerPodTemplate.spec.initContainers", "init containers run commands"},
			{"spec.runnerPodTemplate.spec.volumeMounts", "endpoint_url"},
			{"spec.runnerPodTemplate.spec.volumes", "endpoint_url"},
			{"spec.runnerPodTemplate.spec.image", "ghcr.io/evil/tf-runner is not one"},
			{"spec.runnerPodTemplate.spec.env[0].name", "AWS_ENDPOINT_URL_S3 is not"},
			{"spec.runnerPodTemplate.spec.env[1].name", "TF_CLI_ARGS_init is not"},
			{"spec.runnerPodTemplate.spec.env[2].name", "AWS_CONFIG_FILE is not"},
			{"spec.runnerPodTemplate.spec.envFrom", "cannot read those keys"},
		}},
		{name: "envFrom when the policy allows it", policy: &allowEnvFrom, overrides: "runnerPodTemplate: {spec: {envFrom: [{secretRef: {name: everything}}]}}"},
		{name: "files, clouds and settings from elsewhere", overrides: `
fileMappings: [{location: workspace, path: backend_override.tf, secretRef: {name: evil}}]
cloud: {organization: evil, workspaces: {name: x}}
enterprise: {}
backendConfigsFrom: [{kind: Secret, name: x}]
cliConfigSecretRef: {name: tfrc, namespace: team-b-staging}
tfstate: {forceUnlock: auto}
`, want: []wantErr{
			{"spec.cloud", "HCP Terraform"},
			{"spec.enterprise", "does not know"},
			{"spec.fileMappings", "backend_override.tf"},
			{"spec.backendConfigsFrom", "would override the checked backend block"},
			{"spec.cliConfigSecretRef.namespace", "another team's"},
			{"spec.tfstate.forceUnlock", "two runs can write it at once"},
		}},
		{name: "the kubernetes backend by default", overrides: "{backendConfig: null, destroyResourcesOnDeletion: null}", want: []wantErr{
			{cfg, `the "kubernetes" backend, in the Secret tfstate-default-infra of namespace team-a-dev`},
			{"spec.destroyResourcesOnDeletion", "DEPROVISION"},
		}},
		{name: "the kubernetes backend with a suffix, in a workspace", overrides: "{workspace: dev, backendConfig: {secretSuffix: vpc, inClusterConfig: true}}",
			want: []wantErr{{cfg, "in the Secret tfstate-dev-vpc of namespace team-a-dev"}}},
		{name: "the kubernetes backend written out", overrides: withBackend(`backend "kubernetes" { secret_suffix = "vpc" }`),
			want: []wantErr{{cfg, `the "kubernetes" backend keeps the state in the Secret tfstate-default-vpc (secret_suffix "vpc")`}}},
		{name: "kubernetes settings beside a custom configuration", overrides: `{backendConfig: {customConfiguration: "backend \"s3\" {\n bucket = \"iss-platform-state\"\n encrypt = true\n use_lockfile = true\n}", labels: {a: b}}}`,
			want: []wantErr{{"spec.backendConfig.labels", "kubernetes backend"}}},
		{name: "disabled", overrides: `{backendConfig: {disable: true, customConfiguration: "backend \"s3\" {\n bucket = \"iss-platform-state\"\n encrypt = true\n use_lockfile = true\n}"}}`,
			want: []wantErr{{"spec.backendConfig.disable", "kept remotely"}}},
		{name: "a heredoc key that holds the approved bucket", overrides: withBackend("backend \"s3\" {\n  key = <<EOT\n  bucket = \"iss-platform-state\"\nEOT\n  bucket = \"evil\"\n  encrypt = true\n  use_lockfile = true\n}"),
			want: []wantErr{{cfg, `stores state in s3://evil (bucket "evil")`}}},
		{name: "a heredoc key and no bucket", overrides: withBackend("backend \"s3\" {\n  key = <<EOT\nbucket = \"iss-platform-state\"\nEOT\n  encrypt = true\n  use_lockfile = true\n}"),
			want: []wantErr{{cfg, `names no bucket`}}},
		{name: "comments that hold the approved bucket and encryption", overrides: withBackend("backend \"s3\" {\n  # bucket = \"iss-platform-state\"\n  bucket = \"evil\" // encrypt = true\n  /* use_lockfile = true */\n}"), want: []wantErr{
			{cfg, "must encrypt the state"},
			{cfg, "must lock the state"},
			{cfg, "s3://evil"},
		}},
		{name: "interpolations, variables and functions", overrides: withBackend("backend \"s3\" {\n  bucket = \"iss-${\"platform\"}-state\"\n  key = var.key\n  region = lower(\"EU-WEST-1\")\n  encrypt = true ? true : false\n  use_lockfile = true\n}"), want: []wantErr{
			{cfg, "line 2: bucket must be a literal"},
			{cfg, "line 5: encrypt must be a literal"},
			{cfg, "line 3: key must be a literal"},
			{cfg, "line 4: region must be a literal"},
		}},
		{name: "a template directive in a heredoc", overrides: withBackend("backend \"s3\" {\n  bucket = \"iss-platform-state\"\n  key = <<EOT\n%{ if true }x%{ endif }\nEOT\n  encrypt = true\n  use_lockfile = true\n}"),
			want: []wantErr{{cfg, "key must be a literal"}}},
		{name: "a string that converts as OpenTofu converts it", overrides: withBackend("backend \"s3\" {\n  bucket = \"iss-platform-state\"\n  encrypt = \"true\"\n  use_lockfile = true\n  max_retries = \"5\"\n}")},
		{name: "a value of the wrong type", overrides: withBackend("backend \"s3\" {\n  bucket = \"iss-platform-state\"\n  encrypt = \"yes\"\n  use_lockfile = true\n}"), want: []wantErr{
			{cfg, "encrypt must be a bool"},
			{cfg, "must encrypt the state"},
		}},
		{name: "a duplicate attribute", overrides: withBackend("backend \"s3\" {\n  bucket = \"iss-platform-state\"\n  bucket = \"evil\"\n  encrypt = true\n  use_lockfile = true\n}"),
			want: []wantErr{{cfg, "line 3: Attribute redefined"}}},
		{name: "two backend blocks", overrides: withBackend("backend \"s3\" {\n  bucket = \"iss-platform-state\"\n  encrypt = true\n  use_lockfile = true\n}\nbackend \"local\" {}"),
			want: []wantErr{{cfg, "line 6: a second backend block (the first is on line 1)"}}},
		{name: "a brace that closes the terraform block", overrides: withBackend("backend \"s3\" {\n  bucket = \"iss-platform-state\"\n  encrypt = true\n  use_lockfile = true\n}\n}\nterraform {\n  backend \"local\" {}\n}\nlocals {\n  x = 1"), want: []wantErr{
			{cfg, "line 7: is outside the terraform block"},
			{cfg, "line 10: is outside the terraform block"},
		}},
		{name: "other blocks and settings of the terraform block", overrides: withBackend("required_version = \">= 1.6\"\nbackend \"s3\" {\n  bucket = \"iss-platform-state\"\n  encrypt = true\n  use_lockfile = true\n}\ncloud {}\nencryption {\n  method \"unencrypted\" \"u\" {}\n}"), want: []wantErr{
			{cfg, "required_version is a setting of the terraform block"},
			{cfg, "line 7: a cloud block keeps the state in HCP Terraform"},
			{cfg, "line 8: an encryption block changes how the state is encrypted"},
		}},
		{name: "endpoints, path style, TLS, profiles and credentials", overrides: withBackend(`backend "s3" {
  bucket = "iss-platform-state"
  encrypt = true
  use_lockfile = true
  endpoints = { s3 = "https://evil.example.org" }
  endpoint = "https://evil.example.org"
  use_path_style = true
  insecure = true
  skip_credentials_validation = true
  profile = "evil"
  shared_config_files = ["/tmp/config"]
  access_key = "AKIA"
  assume_role {
    role_arn = "arn:aws:iam::1:role/x"
  }
}`), want: []wantErr{
			{cfg, "line 13: a assume_role block in the backend block is not admitted"},
			{cfg, "access_key is not admitted"},
			{cfg, "endpoint is not admitted"},
			{cfg, "endpoints is not admitted"},
			{cfg, "insecure is not admitted"},
			{cfg, "profile is not admitted"},
			{cfg, "shared_config_files is not admitted"},
			{cfg, "skip_credentials_validation is not admitted"},
			{cfg, "use_path_style is not admitted"},
		}},
		{name: "gcs with a managed key", overrides: withBackend("backend \"gcs\" {\n  bucket = \"iss-platform-state\"\n  prefix = \"team-a\"\n  kms_encryption_key = \"projects/p/locations/l/keyRings/r/cryptoKeys/k\"\n}")},
		{name: "gcs elsewhere, with a key of its own and an endpoint", overrides: withBackend("backend \"gcs\" {\n  bucket = \"elsewhere\"\n  encryption_key = \"a2V5\"\n  storage_custom_endpoint = \"https://evil.example.org\"\n}"), want: []wantErr{
			{cfg, "encryption_key is not admitted"},
			{cfg, "storage_custom_endpoint is not admitted"},
			{cfg, "set kms_encryption_key"},
			{cfg, "gs://elsewhere"},
		}},
		{name: "azurerm in the approved account", overrides: withBackend("backend \"azurerm\" {\n  storage_account_name = \"issplatformstate\"\n  container_name = \"iss-platform-state\"\n  key = \"team-a.tfstate\"\n  use_azuread_auth = true\n}")},
		{name: "the approved container in another account", overrides: withBackend("backend \"azurerm\" {\n  storage_account_name = \"evilaccount\"\n  container_name = \"iss-platform-state\"\n  metadata_host = \"evil.example.org\"\n}"), want: []wantErr{
			{cfg, "metadata_host is not admitted"},
			{cfg, `the storage account "evilaccount", which is not an approved one`},
		}},
		{name: "a backend that is no bucket", overrides: withBackend(`backend "http" { address = "https://evil.example.org/state" }`),
			want: []wantErr{{cfg, `the "http" backend does not keep the state in an approved`}}},
		{name: "a syntax error", overrides: withBackend("backend \"s3\" {\n  bucket = \"iss-platform-state\n}"),
			want: []wantErr{{cfg, "line 2: Invalid multi-line string"}, {cfg, "line 3: Invalid multi-line string"}, {cfg, "line 2: Unterminated template string"}}},
		{name: "a backend without its type", overrides: withBackend(`backend { bucket = "iss-platform-state" }`),
			want: []wantErr{{cfg, "exactly one label"}}},
		{name: "no backend block", overrides: withBackend(`# nothing`),
			want: []wantErr{{cfg, "holds no backend block"}}},
		{name: "a blank configuration, which the controller writes as it is", overrides: withBackend(" \n "),
			want: []wantErr{{cfg, "holds no backend block"}}},
		{name: "a field the rules do not know", overrides: "stateOverride: {}", want: []wantErr{{"spec.stateOverride", "does not know"}}},
		{name: "fields of the wrong type", overrides: "{backendConfig: {customConfiguration: 3}, runnerPodTemplate: [], backendConfigsFrom: x}", want: []wantErr{
			{cfg, "kubernetes"},
			{"spec.backendConfigsFrom", "must be a list"},
			{"spec.runnerPodTemplate", "must be an object"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultProvisioningPolicy()
			if tc.policy != nil {
				p = *tc.policy
			}
			apiVersion := tc.apiVersion
			if apiVersion == "" {
				apiVersion = "infra.contrib.fluxcd.io/v1alpha2"
			}
			checkErrs(t, p.ValidateTerraform(provisioningObject(t, apiVersion, "Terraform", goodTerraform, tc.overrides), openBaoAddress), tc.want)
		})
	}
}

// TestProvisioningWhileDeleting: a Stack or Terraform held by a finalizer keeps its spec: turning
// off the destroy on delete, or adding a variable that moves the state, is denied, while a
// finalizer's removal is admitted without its spec being judged again, and the update of an
// object that is not being deleted is judged whole.
func TestProvisioningWhileDeleting(t *testing.T) {
	deleted := &metav1.Time{Time: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	for _, tc := range []struct {
		kind, apiVersion, base, destroy, env string
	}{
		{"Stack", "pulumi.com/v1", goodStack, "destroyOnFinalize", `{"envRefs":{"AWS_ENDPOINT_URL_S3":{"type":"Literal","literal":{"value":"https://evil.example.org"}}}}`},
		{"Stack", "pulumi.com/v1alpha1", goodStack, "destroyOnFinalize", `{"envRefs":{"AWS_ENDPOINT_URL_S3":{"type":"Literal","literal":{"value":"https://evil.example.org"}}}}`},
		{"Terraform", "infra.contrib.fluxcd.io/v1alpha2", goodTerraform, "destroyResourcesOnDeletion", `{"runnerPodTemplate":{"spec":{"env":[{"name":"AWS_ENDPOINT_URL_S3","value":"https://evil.example.org"}]}}}`},
		{"Terraform", "infra.contrib.fluxcd.io/v1alpha1", goodTerraform, "destroyResourcesOnDeletion", `{"runnerPodTemplate":{"spec":{"env":[{"name":"AWS_ENDPOINT_URL_S3","value":"https://evil.example.org"}]}}}`},
	} {
		t.Run(tc.apiVersion, func(t *testing.T) {
			old := provisioningObject(t, tc.apiVersion, tc.kind, tc.base, "")
			old.SetFinalizers([]string{"example.org/hold"})
			old.SetDeletionTimestamp(deleted)
			keep := old.DeepCopy()
			if err := unstructured.SetNestedField(keep.Object, false, "spec", tc.destroy); err != nil {
				t.Fatal(err)
			}
			moved := provisioningObject(t, tc.apiVersion, tc.kind, tc.base, tc.env)
			moved.SetFinalizers(old.GetFinalizers())
			moved.SetDeletionTimestamp(deleted)
			released := old.DeepCopy()
			released.SetFinalizers(nil)
			relabelled := old.DeepCopy()
			relabelled.SetLabels(map[string]string{"team": "a"})
			for _, c := range []struct {
				name string
				cur  *unstructured.Unstructured
				want []wantErr
			}{
				{tc.destroy + " turned off", keep, []wantErr{{"spec", "is being deleted (deletionTimestamp 2026-11-30T12:00:00Z)"}}},
				{"a variable that moves the state", moved, []wantErr{{"spec", "only its metadata may change"}}},
				{"the finalizer removed", released, nil},
				{"a label added", relabelled, nil},
			} {
				t.Run(c.name, func(t *testing.T) {
					checkErrs(t, ValidateUpdateWhileDeleting(old.Object, c.cur.Object, old.GetDeletionTimestamp()), c.want)
					// Of the kind's rules, nothing of the spec holds against a metadata change.
					p := Default()
					admit := map[string]func() Outcome{
						"Stack":     func() Outcome { return AdmitStack(t.Context(), p, &Request{}, c.cur, old) },
						"Terraform": func() Outcome { return AdmitTerraform(t.Context(), p, &Request{}, c.cur, old) },
					}[tc.kind]
					if out := admit().WhileDeleting(old, c.cur); len(out.Findings) > 0 {
						t.Errorf("findings held while deleting: %+v", out.Findings)
					}
				})
			}
			// Not being deleted, the same updates are judged by the rules.
			live := provisioningObject(t, tc.apiVersion, tc.kind, tc.base, "")
			liveKeep := live.DeepCopy()
			_ = unstructured.SetNestedField(liveKeep.Object, false, "spec", tc.destroy)
			p := DefaultProvisioningPolicy()
			validate := map[string]func(*unstructured.Unstructured, string) field.ErrorList{"Stack": p.ValidateStack, "Terraform": p.ValidateTerraform}[tc.kind]
			checkErrs(t, validate(liveKeep, ""), []wantErr{{"spec." + tc.destroy, "DEPROVISION"}})
			if errs := validate(provisioningObject(t, tc.apiVersion, tc.kind, tc.base, tc.env), ""); len(errs) != 1 || !strings.Contains(errs[0].Error(), "AWS_ENDPOINT_URL_S3 is not") {
				t.Errorf("an update that adds AWS_ENDPOINT_URL_S3: %v", errs)
			}
		})
	}
}

func TestProvisioningPolicyFromISSPolicy(t *testing.T) {
	p, errs := FromISSPolicy(&v1alpha1.ISSPolicySpec{Provisioning: &v1alpha1.Provisioning{
		AllowedEnv: []string{"AWS_REGION", "ACME_*"}, AllowEnvFrom: true, ApprovedStorageAccounts: []string{"acmestate"},
	}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	got := p.Provisioning
	want := DefaultProvisioningPolicy()
	if strings.Join(got.AllowedEnv, ",") != "AWS_REGION,ACME_*" || !got.AllowEnvFrom || strings.Join(got.ApprovedStorageAccounts, ",") != "acmestate" ||
		strings.Join(got.AllowedImages, ",") != strings.Join(want.AllowedImages, ",") || strings.Join(got.ApprovedBackends, ",") != strings.Join(want.ApprovedBackends, ",") {
		t.Errorf("merged provisioning policy: %+v", got)
	}
	if !matchesName(got.AllowedEnv, "ACME_TOKEN") || matchesName(got.AllowedEnv, "ACME") || matchesName(got.AllowedEnv, "AWS_REGION_X") {
		t.Error("allowedEnv patterns match what they should not, or not what they should")
	}
	// The CRD's default is the built-in one.
	var crdDefault []string
	if err := json.Unmarshal([]byte(crdDefaultOf(t, "allowedEnv")), &crdDefault); err != nil {
		t.Fatal(err)
	}
	if strings.Join(crdDefault, ",") != strings.Join(DefaultAllowedEnv(), ",") {
		t.Errorf("the CRD's default allowedEnv differs from DefaultAllowedEnv:\n%v\n%v", crdDefault, DefaultAllowedEnv())
	}
	for _, name := range DefaultAllowedEnv() {
		if f, bad := redirectingEnv(name); bad {
			t.Errorf("the default allows %s, which covers %s", name, f)
		}
	}
}

// crdDefaultOf returns the +default marker of a Provisioning field in types.go.
func crdDefaultOf(t *testing.T, jsonName string) string {
	t.Helper()
	data, err := os.ReadFile("v1alpha1/types.go")
	if err != nil {
		t.Fatal(err)
	}
	src := string(data)
	tag := "`json:\"" + jsonName + ",omitempty\"`"
	end := strings.Index(src, tag)
	if end < 0 {
		t.Fatalf("no field %s in types.go", jsonName)
	}
	start := strings.LastIndex(src[:end], "// +default=")
	line := src[start+len("// +default="):]
	return line[:strings.IndexByte(line, '\n')]
}

func FuzzParseTerraformBackend(f *testing.F) {
	for _, seed := range []string{
		"backend \"s3\" {\n  bucket = \"iss-platform-state\"\n  encrypt = true\n  use_lockfile = true\n}",
		"backend \"s3\" {\n  key = <<EOT\n  bucket = \"iss-platform-state\"\nEOT\n  bucket = \"evil\"\n}",
		"backend \"s3\" {}\n}\nterraform {\n  backend \"local\" {}",
		"backend \"gcs\" { bucket = \"${var.b}\" }",
		"backend \"kubernetes\" { secret_suffix = \"x\" }",
		"backend \"azurerm\" {\n storage_account_name = \"issplatformstate\"\n container_name = \"iss-platform-state\"\n}\n/*",
		"encryption { method \"unencrypted\" \"u\" {} }",
		"",
	} {
		f.Add(seed)
	}
	p := DefaultProvisioningPolicy()
	f.Fuzz(func(t *testing.T, custom string) {
		backend, problems := ParseTerraformBackend(custom)
		if (backend == nil) == (len(problems) == 0) {
			t.Fatalf("want a backend or problems, got %+v and %v", backend, problems)
		}
		obj := provisioningObject(t, "infra.contrib.fluxcd.io/v1alpha2", "Terraform", goodTerraform, "")
		obj.Object["spec"].(map[string]any)["backendConfig"] = map[string]any{"customConfiguration": custom}
		errs := p.ValidateTerraform(obj, "")
		if backend == nil || len(errs) > 0 {
			return
		}
		// Admitted: the file the runner reads holds exactly one backend block, anywhere in it,
		// and it is the approved one.
		file, diags := hclsyntax.ParseConfig([]byte(backendFilePrefix+custom+backendFileSuffix), "f.tf", hcl.InitialPos)
		if diags.HasErrors() {
			t.Fatalf("admitted what does not parse: %q", custom)
		}
		if n := countBlocks(file.Body.(*hclsyntax.Body), "backend"); n != 1 {
			t.Fatalf("admitted %d backend blocks: %q", n, custom)
		}
		if !slices.Contains([]string{"s3", "gcs", "azurerm"}, backend.Type) {
			t.Fatalf("admitted backend %q: %q", backend.Type, custom)
		}
		bucket := backend.Attributes["bucket"]
		if backend.Type == "azurerm" {
			bucket = backend.Attributes["container_name"]
		}
		if !bucket.IsKnown() || bucket.AsString() != "iss-platform-state" {
			t.Fatalf("admitted bucket %#v: %q", bucket, custom)
		}
	})
}

func countBlocks(body *hclsyntax.Body, typ string) int {
	n := 0
	for _, b := range body.Blocks {
		if b.Type == typ {
			n++
		}
		n += countBlocks(b.Body, typ)
	}
	return n
}

// BenchmarkValidateTerraform is the cost of a Terraform's review on the admission path: the
// backend block parsed as HCL, every allowlist walked.
func BenchmarkValidateTerraform(b *testing.B) {
	t := &testing.T{}
	obj := provisioningObject(t, "infra.contrib.fluxcd.io/v1alpha2", "Terraform", goodTerraform,
		"runnerPodTemplate: {spec: {image: ghcr.io/flux-iac/tf-runner:v0.16.0, env: [{name: AWS_REGION, value: eu-west-1}, {name: TF_VAR_size, value: '3'}]}}")
	p := DefaultProvisioningPolicy()
	b.ReportAllocs()
	for b.Loop() {
		if errs := p.ValidateTerraform(obj, ""); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}

// BenchmarkValidateStack is the cost of a Stack's review on the admission path.
func BenchmarkValidateStack(b *testing.B) {
	t := &testing.T{}
	obj := provisioningObject(t, "pulumi.com/v1", "Stack", goodStack,
		"{envRefs: {AWS_REGION: {type: Literal, literal: {value: eu-west-1}}}, workspaceTemplate: {spec: {image: pulumi/pulumi:3.150.0, env: [{name: TZ, value: UTC}]}}}")
	p := DefaultProvisioningPolicy()
	b.ReportAllocs()
	for b.Loop() {
		if errs := p.ValidateStack(obj, ""); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}
