package store

import (
	"errors"
	"reflect"
	"testing"
)

// FuzzRecordPush feeds hook input that reached the daemon (ref names, object
// ids, push options) to RecordPush: it must never panic, must refuse with
// ErrInvalid or record, and what it records must read back unchanged.
func FuzzRecordPush(f *testing.F) {
	f.Add("app", "refs/heads/main", zero, oid(1), "wait")
	f.Add("team/app", "refs/tags/v1.0", oid(1), zero, "")
	f.Add("a", "refs/heads/\x00", oid(1), oid(2), "ci.skip")
	f.Add("a", "refs/heads/é", oid(1), oid(2), "\xff\xfe")
	f.Add("", "refs/heads/main", oid(1), oid(2), "")
	f.Add("a", "HEAD", "0", "1", "x")
	s := openTest(f)
	f.Fuzz(func(t *testing.T, repo, ref, old, new, opt string) {
		in := Push{Repo: repo, User: "fuzz", Refs: []RefUpdate{{Name: ref, Old: old, New: new}}, Options: []string{opt}}
		id, err := s.RecordPush(t.Context(), in)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("RecordPush(%+v): %v, want ErrInvalid or success", in, err)
			}
			return
		}
		got, err := s.GetPush(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Repo != repo || !reflect.DeepEqual(got.Refs, in.Refs) {
			t.Fatalf("recorded %+v, read back %+v", in, got)
		}
		// JSON turns invalid UTF-8 into U+FFFD; a push option is free text
		// from the client, so that is acceptable, but its count must hold.
		if len(got.Options) != 1 {
			t.Fatalf("options %q read back as %q", in.Options, got.Options)
		}
	})
}
