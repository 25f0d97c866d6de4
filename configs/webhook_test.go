package configs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWebhookConfig(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("k3y\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	text := `[[webhook]]
url = "https://chat.example.com/hooks/T0123/B0456/XXXXsecret?token=abc"
secret_file = "` + secret + `"
[[repo]]
name = "app"
  [[repo.webhook]]
  url = "https://chat.example.com/other"
  events = ["push"]
  branches = ["main"]
`
	c, err := Parse([]byte(text), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	hs := c.WebhooksOf("app")
	if len(hs) != 2 || hs[0].Name != "chat.example.com" || hs[1].Name != "chat.example.com-2" {
		t.Fatalf("hooks %+v, want derived unique names", hs)
	}
	if string(hs[0].Secret()) != "k3y" || hs[0].Format != "json" || hs[0].MaxAttempts != 8 ||
		strings.Join(hs[0].Events, ",") != "build.finished,deploy.finished,release.refused" {
		t.Fatalf("defaults %+v", hs[0])
	}
	if !hs[1].WantsBranch("refs/heads/main") || hs[1].WantsBranch("refs/heads/dev") || hs[1].Wants("build.finished") {
		t.Fatal("the branch and event filters do not hold")
	}
	if len(c.WebhooksOf("other")) != 1 || c.WebhookSettings.Timeout.Duration != DefaultWebhookTimeout {
		t.Fatal("an unconfigured repository gets the top-level hooks, with the defaults")
	}
	if m := MaskURL(hs[0].URL); strings.Contains(m, "abc") || strings.Contains(m, "secret") || strings.Contains(m, "T0123") {
		t.Fatalf("MaskURL shows a secret: %s", m)
	}

	bad := `[[repo]]
name = "app"
  [[repo.webhook]]
  name = "x"
  url = "ftp://example.com/"
  [[repo.webhook]]
  name = "x"
  url = "https://example.com/"
  events = ["build.done"]
  format = "xml"
  secret_file = "` + filepath.Join(dir, "missing") + `"
`
	_, err = Parse([]byte(bad), "t.toml")
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err %v, want problems", err)
	}
	want := []string{
		"t.toml:5: repo \"app\": webhook url \"ftp://example.com/\"",
		"t.toml:7: repo \"app\": webhook name \"x\" is taken",
		"t.toml:9: repo \"app\": webhook \"x\": unknown event \"build.done\"",
		"t.toml:10: repo \"app\": webhook \"x\": format \"xml\"",
		"t.toml:11: repo \"app\": webhook \"x\": secret_file: cannot read",
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("problems lack %q:\n%v", w, err)
		}
	}
}
