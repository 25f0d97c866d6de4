package configrepo

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"slipway/internal/gitrev"
	"slipway/record"
)

// TestCheck pins what a push to slipway-config is told, line for line:
// every problem of a broken file at its line, and the one reason of a
// push that would remove the configuration or lock admins out. A file that
// passes is accepted, and branches other than main are never checked.
func TestCheck(t *testing.T) {
	t.Parallel()
	alice, bob, carol := newKey(t), newKey(t), newKey(t)
	good := configOf(map[string]key{"alice": alice, "bob": bob}, nil, "")
	r, _ := newRepo(t, good)
	start := commit(t, r.o.GitDir, nil, "", map[string]string{"slipway.toml": good})
	setMain(t, r.o.GitDir, start)
	zero := strings.Repeat("0", 40)

	// Lines appended to good start at line n+1.
	n := strings.Count(good, "\n")
	expired := time.Now().Add(-time.Hour).UTC().Format("20060102")
	cases := []struct {
		name  string
		files map[string]file // nil: delete main
		ref   string          // default main
		key   string          // the pusher's key; default alice's
		want  []string        // %s is the pushed commit's short id
	}{
		{name: "a user added", files: map[string]file{"slipway.toml": {"100644", configOf(map[string]key{"alice": alice, "bob": bob}, map[string]key{"carol": carol}, "")}}},
		{name: "a review file beside it", files: map[string]file{"slipway.toml": {"100644", good}, "README": {"100644", "why\n"}}},
		{name: "syntax error", files: map[string]file{"slipway.toml": {"100644", good + "[[repo]\nname = \"app\"\n"}},
			want: []string{fmt.Sprintf("slipway.toml:%d: user: expected end of table array name delimiter ']', but got '\\n' instead", n+1),
				"main: slipway.toml at %s has 1 problem"}},
		{name: "unknown user", files: map[string]file{"slipway.toml": {"100644", good + "[[repo]]\nname = \"app\"\nwrite = [\"zed\"]\n"}},
			want: []string{fmt.Sprintf(`slipway.toml:%d: repo "app": write lists unknown user "zed"`, n+3), "main: slipway.toml at %s has 1 problem"}},
		{name: "two problems", files: map[string]file{"slipway.toml": {"100644", good + "colour = 1\n[[repo]]\nname = \"slipway-config\"\n"}},
			want: []string{fmt.Sprintf(`slipway.toml:%d: unknown key "colour" in [[user]]`, n+1),
				fmt.Sprintf(`slipway.toml:%d: repo "slipway-config" is the configuration repository (config_repo = true), which only admins may push; choose another name`, n+3),
				"main: slipway.toml at %s has 2 problems"}},
		{name: "file renamed", files: map[string]file{"config.toml": {"100644", good}},
			want: []string{"main: slipway.toml is missing at %s: this push would remove the configuration"}},
		{name: "file made a folder", files: map[string]file{"slipway.toml": {"040000", ""}},
			want: []string{"main: slipway.toml at %s is a folder, not a file: this push would remove the configuration"}},
		{name: "file made a link", files: map[string]file{"slipway.toml": {"120000", "other.toml"}, "other.toml": {"100644", good}},
			want: []string{"main: slipway.toml at %s is a symbolic link; it must be the file itself"}},
		{name: "main deleted", files: nil, want: []string{"main: deleting main would remove the configuration"}},
		{name: "no admin left", files: map[string]file{"slipway.toml": {"100644", configOf(nil, map[string]key{"alice": alice, "bob": bob}, "")}},
			want: []string{"main: this push would lock every admin out: no admin has a key that may log in (slipway.toml at %s)"}},
		{name: "admins' keys all expired", files: map[string]file{"slipway.toml": {"100644", strings.NewReplacer(
			`keys = ["ssh`, `keys = ["expiry-time=`+expired+` ssh`).Replace(good)}},
			want: []string{"main: this push would lock every admin out: no admin has a key that may log in (slipway.toml at %s)"}},
		{name: "the pusher no longer admin", files: map[string]file{"slipway.toml": {"100644", configOf(map[string]key{"bob": bob}, map[string]key{"alice": alice}, "")}},
			want: []string{"main: this push would take away your own admin access: your key " + alice.Fingerprint + " is no admin's; have another admin push it (slipway.toml at %s)"}},
		{name: "another admin demotes alice", key: bob.Fingerprint, files: map[string]file{"slipway.toml": {"100644", configOf(map[string]key{"bob": bob}, map[string]key{"alice": alice}, "")}}},
		{name: "a push on the server's disk", key: "-", files: map[string]file{"slipway.toml": {"100644", configOf(map[string]key{"bob": bob}, nil, "")}}},
		{name: "a review branch may hold anything", ref: "refs/heads/review", files: map[string]file{"notes": {"100644", "x\n"}}},
		{name: "a tag too", ref: "refs/tags/v1", files: map[string]file{"slipway.toml": {"100644", "[[[\n"}}},
	}
	for _, tc := range cases {
		ref := tc.ref
		if ref == "" {
			ref = "refs/heads/main"
		}
		fp := alice.Fingerprint
		switch tc.key {
		case "-":
			fp = ""
		case "":
		default:
			fp = tc.key
		}
		u := record.RefUpdate{Name: ref, Old: start, New: zero}
		if tc.files != nil {
			u.New = commitFiles(t, r.o.GitDir, nil, start, tc.files)
		}
		got := r.Check(t.Context(), "alice", fp, []record.RefUpdate{u}, "")
		var want []string
		for _, w := range tc.want {
			if strings.Contains(w, "%s") {
				w = fmt.Sprintf(w, gitrev.Short(u.New))
			}
			want = append(want, w)
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, want)
		}
	}
}

