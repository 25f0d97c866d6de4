package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"slipway/store"
)

// A push is recorded together with the build it enqueues; a worker claims the
// build and records its result.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "slipway-store-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	s, err := store.Open(ctx, filepath.Join(dir, "slipway.db"))
	if err != nil {
		panic(err)
	}
	defer s.Close()

	commit := strings.Repeat("ab", 20)
	out, err := s.RecordPushAndEnqueue(ctx,
		store.Push{Repo: "app", User: "alice", Refs: []store.RefUpdate{
			{Name: "refs/heads/main", Old: strings.Repeat("0", 40), New: commit},
		}},
		[]store.Build{{Repo: "app", Ref: "refs/heads/main", Commit: commit}},
		nil)
	if err != nil {
		panic(err)
	}
	b, ok, err := s.ClaimBuild(ctx, "worker-1")
	if err != nil || !ok {
		panic(fmt.Sprint(ok, err))
	}
	if err := s.FinishBuild(ctx, b.ID, store.StatePassed, "", nil); err != nil {
		panic(err)
	}
	b, err = s.GetBuild(ctx, out.Builds[0].ID)
	if err != nil {
		panic(err)
	}
	fmt.Println(b.Repo, b.Ref, b.Trigger, b.State, "attempt", b.Attempt)
	// Output: app refs/heads/main push passed attempt 1
}
