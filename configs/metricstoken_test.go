package configs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMetricsToken: the token is read with the configuration, without its
// final newline; a file that is missing, empty, too short, of several
// lines or not a token at all is a problem on the line of
// metrics_token_file, which never quotes the file's content; without the
// key metrics are off.
func TestMetricsToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const good = "4f1c8e2a9b7d3c6e5f0a1b2c3d4e5f60"
	parse := func(path string) (*Config, error) {
		return Loader{}.Parse([]byte("[ssh]\nlisten = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\nmetrics_token_file = \""+path+"\"\n"), "c.toml")
	}

	c, err := parse(file("good", good+"\n"))
	if err != nil || c.MetricsToken() != good {
		t.Fatalf("good token: %q, %v", c.MetricsToken(), err)
	}
	c, err = parse(file("crlf", "  "+good+"\r\n\n"))
	if err != nil || c.MetricsToken() != good {
		t.Fatalf("token with spaces and CRLF around it: %q, %v", c.MetricsToken(), err)
	}
	off, err := Loader{}.Parse([]byte("[http]\nlisten = \"127.0.0.1:0\"\n"), "c.toml")
	if err != nil || off.MetricsToken() != "" {
		t.Fatalf("without metrics_token_file: %q, %v", off.MetricsToken(), err)
	}

	for _, c := range []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "nope"), "cannot read " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{"a folder", dir, "cannot read " + dir},
		{"empty", file("empty", "\n"), "holds nothing; a token needs at least 16"},
		{"short", file("short", "secret\n"), "holds a token of 6 characters; a token needs at least 16"},
		{"two lines", file("two", good+"\n"+good+"\n"), "holds more than one line, spaces or characters other than visible ASCII"},
		{"inner space", file("space", "correct horse battery staple\n"), "holds more than one line, spaces"},
		{"binary", file("bin", good+"\x00\xff"), "characters other than visible ASCII"},
		{"huge", file("huge", strings.Repeat("a", 5000)), "is longer than 4096 bytes"},
	} {
		_, err := parse(c.path)
		var ve *ValidationError
		if !errors.As(err, &ve) || len(ve.Problems) != 1 {
			t.Errorf("%s: %v, want one problem", c.name, err)
			continue
		}
		p := ve.Problems[0]
		if p.Line != 5 || !strings.HasPrefix(p.Msg, "[http] metrics_token_file: ") || !strings.Contains(p.Msg, c.want) {
			t.Errorf("%s: %s, want line 5 and %q", c.name, p, c.want)
		}
		if strings.Contains(p.Msg, good) || strings.Contains(p.Msg, "secret") || strings.Contains(p.Msg, "horse") {
			t.Errorf("%s: the problem quotes the file: %s", c.name, p)
		}
	}

	// Read at each load: a reload sees the file as it is then.
	rotated := file("rot", good+"\n")
	first, err := parse(rotated)
	if err != nil {
		t.Fatal(err)
	}
	file("rot", strings.ToUpper(good)+"\n")
	second, err := parse(rotated)
	if err != nil || first.MetricsToken() != good || second.MetricsToken() != strings.ToUpper(good) {
		t.Errorf("after the file changed: %q then %q, %v", first.MetricsToken(), second.MetricsToken(), err)
	}
}
