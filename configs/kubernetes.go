package configs

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"time"
)

// The executors a build may run on.
const (
	ExecutorBubblewrap = "bubblewrap"
	ExecutorKubernetes = "kubernetes"
)

// DefaultKubernetesImage is the steps' image when neither the pipeline
// nor [kubernetes] image names one.
const DefaultKubernetesImage = "debian:stable-slim"

// Kubernetes configures the Kubernetes executor ([kubernetes]), used by the
// builds whose executor (build.executor, or a repository's own) is
// "kubernetes". Its settings need a restart.
type Kubernetes struct {
	// Kubeconfig is the kubeconfig file of the account Slipway uses
	// (configs/kubernetes-rbac.yaml lists the rights it needs); empty:
	// the in-cluster service account, for a daemon that runs in a Pod.
	Kubeconfig string `toml:"kubeconfig"`
	// Namespace holds the build Pods and their Secrets. Default "default".
	Namespace string `toml:"namespace"`
	// Image is the steps' image when the pipeline names none.
	Image string `toml:"image"`
	// HelperImage holds slipway-helper (cmd/slipway-helper) at
	// /opt/slipway/bin/slipway-helper, which
	// fetches the source into a build's Pod and sends its artifacts back.
	HelperImage string `toml:"helper_image"`
	// TransferListen is where the daemon serves the build Pods' transfers
	// ("0.0.0.0:8181"), and TransferURL how the Pods reach it
	// ("http://slipway.ci.svc:8181"). Each build's token is valid only for
	// that build, once each way, while it runs.
	TransferListen string `toml:"transfer_listen"`
	TransferURL    string `toml:"transfer_url"`
	// ServiceAccount is the build Pods' service account; its token is not
	// mounted unless MountServiceAccountToken.
	ServiceAccount           string `toml:"service_account"`
	MountServiceAccountToken bool   `toml:"mount_service_account_token"`
	// NodeSelector and Tolerations place the build Pods.
	NodeSelector map[string]string `toml:"node_selector"`
	Tolerations  []Toleration      `toml:"tolerations"`
	// Requests and Limits are every step container's resources, as
	// Kubernetes quantities ({cpu = "500m", memory = "1Gi"}); build.max_memory_bytes,
	// when set, is the memory limit.
	Requests map[string]string `toml:"requests"`
	Limits   map[string]string `toml:"limits"`
	// MaxConcurrent caps the build Pods at once; 0: build.concurrency.
	MaxConcurrent int `toml:"max_concurrent"`
	// RunAsUser is the uid every container runs as (never 0). Default 65532.
	RunAsUser int64 `toml:"run_as_user"`
	// WritableRoot leaves the containers' root filesystems writable
	// (images that write outside the workspace, home and /tmp need it).
	WritableRoot bool `toml:"writable_root"`
	// GracePeriod is what a cancelled build's processes get between
	// SIGTERM and SIGKILL. Default "10s".
	GracePeriod Duration `toml:"grace_period"`
	// APITimeout is how long a running build waits for an API server that
	// stopped answering (its log and its Pod's state) before it ends in
	// error; what it left is deleted once the server answers again.
	// Default "60s".
	APITimeout Duration `toml:"api_timeout"`
}

// Toleration is one Kubernetes toleration of the build Pods.
type Toleration struct {
	Key      string `toml:"key"`
	Operator string `toml:"operator"`
	Value    string `toml:"value"`
	Effect   string `toml:"effect"`
}

// ExecutorOf is the executor of repo's builds: its own, else
// build.executor.
func (c *Config) ExecutorOf(repo string) string {
	if r, ok := c.Repo(repo); ok && r.Executor != "" {
		return r.Executor
	}
	return c.Build.Executor
}

// UsesKubernetes reports whether any build may run on Kubernetes.
func (c *Config) UsesKubernetes() bool {
	return c.Build.Executor == ExecutorKubernetes ||
		slices.ContainsFunc(c.Repos, func(r Repo) bool { return r.Executor == ExecutorKubernetes })
}

// quantityRE is the form of a Kubernetes resource quantity ("500m", "1Gi",
// "2", "1e3"); the daemon parses it exactly when it starts the executor.
var quantityRE = regexp.MustCompile(`^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+)?$`)

func validExecutor(s string) bool { return s == ExecutorBubblewrap || s == ExecutorKubernetes }

func (c *Config) validateKubernetes(v *validator) {
	if !validExecutor(c.Build.Executor) {
		v.add(v.loc.keyIn("build", -1, "executor"), `build.executor must be %q or %q, not %q`, ExecutorBubblewrap, ExecutorKubernetes, truncate(c.Build.Executor))
	}
	for i, r := range c.Repos {
		if r.Executor != "" && !validExecutor(r.Executor) {
			v.add(v.loc.keyIn("repo", i, "executor"), `repo %q: executor must be %q or %q, not %q`, r.Name, ExecutorBubblewrap, ExecutorKubernetes, truncate(r.Executor))
		}
	}
	k := c.Kubernetes
	at := func(key string) int { return v.loc.keyIn("kubernetes", -1, key) }
	if c.UsesKubernetes() {
		for key, val := range map[string]string{"helper_image": k.HelperImage, "transfer_listen": k.TransferListen, "transfer_url": k.TransferURL} {
			if val == "" {
				v.add(at(key), "kubernetes.%s is needed: some builds run on Kubernetes", key)
			}
		}
	}
	if k.TransferListen != "" {
		if err := CheckListen(k.TransferListen); err != nil {
			v.add(at("transfer_listen"), "kubernetes.transfer_listen: %v", err)
		}
	}
	if k.TransferURL != "" {
		if u, err := url.Parse(k.TransferURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.add(at("transfer_url"), "kubernetes.transfer_url %q is not an http:// or https:// URL", truncate(k.TransferURL))
		}
	}
	for _, l := range []struct {
		key  string
		list map[string]string
	}{{"requests", k.Requests}, {"limits", k.Limits}} {
		for name, q := range l.list {
			if !quantityRE.MatchString(q) {
				v.add(at(l.key), "kubernetes.%s.%s %q is not a Kubernetes quantity (such as \"500m\" or \"1Gi\")", l.key, name, truncate(q))
			}
		}
	}
	if k.MaxConcurrent < 0 {
		v.add(at("max_concurrent"), "kubernetes.max_concurrent must not be negative")
	}
	if k.RunAsUser < 0 || k.RunAsUser > maxID {
		v.add(at("run_as_user"), "kubernetes.run_as_user must be a uid from 1 to %d", maxID)
	}
	for i, t := range k.Tolerations {
		switch t.Operator {
		case "", "Equal", "Exists":
		default:
			v.add(at("tolerations"), "kubernetes.tolerations[%d]: operator must be \"Equal\" or \"Exists\", not %q", i, truncate(t.Operator))
		}
	}
}

func (c *Config) kubernetesDefaults() {
	if c.Build.Executor == "" {
		c.Build.Executor = ExecutorBubblewrap
	}
	k := &c.Kubernetes
	if k.Namespace == "" {
		k.Namespace = "default"
	}
	if k.Image == "" {
		k.Image = DefaultKubernetesImage
	}
	if k.RunAsUser == 0 {
		k.RunAsUser = 65532
	}
	if k.GracePeriod.Duration == 0 {
		k.GracePeriod.Duration = 10 * time.Second
	}
	if k.APITimeout.Duration == 0 {
		k.APITimeout.Duration = time.Minute
	}
}

// describeKubernetes is the [kubernetes] table as a reload compares it.
func (k Kubernetes) describe() string { return fmt.Sprintf("%+v", k) }
