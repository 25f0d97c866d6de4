package gitserver

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"slipway/configs"
)

func TestParseCommandForms(t *testing.T) {
	t.Parallel()
	cases := []struct {
		line string
		name string
		args []string
	}{
		{"git-upload-pack 'app.git'", UploadPack, []string{"app.git"}},
		{"git-receive-pack '/team/app.git'", ReceivePack, []string{"/team/app.git"}},
		{"git-upload-pack app", UploadPack, []string{"app"}},
		{"git upload-pack 'team/app.git'", UploadPack, []string{"team/app.git"}},
		{"git upload-archive '/app'", UploadArchive, []string{"/app"}},
		{`git-upload-pack 'it'\''s.git'`, UploadPack, []string{"it's.git"}},
		{`git-upload-pack "a b.git"`, UploadPack, []string{"a b.git"}},
		{`git-upload-pack "say \"hi\"\\"`, UploadPack, []string{`say "hi"\`}},
		{"  whoami\t--json  ", "whoami", []string{"--json"}},
		{"log 12 -f", "log", []string{"12", "-f"}},
		{"help", "help", []string{}},
		{"x ''", "x", []string{""}},
		{`a\ b`, "a b", []string{}},
	}
	for _, c := range cases {
		got, err := ParseCommand(c.line)
		if err != nil {
			t.Errorf("ParseCommand(%q): %v", c.line, err)
			continue
		}
		if got.Name != c.name || !slices.Equal(got.Args, c.args) {
			t.Errorf("ParseCommand(%q) = %q %q, want %q %q", c.line, got.Name, got.Args, c.name, c.args)
		}
	}
}

func TestParseCommandRefuses(t *testing.T) {
	t.Parallel()
	for _, line := range []string{
		"", "   ", "git-upload-pack", "git-upload-pack a b", "git receive-pack",
		"git-upload-pack 'app.git", `git-upload-pack "app`, `help\`,
		"help\nwhoami", "whoami\x00", strings.Repeat("a ", 3000),
		strings.Repeat("a ", maxCommandArgs+1),
	} {
		if got, err := ParseCommand(line); err == nil {
			t.Errorf("ParseCommand(%q) = %+v, want an error", line, got)
		} else if !errors.Is(err, ErrCommandSyntax) {
			t.Errorf("ParseCommand(%q): error %v does not wrap ErrCommandSyntax", line, err)
		}
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"git-upload-pack 'app.git'", "git upload-pack '/team/app'", `git-receive-pack 'it'\''s.git'`,
		`a "b\"c" d\ e`, "'", `"`, `\`, "help", "\x00", "git", "git upload-pack",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		cl, err := ParseCommand(line)
		if err != nil {
			return
		}
		if cl.IsGit() && len(cl.Args) != 1 {
			t.Fatalf("git service %q with %d args", cl.Name, len(cl.Args))
		}
		if len(cl.Args) >= maxCommandArgs {
			t.Fatalf("%d args accepted", len(cl.Args))
		}
		for _, w := range append([]string{cl.Name}, cl.Args...) {
			if strings.ContainsAny(w, "\x00\n\r") {
				t.Fatalf("control character in word %q", w)
			}
		}
	})
}

func TestRepoPath(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for in, want := range map[string]string{
		"app":           "app.git",
		"app.git":       "app.git",
		"/app":          "app.git",
		"/team/app.git": "team/app.git",
		"a/b/c":         "a/b/c.git",
		// The leading slash is how ssh:// URLs send every path, so this is
		// the repository "etc/passwd" inside root, never the system file.
		"/etc/passwd": "etc/passwd.git",
	} {
		got, err := RepoPath(root, in)
		if err != nil {
			t.Errorf("RepoPath(%q): %v", in, err)
			continue
		}
		if got != filepath.Join(root, want) {
			t.Errorf("RepoPath(%q) = %q, want %q", in, got, filepath.Join(root, want))
		}
	}
	for _, in := range []string{
		"../x", "a/../../b", ".git", "", "/", "a//b", "a/b/c/d", "A", "-x", ".x",
		"a/.git", "x.git.git", strings.Repeat("a", 300), "a\x00b", "..", "~root/x",
	} {
		if got, err := RepoPath(root, in); err == nil {
			t.Errorf("RepoPath(%q) = %q, want an error", in, got)
		} else if !errors.Is(err, configs.ErrRepoName) {
			t.Errorf("RepoPath(%q): %v does not wrap configs.ErrRepoName", in, err)
		}
	}
}

func FuzzRepoPath(f *testing.F) {
	for _, s := range []string{"app", "/team/app.git", "../x", "/etc/passwd", "a/../../b", ".git", "a/b/c/d", "a/./b", "a\\..\\b"} {
		f.Add(s)
	}
	root := f.TempDir()
	f.Fuzz(func(t *testing.T, name string) {
		p, err := RepoPath(root, name)
		if err != nil {
			return
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
			t.Fatalf("RepoPath(%q) = %q, outside %q", name, p, root)
		}
		if !strings.HasSuffix(p, ".git") {
			t.Fatalf("RepoPath(%q) = %q, not a .git directory", name, p)
		}
	})
}

func TestGitProtocolOnlyVersionForms(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		env  []string
		want string
		ok   bool
	}{
		{[]string{"GIT_PROTOCOL=version=2"}, "version=2", true},
		{[]string{"GIT_PROTOCOL=version=0"}, "version=0", true},
		{[]string{"GIT_PROTOCOL=version=1", "LANG=C"}, "version=1", true},
		{[]string{"GIT_PROTOCOL=version=3"}, "", false},
		{[]string{"GIT_PROTOCOL=version=2:object-format=sha1"}, "", false},
		{[]string{"GIT_PROTOCOL=version=2\nX=1"}, "", false},
		{[]string{"GIT_PROTOCOL=version=2", "GIT_PROTOCOL=evil"}, "", false},
		{[]string{"XGIT_PROTOCOL=version=2"}, "", false},
		{nil, "", false},
	} {
		if got, ok := gitProtocol(c.env); got != c.want || ok != c.ok {
			t.Errorf("gitProtocol(%q) = %q, %v; want %q, %v", c.env, got, ok, c.want, c.ok)
		}
	}
}
