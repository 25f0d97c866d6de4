package store

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRecordAndGetPush(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	when := time.Date(2025, 3, 30, 1, 30, 0, 123456789, time.FixedZone("CET", 3600))
	in := Push{
		Repo: "team/app", User: "alice", KeyFingerprint: "SHA256:abc",
		Refs: []RefUpdate{
			{Name: "refs/heads/main", Old: oid(1), New: oid(2)},
			{Name: "refs/tags/v1", Old: zero, New: oid(3)},
			{Name: "refs/heads/old", Old: oid(4), New: zero},
		},
		Options: []string{"wait", "ci.skip=a b=c", ""},
		Time:    when,
	}
	id, err := s.RecordPush(ctx, in)
	if err != nil {
		t.Fatalf("RecordPush: %v", err)
	}
	got, err := s.GetPush(ctx, id)
	if err != nil {
		t.Fatalf("GetPush: %v", err)
	}
	in.ID = id
	if !got.Time.Equal(when) || got.Time.Location() != time.UTC {
		t.Errorf("time = %v, want %v in UTC", got.Time, when)
	}
	got.Time, in.Time = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, in) {
		t.Errorf("GetPush =\n %+v\nwant\n %+v", got, in)
	}
}

func TestRecordPushDefaultsTime(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	before := time.Now()
	id, err := s.RecordPush(t.Context(), Push{Repo: "app", User: "u"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.GetPush(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if p.Time.Before(before.Add(-time.Second)) || p.Time.After(time.Now().Add(time.Second)) {
		t.Errorf("defaulted push time %v is not now", p.Time)
	}
	if p.Refs != nil || p.Options != nil {
		t.Errorf("empty push came back with refs %v options %v", p.Refs, p.Options)
	}
}

func TestGetPushNotFound(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	if _, err := s.GetPush(t.Context(), 42); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetPush of a missing id: err = %v, want ErrNotFound", err)
	}
}

func TestRecordPushRefusesBadInputAndRecordsNothing(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	good := RefUpdate{Name: "refs/heads/main", Old: oid(1), New: oid(2)}
	cases := map[string]Push{
		"no repo":        {User: "u", Refs: []RefUpdate{good}},
		"short id":       {Repo: "a", Refs: []RefUpdate{good, {Name: "refs/heads/x", Old: zero, New: "abc"}}},
		"upper hex":      {Repo: "a", Refs: []RefUpdate{{Name: "refs/heads/x", Old: zero, New: strings.ToUpper(oid(10)) + ""}}},
		"mixed hashes":   {Repo: "a", Refs: []RefUpdate{{Name: "refs/heads/x", Old: zero, New: strings.Repeat("a", 64)}}},
		"both zero":      {Repo: "a", Refs: []RefUpdate{{Name: "refs/heads/x", Old: zero, New: zero}}},
		"not a ref":      {Repo: "a", Refs: []RefUpdate{{Name: "HEAD", Old: zero, New: oid(1)}}},
		"control char":   {Repo: "a", Refs: []RefUpdate{{Name: "refs/heads/a\nb", Old: zero, New: oid(1)}}},
		"bare refs/ dir": {Repo: "a", Refs: []RefUpdate{{Name: "refs/", Old: zero, New: oid(1)}}},
	}
	for name, p := range cases {
		t.Run(name, func(t *testing.T) {
			if name == "upper hex" {
				p.Refs[0].New = "ABCDEF" + oid(1)[6:]
			}
			if _, err := s.RecordPush(ctx, p); !errors.Is(err, ErrInvalid) {
				t.Fatalf("RecordPush(%s): err = %v, want ErrInvalid", name, err)
			}
		})
	}
	last, err := s.LastPushes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(last) != 0 {
		t.Errorf("refused pushes left records: %v", last)
	}
}

func TestSHA256ObjectIDsAccepted(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	z := strings.Repeat("0", 64)
	if _, err := s.RecordPush(t.Context(), Push{Repo: "a", Refs: []RefUpdate{{Name: "refs/heads/m", Old: z, New: strings.Repeat("ab", 32)}}}); err != nil {
		t.Fatalf("SHA-256 push refused: %v", err)
	}
}

// TestMirrorPushIsOneTransaction records a 1,500-ref mirror push and checks
// that it is all there; the elapsed time is logged for the report. That it is
// one transaction is shown by a reader polling beside it, which must see either
// none of the refs or all of them, never a part.
func TestMirrorPushIsOneTransaction(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	refs := make([]RefUpdate, 1500)
	for i := range refs {
		refs[i] = RefUpdate{Name: fmt.Sprintf("refs/heads/branch-%04d", i), Old: zero, New: oid(i)}
	}

	stop := make(chan struct{})
	seen := make(chan map[int]bool, 1)
	go func() {
		counts := map[int]bool{}
		defer func() { seen <- counts }()
		for {
			var n int
			if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM push_refs`).Scan(&n); err != nil {
				t.Error(err)
				return
			}
			counts[n] = true
			select {
			case <-stop:
				return
			default:
			}
		}
	}()

	start := time.Now()
	id, err := s.RecordPush(ctx, Push{Repo: "mirror", User: "alice", Refs: refs})
	elapsed := time.Since(start)
	close(stop)
	counts := <-seen
	if err != nil {
		t.Fatalf("RecordPush of 1,500 refs: %v", err)
	}
	t.Logf("RecordPush of 1,500 refs took %v", elapsed)
	for n := range counts {
		if n != 0 && n != len(refs) {
			t.Errorf("a reader saw %d of %d refs: the push was not one transaction", n, len(refs))
		}
	}
	p, err := s.GetPush(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.Refs, refs) {
		t.Fatalf("read back %d refs, not the 1,500 recorded in order", len(p.Refs))
	}

	// A bad ref at the end refuses the whole push: nothing of the first 1,500 stays.
	bad := append(append([]RefUpdate{}, refs...), RefUpdate{Name: "refs/heads/zz", Old: zero, New: "nothex"})
	if _, err := s.RecordPush(ctx, Push{Repo: "mirror2", Refs: bad}); err == nil {
		t.Fatal("push with a bad last ref was recorded")
	}
	last, err := s.LastPushes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := last["mirror2"]; ok {
		t.Error("the refused mirror push left a push record")
	}
}

func TestLastPushes(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	var want = map[string]int64{}
	for i, repo := range []string{"a", "b", "a", "c", "b", "a"} {
		id, err := s.RecordPush(ctx, Push{Repo: repo, User: fmt.Sprint("u", i),
			Refs: []RefUpdate{{Name: "refs/heads/main", Old: oid(i), New: oid(i + 1)}}})
		if err != nil {
			t.Fatal(err)
		}
		want[repo] = id
	}
	got, err := s.LastPushes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("LastPushes has %d repos, want %d: %v", len(got), len(want), got)
	}
	for repo, id := range want {
		if got[repo].ID != id || got[repo].Repo != repo {
			t.Errorf("last push of %q = %+v, want id %d", repo, got[repo], id)
		}
	}
	if got["a"].User != "u5" {
		t.Errorf("last push of a by %q, want u5", got["a"].User)
	}
	if refs := got["a"].Refs; len(refs) != 1 || refs[0].New != oid(6) {
		t.Errorf("last push of a has refs %+v, want the one of its newest push", refs)
	}
}

func TestConcurrentPushesAllRecorded(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	const writers, each = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				_, err := s.RecordPush(ctx, Push{Repo: fmt.Sprint("r", w), User: "u",
					Refs: []RefUpdate{{Name: "refs/heads/main", Old: oid(i), New: oid(i + 1)}}})
				if err != nil {
					errs <- err
				}
				// Readers run beside the writer.
				if _, err := s.LastPushes(ctx); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM pushes`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != writers*each {
		t.Errorf("%d pushes recorded, want %d", n, writers*each)
	}
}

func BenchmarkRecordMirrorPush(b *testing.B) {
	s := openTest(b)
	refs := make([]RefUpdate, 1500)
	for i := range refs {
		refs[i] = RefUpdate{Name: fmt.Sprintf("refs/heads/branch-%04d", i), Old: zero, New: oid(i)}
	}
	for b.Loop() {
		if _, err := s.RecordPush(b.Context(), Push{Repo: "mirror", Refs: refs}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRecordSmallPush(b *testing.B) {
	s := openTest(b)
	for b.Loop() {
		if _, err := s.RecordPush(b.Context(), Push{Repo: "app", Refs: []RefUpdate{{Name: "refs/heads/main", Old: oid(1), New: oid(2)}}}); err != nil {
			b.Fatal(err)
		}
	}
}
