package configs

import (
	"errors"
	"testing"
)

// With config_repo on, slipway-config is the admins' repository: a [[repo]]
// of that name is refused at its line; without config_repo it is an
// ordinary name.
func TestConfigRepoName(t *testing.T) {
	src := users + "[[repo]]\nname = \"app\"\n[[repo]]\nname = \"slipway-config\"\nread = [\"bob\"]\n"
	c, err := Loader{}.Parse([]byte(src), "c.toml")
	if err != nil {
		t.Fatalf("config_repo off: %v", err)
	}
	if c.IsConfigRepo(ConfigRepoName) || !c.Configured(ConfigRepoName) {
		t.Errorf("config_repo off: IsConfigRepo %v, Configured %v; want false, true (a [[repo]])", c.IsConfigRepo(ConfigRepoName), c.Configured(ConfigRepoName))
	}

	_, err = Loader{}.Parse([]byte("config_repo = true\n"+src), "c.toml")
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 1 {
		t.Fatalf("config_repo on with a [[repo]] slipway-config: %v; want one problem", err)
	}
	want := `c.toml:11: repo "slipway-config" is the configuration repository (config_repo = true), which only admins may push; choose another name`
	if got := ve.Problems[0].String(); got != want {
		t.Errorf("problem:\n got %s\nwant %s", got, want)
	}

	c, err = Loader{}.Parse([]byte("config_repo = true\n"+users+"admin = true\n"), "c.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !c.IsConfigRepo(ConfigRepoName) || !c.Configured(ConfigRepoName) || c.Configured("app") {
		t.Errorf("config_repo on: IsConfigRepo %v, Configured %v, Configured(app) %v; want true, true, false",
			c.IsConfigRepo(ConfigRepoName), c.Configured(ConfigRepoName), c.Configured("app"))
	}
	// Only admins may read it (bob is one here, alice is not).
	if a, b := c.Access("alice", ConfigRepoName), c.Access("bob", ConfigRepoName); a != 0 || b != Admin {
		t.Errorf("access to %s: alice %v, bob (admin) %v; want none and all", ConfigRepoName, a, b)
	}
}
