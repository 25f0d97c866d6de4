package e2e

// Helpers shared by the files of this package: asking the daemon over SSH
// and reading what it answers, and the figures of the timing tests.

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// mustSSH runs an SSH command on d as u that must succeed and returns its
// stdout.
func mustSSH(t testing.TB, d *daemon, u *user, args ...string) string {
	t.Helper()
	out, stderr, code := d.ssh(u, args...)
	if code != 0 {
		t.Fatalf("ssh %s: exit %d\n%s%s", strings.Join(args, " "), code, out, stderr)
	}
	return out
}

// sshJSON runs an SSH command on d as u that prints JSON (such as
// `builds REPO --json`) and decodes its stdout; it fails the test when the
// command fails or does not print JSON.
func sshJSON[T any](t testing.TB, d *daemon, u *user, args ...string) T {
	t.Helper()
	out := mustSSH(t, d, u, args...)
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("ssh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return v
}

// mustFind returns the first element of list for which match holds, and
// fails the test, saying missing, when there is none.
func mustFind[T any](t testing.TB, list []T, match func(T) bool, missing string) T {
	t.Helper()
	i := slices.IndexFunc(list, match)
	if i < 0 {
		t.Fatal(missing)
	}
	return list[i]
}

// percentile is the p-th percentile of ds (nearest rank); 0 for none.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p+99)/100 - 1
	return s[max(0, min(i, len(s)-1))]
}

// median is the middle of ds, the upper one of the two middles when ds
// has an even length.
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
