package configs

import (
	"strings"
	"testing"
)

func TestVerifyBranches(t *testing.T) {
	c, err := Parse([]byte(`data_dir = "d"
[[user]]
name = "alice"
keys = ["`+keyA+`"]

[[repo]]
name = "app"
write = ["alice"]
verify_branches = ["main", "release/*"]
`), "v.toml")
	if err != nil {
		t.Fatal(err)
	}
	r := c.RepoOrDefault("app")
	for ref, want := range map[string]bool{
		"refs/heads/main": true, "refs/heads/release/1.0": true, "refs/heads/release/1.0/x": false,
		"refs/heads/dev": false, "refs/tags/main": false, "refs/release/prod": false, "main": false,
	} {
		if got := r.Verifies(ref); got != want {
			t.Errorf("Verifies(%q) = %v, want %v", ref, got, want)
		}
	}
	if c.RepoOrDefault("unlisted").Verifies("refs/heads/main") {
		t.Error("an unlisted repository verifies main")
	}
	ex, err := Parse(ExampleTOML(), "example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !ex.RepoOrDefault("app").Verifies("refs/heads/main") {
		t.Error("the example's app does not verify main")
	}

	_, err = Parse([]byte(`data_dir = "d"
[[repo]]
name = "app"
verify_branches = ["["]
`), "bad.toml")
	if err == nil || !strings.Contains(err.Error(), `bad.toml:4: repo "app": bad branch pattern "["`) {
		t.Fatalf("a bad verify_branches pattern: %v", err)
	}
}
