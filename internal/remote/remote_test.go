package remote

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	ok := map[string]Target{
		"deploy@staging.example:/srv/app":     {User: "deploy", Host: "staging.example", Path: "/srv/app"},
		"staging.example:/srv/app":            {Host: "staging.example", Path: "/srv/app"},
		"deploy@[::1]:/srv/app":               {User: "deploy", Host: "::1", Path: "/srv/app"},
		"ssh://deploy@127.0.0.1:2222/srv/app": {User: "deploy", Host: "127.0.0.1", Port: 2222, Path: "/srv/app"},
	}
	for in, want := range ok {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	bad := map[string]string{
		"relative/folder":              `no ':' between the host and the path`,
		"deploy@host:relative":         `path "relative" is not absolute`,
		"deploy@-oProxyCommand=x:/srv": `host "-oProxyCommand=x" is not a host name`,
		"-l@host:/srv":                 `user "-l": only letters`,
		"deploy@:/srv":                 `the host is missing`,
		"deploy@host:":                 `the path is missing`,
		"deploy@host:/srv/../etc":      `path "/srv/../etc" may not contain ".."`,
		"deploy@host:/srv/./x":         `path "/srv/./x" is not clean (write "/srv/x")`,
		"deploy@host:/srv/a b":         `path "/srv/a b": only letters`,
		"deploy@host:/":                `the path must not be the root folder`,
		"deploy@host:/srv\n":           `control characters`,
		"ssh://u:pw@host/srv":          `passwords are not supported`,
		"ssh://host:99999/srv":         `bad port 99999 (use 1 to 65535)`,
		"ssh://host/srv?x=1":           `query or fragment`,
		"u@[::1/srv":                   `user@[ADDRESS]:/path`,
		"deploy@host:/srv/{repo}":      `only letters`,
		"a@b@c:/d":                     `user "a@b"`,
	}
	for in, want := range bad {
		if _, err := Parse(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) error = %v, want one mentioning %q", in, err, want)
		}
	}
}

// A template is checked with a name in place of "{repo}", and quoted as
// written.
func TestParseTemplate(t *testing.T) {
	t.Parallel()
	got, err := ParseTemplate("{repo}@h-{repo}:/srv/{repo}")
	if want := (Target{User: "{repo}", Host: "h-{repo}", Path: "/srv/{repo}"}); err != nil || got != want {
		t.Errorf("ParseTemplate = %+v, %v; want %+v", got, err, want)
	}
	_, err = ParseTemplate("deploy@host:/srv/{repo}/../x")
	if err == nil || err.Error() != `path "/srv/{repo}/../x" may not contain ".."` {
		t.Errorf("ParseTemplate of a path with ..: %v", err)
	}
}

func TestCheckFolder(t *testing.T) {
	t.Parallel()
	if err := CheckFolder("/srv/my app"); err != nil {
		t.Errorf("CheckFolder of a local folder with a space: %v", err)
	}
	for _, p := range []string{"", "srv", "/", "/srv/", "/srv/../x", "/srv\x7f"} {
		if CheckFolder(p) == nil {
			t.Errorf("CheckFolder(%q) accepted", p)
		}
	}
}

// FuzzParse checks that whatever a configuration holds, an accepted target
// cannot put an ssh option or shell syntax on a command line, and that a
// template accepts what Parse does.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"deploy@host:/srv/app", "ssh://u@[::1]:22/x", "u@[fe80::1]:/p", "a@b@c:/d", "h:/", "ssh://h:0/x", "u@h:/a;rm -rf /", "{repo}@h:/x/{repo}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := Parse(s)
		if err != nil {
			return
		}
		if strings.HasPrefix(tg.Host, "-") || strings.HasPrefix(tg.User, "-") || tg.Host == "" {
			t.Fatalf("Parse(%q) = %+v: option-like or missing host or user", s, tg)
		}
		if strings.ContainsAny(tg.Path, " ;'\"$`\\\n") || CheckPath(tg.Path) != nil {
			t.Fatalf("Parse(%q) = %+v: unsafe remote path", s, tg)
		}
		if again, err := ParseTemplate(s); err != nil || again != tg {
			t.Fatalf("ParseTemplate(%q) = %+v, %v; Parse gave %+v", s, again, err, tg)
		}
	})
}
