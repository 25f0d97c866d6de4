package configs

import (
	"errors"
	"strings"
	"testing"
)

// A repository that builds on Kubernetes needs the helper image and the
// transfer address; wrong executors, quantities and operators are named
// with their lines.
func TestKubernetesValidation(t *testing.T) {
	src := `data_dir = "/tmp/x"
[build]
executor = "docker"

[kubernetes]
requests = { cpu = "lots" }
tolerations = [{ key = "ci", operator = "Maybe" }]
transfer_url = "ftp://x"

[[repo]]
name = "app"
executor = "kubernetes"
`
	_, err := Parse([]byte(src), "k.toml")
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want ValidationError, got %v", err)
	}
	for _, w := range []string{
		`k.toml:3: build.executor must be "bubblewrap" or "kubernetes", not "docker"`,
		`k.toml:5: kubernetes.helper_image is needed: some builds run on Kubernetes`,
		`k.toml:5: kubernetes.transfer_listen is needed`,
		`k.toml:6: kubernetes.requests.cpu "lots" is not a Kubernetes quantity`,
		`k.toml:7: kubernetes.tolerations[0]: operator must be "Equal" or "Exists", not "Maybe"`,
		`k.toml:8: kubernetes.transfer_url "ftp://x" is not an http:// or https:// URL`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%s", w, err)
		}
	}

	ok := `data_dir = "/tmp/x"
[kubernetes]
helper_image = "slipway:1"
transfer_listen = "127.0.0.1:0"
transfer_url = "http://127.0.0.1:8181"

[[repo]]
name = "app"
executor = "kubernetes"

[[repo]]
name = "lib"
`
	c, err := Parse([]byte(ok), "ok.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.ExecutorOf("app") != ExecutorKubernetes || c.ExecutorOf("lib") != ExecutorBubblewrap || c.ExecutorOf("unknown") != ExecutorBubblewrap {
		t.Errorf("executors: app %q, lib %q, unknown %q", c.ExecutorOf("app"), c.ExecutorOf("lib"), c.ExecutorOf("unknown"))
	}
	if k := c.Kubernetes; k.Namespace != "default" || k.Image != DefaultKubernetesImage || k.RunAsUser != 65532 || k.GracePeriod.Seconds() != 10 {
		t.Errorf("defaults: %+v", k)
	}
}
