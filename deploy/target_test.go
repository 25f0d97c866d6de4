package deploy

import (
	"strings"
	"testing"
	"time"
)

func TestParseTarget(t *testing.T) {
	t.Parallel()
	ok := []struct {
		in   string
		want Target
	}{
		{"deploy@staging.example:/srv/app", Target{User: "deploy", Host: "staging.example", Path: "/srv/app"}},
		{"staging.example:/srv/app", Target{Host: "staging.example", Path: "/srv/app"}},
		{"deploy@[::1]:/srv/app", Target{User: "deploy", Host: "::1", Path: "/srv/app"}},
		{"ssh://deploy@127.0.0.1:2222/srv/app", Target{User: "deploy", Host: "127.0.0.1", Port: 2222, Path: "/srv/app"}},
		{"/var/lib/slipway/deploy/staging", Target{Local: "/var/lib/slipway/deploy/staging"}},
	}
	for _, c := range ok {
		got, err := ParseTarget(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseTarget(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
		if err == nil {
			again, err := ParseTarget(got.String())
			if err != nil || again != got {
				t.Errorf("ParseTarget(%q.String() = %q) = %+v, %v", c.in, got.String(), again, err)
			}
		}
	}
	bad := map[string]string{
		"":                             "empty",
		"relative/folder":              "no ':' between the host and the path",
		"deploy@host:relative":         "not absolute",
		"deploy@-oProxyCommand=x:/srv": "not a host",
		"-l@host:/srv":                 "user",
		"deploy@host:/srv/../etc":      `may not contain ".."`,
		"deploy@host:/srv/a b":         "only letters",
		"deploy@host:/":                "root folder",
		"deploy@host:/srv\n":           "control",
		"ssh://u:pw@host/srv":          "passwords",
		"ssh://host:99999/srv":         "port",
		"/srv/app/":                    "not clean",
	}
	for in, want := range bad {
		_, err := ParseTarget(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseTarget(%q) error = %v, want one mentioning %q", in, err, want)
		}
	}
}

func TestReleaseIDs(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"42", "20260101T020000Z-abc123", "r1.2_x"} {
		if err := checkReleaseID(id); err != nil {
			t.Errorf("checkReleaseID(%q) = %v, want ok", id, err)
		}
	}
	for _, id := range []string{"", ".", "..", ".hidden", "-rf", "a/b", "x.partial", "a..b", "a b", strings.Repeat("a", 129)} {
		if checkReleaseID(id) == nil {
			t.Errorf("checkReleaseID(%q) accepted", id)
		}
	}
}

// FuzzParseTarget checks that whatever the config holds, an accepted target
// cannot inject ssh options or shell syntax and survives a round trip.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"deploy@host:/srv/app", "/srv/app", "ssh://u@[::1]:22/x", "u@[fe80::1]:/p", "a@b@c:/d", "h:/", "ssh://h:0/x", "u@h:/a;rm -rf /"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseTarget(s)
		if err != nil {
			return
		}
		if err := tg.Validate(); err != nil {
			t.Fatalf("ParseTarget(%q) = %+v, which Validate rejects: %v", s, tg, err)
		}
		if !tg.IsLocal() {
			if strings.HasPrefix(tg.Host, "-") || strings.HasPrefix(tg.User, "-") {
				t.Fatalf("ParseTarget(%q) = %+v: option-like host or user", s, tg)
			}
			if strings.ContainsAny(tg.Path, " ;'\"$`\\\n") {
				t.Fatalf("ParseTarget(%q) = %+v: unsafe remote path", s, tg)
			}
		}
		again, err := ParseTarget(tg.String())
		if err != nil || again != tg {
			t.Fatalf("round trip of %q via %q: %+v, %v", s, tg.String(), again, err)
		}
	})
}

func TestParseState(t *testing.T) {
	t.Parallel()
	out := "Welcome from .bashrc\n" +
		"live releases/r2\n" +
		"release r1\nmarker id=r1\nmarker commit=c1\nmarker time=2026-01-01T00:00:00Z\n" +
		"release r2\nmarker commit=c2\nmarker time=2026-01-02T00:00:00Z\nmarker env=staging\n" +
		"partial r3.partial\nremoved r0.partial\nrelease ../../etc\npartial -rf\n"
	st, err := parseState([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if st.live != "r2" || len(st.releases) != 3 || st.releases[0].ID != "r2" || !st.releases[0].Live ||
		st.releases[0].Commit != "c2" || st.releases[0].Env != "staging" || st.releases[1].ID != "r1" ||
		st.releases[2].ID != "r3.partial" || st.releases[2].Complete || len(st.removed) != 1 ||
		!st.releases[1].Time.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("parseState = %+v", st)
	}
	// current pointing at something that is not a complete release is not "live".
	st, _ = parseState([]byte("live /etc\nrelease r1\n"))
	if st.live != "" || st.releases[0].Live {
		t.Fatalf("foreign current link taken as live: %+v", st)
	}
}

// FuzzParseState feeds the parser what a hostile or broken target could
// print: it must not panic, and every release name it returns must be safe
// to put into a command.
func FuzzParseState(f *testing.F) {
	f.Add([]byte("live releases/r1\nrelease r1\nmarker time=2026-01-01T00:00:00Z\npartial r2.partial\n"))
	f.Add([]byte("marker x=y\nrelease\nlive\nremoved ..\n"))
	f.Add([]byte("release a\x00b\nlive releases/../x\n"))
	f.Fuzz(func(t *testing.T, out []byte) {
		st, err := parseState(out)
		if err != nil {
			return
		}
		for _, r := range st.releases {
			if checkReleaseID(strings.TrimSuffix(r.ID, partialSuffix)) != nil {
				t.Fatalf("unsafe release name %q accepted", r.ID)
			}
			if r.Live && (!r.Complete || r.ID != st.live) {
				t.Fatalf("release %+v live but live is %q", r, st.live)
			}
		}
		if st.live != "" && checkReleaseID(st.live) != nil {
			t.Fatalf("unsafe live release %q", st.live)
		}
	})
}
