package closest

import "testing"

func TestName(t *testing.T) {
	keys := []string{"steps", "timeout", "artifacts", "idle_timeout", "data_dir"}
	for word, want := range map[string]string{
		"stpes":       "steps",
		"STEPS":       "steps",
		"idel_timout": "",
		"idle_timout": "idle_timeout",
		"datadir":     "data_dir",
		"x":           "",
		"cache":       "",
	} {
		if got := Name(word, keys); got != want {
			t.Errorf("Name(%q) = %q, want %q", word, got, want)
		}
	}
}
