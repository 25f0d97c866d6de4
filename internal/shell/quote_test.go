package shell

import (
	"os/exec"
	"testing"
)

// Whatever the bytes, sh hands the quoted word to printf unchanged.
func TestQuoteRoundTrips(t *testing.T) {
	for _, s := range []string{"", "plain", "it's", "'", `a"b$c\d`, "$(rm -rf /)", "two\nlines", " space ", "*"} {
		out, err := exec.Command("sh", "-c", "printf '%s' "+Quote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("Quote(%q) through sh gave %q, %v", s, out, err)
		}
	}
}