// A file over MaxFileBytes is refused by its size, before it is read, and
// an id that is no commit is refused as such.
func TestCheckSizeAndKind(t *testing.T) {
	t.Parallel()
	r, _ := newRepo(t, "")
	big := commit(t, r.o.GitDir, nil, "", map[string]string{"slipway.toml": strings.Repeat("#\n", MaxFileBytes/2+1)})
	blob := git(t, r.o.GitDir, nil, "x", "hash-object", "-w", "--stdin")
	for _, tc := range []struct{ id, want string }{
		{big, fmt.Sprintf("main: slipway.toml at %s is %d bytes, over the limit of 8 MiB", gitrev.Short(big), MaxFileBytes+2)},
		{blob, fmt.Sprintf("main: %s is not a commit", gitrev.Short(blob))},
	} {
		got := r.Check(t.Context(), "alice", "", []record.RefUpdate{{Name: "refs/heads/main", Old: strings.Repeat("0", 40), New: tc.id}}, "")
		if len(got) != 1 || got[0] != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

// A pushed commit is read from the push's quarantine, where its objects
// are until the push lands; without it they cannot be read, and the push
// is refused rather than let through unchecked.
func TestCheckReadsTheQuarantine(t *testing.T) {
	t.Parallel()
	alice := newKey(t)
	r, _ := newRepo(t, "")
	q := filepath.Join(r.o.GitDir, "objects", "tmp_objdir-incoming-test")
	if err := os.Mkdir(q, 0o755); err != nil {
		t.Fatal(err)
	}
	qenv := []string{"GIT_OBJECT_DIRECTORY=" + q, "GIT_ALTERNATE_OBJECT_DIRECTORIES=" + filepath.Join(r.o.GitDir, "objects")}
	good := commit(t, r.o.GitDir, qenv, "", map[string]string{"slipway.toml": configOf(map[string]key{"alice": alice}, nil, "")})
	bad := commit(t, r.o.GitDir, qenv, "", map[string]string{"slipway.toml": configOf(nil, map[string]key{"alice": alice}, "")})
	refs := func(id string) []record.RefUpdate {
		return []record.RefUpdate{{Name: "refs/heads/main", Old: strings.Repeat("0", 40), New: id}}
	}
	if got := r.Check(t.Context(), "alice", alice.Fingerprint, refs(good), q); got != nil {
		t.Errorf("a good file in the quarantine: %q", got)
	}
	if got := r.Check(t.Context(), "alice", alice.Fingerprint, refs(bad), q); len(got) != 1 || !strings.Contains(got[0], "lock every admin out") {
		t.Errorf("a lockout in the quarantine: %q", got)
	}
	want := fmt.Sprintf("main: %s is not a commit", gitrev.Short(good))
	if got := r.Check(t.Context(), "alice", alice.Fingerprint, refs(good), ""); len(got) != 1 || got[0] != want {
		t.Errorf("without the quarantine: %q, want %q", got, want)
	}
}
