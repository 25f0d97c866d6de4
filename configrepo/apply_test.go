package configrepo

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"slipway/internal/gitrev"
	"slipway/record"
)

// An accepted push to main is written to the file, mode kept, and then
// reloaded with a reason naming the pusher and the commit; the reload
// reads the pushed file. A review branch applies nothing, and a push that
// main has moved on from leaves the file to the push that moved it.
func TestApply(t *testing.T) {
	t.Parallel()
	alice := newKey(t)
	first := configOf(map[string]key{"alice": alice}, nil, "")
	r, rl := newRepo(t, first)
	one := commit(t, r.o.GitDir, nil, "", map[string]string{"slipway.toml": first})
	setMain(t, r.o.GitDir, one)
	second := first + "[[repo]]\nname = \"app\"\n"
	two := commit(t, r.o.GitDir, nil, one, map[string]string{"slipway.toml": second})
	setMain(t, r.o.GitDir, two)

	var out strings.Builder
	r.Apply(t.Context(), "alice", []record.RefUpdate{{Name: "refs/heads/main", Old: one, New: two}}, &out)
	reason := fmt.Sprintf("push to slipway-config by alice (commit %s)", gitrev.Short(two))
	if got := out.String(); got != "reloaded: "+reason+"\n" {
		t.Errorf("the pusher is told %q", got)
	}
	if len(rl.reasons) != 1 || rl.reasons[0] != reason || rl.files[0] != second {
		t.Fatalf("reloads %q of files %q; want one, %q, of the pushed file", rl.reasons, rl.files, reason)
	}
	fi, err := os.Stat(r.o.File)
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("the file's mode after the write: %v, %v; want 0640 as before", fi.Mode(), err)
	}

	// A review branch: nothing written, nothing reloaded, and said so.
	out.Reset()
	review := commit(t, r.o.GitDir, nil, two, map[string]string{"slipway.toml": "broken ["})
	r.Apply(t.Context(), "alice", []record.RefUpdate{{Name: "refs/heads/review", Old: strings.Repeat("0", 40), New: review}}, &out)
	if got := out.String(); got != "slipway: review is not main: nothing was put in force (the configuration is main's)\n" {
		t.Errorf("a review branch push is told %q", got)
	}

	// main moved on after this push (another push landed): its
	// post-receive writes the file, not this one.
	out.Reset()
	three := commit(t, r.o.GitDir, nil, two, map[string]string{"slipway.toml": first})
	four := commit(t, r.o.GitDir, nil, three, map[string]string{"slipway.toml": second + "[[repo]]\nname = \"web\"\n"})
	setMain(t, r.o.GitDir, four)
	r.Apply(t.Context(), "alice", []record.RefUpdate{{Name: "refs/heads/main", Old: two, New: three}}, &out)
	want := fmt.Sprintf("slipway: main has moved on to %s since this push; the push that moved it puts its configuration in force\n", gitrev.Short(four))
	if got := out.String(); got != want {
		t.Errorf("a push main moved on from is told %q, want %q", got, want)
	}
	if data, _ := os.ReadFile(r.o.File); string(data) != second || len(rl.reasons) != 1 {
		t.Errorf("after a review push and a stale one: %d reloads, file %q; want 1, unchanged", len(rl.reasons), data)
	}
}

// WriteFile replaces a file in one rename: the target of a symbolic link
// (the link stays), the old mode kept, no temporary file left; a new file
// is 0600.
func TestWriteFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	real := filepath.Join(dir, "conf", "slipway.toml")
	if err := os.Mkdir(filepath.Dir(real), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(real, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "slipway.toml")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(link, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v %v", fi.Mode(), err)
	}
	if data, err := os.ReadFile(real); err != nil || string(data) != "new" {
		t.Errorf("the link's target holds %q, %v", data, err)
	}
	if fi, _ := os.Stat(real); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v; want 0644 kept", fi.Mode().Perm())
	}
	for _, d := range []string{dir, filepath.Dir(real)} {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				t.Errorf("%s left behind in %s", e.Name(), d)
			}
		}
	}
	fresh := filepath.Join(dir, "fresh.toml")
	if err := WriteFile(fresh, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(fresh); fi.Mode().Perm() != 0o600 {
		t.Errorf("a new file's mode %v; want 0600", fi.Mode().Perm())
	}
	if err := CheckWritable(link); err != nil {
		t.Errorf("CheckWritable of a writable file: %v", err)
	}
	if err := CheckWritable(filepath.Join(dir, "missing.toml")); err == nil {
		t.Error("CheckWritable of a missing file: no error")
	}
}
