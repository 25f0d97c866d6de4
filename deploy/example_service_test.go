package deploy_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"slipway/build/logs"
	"slipway/configs"
	"slipway/deploy"
	"slipway/record"
	"slipway/store"
)

// How the daemon wires the deploy service: the release gate in
// pre-receive, the release push recorded with its deployment in
// post-receive, then the pusher waits for the outcome. (A passed build of
// main would reach staging the same way, through AutoDeployments and
// store.FinishBuildAndDeploy.)
func ExampleService() {
	ctx := context.Background()
	data, _ := os.MkdirTemp("", "slipway-example-")
	defer os.RemoveAll(data)
	cfg, err := configs.Parse([]byte(`
data_dir = "`+data+`"
[[user]]
name = "bob"
keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDOFkl3HdutN+xEE2UqNhDtudmNFIdhCFvMTPjCZ2KyI bob@example"]
[[repo]]
name = "app"
release = ["bob"]
  [[repo.environment]]
  name = "prod"
  target = "deploys/{repo}/prod"   # a local folder inside data_dir
`), "example.toml")
	if err != nil {
		fmt.Println(err)
		return
	}
	st, err := store.Open(ctx, filepath.Join(data, "slipway.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Close()
	svc, err := deploy.NewService(deploy.ServiceOptions{
		Revisions: commitsOnly{},
		Config:    cfg, Store: st, Logs: logs.NewStore(filepath.Join(data, "logs")),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := svc.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_ = svc.Shutdown(sctx)
	}()

	// A build of commit c passed and kept its artifacts (the build
	// service's work).
	c := "3f2a9c1e5b7d8f00112233445566778899aabbcc"
	enq, _ := st.EnqueueBuilds(ctx, []record.Build{{Repo: "app", Ref: "refs/heads/main", Commit: c, Trigger: record.TriggerManual}})
	b, _, _ := st.ClaimBuild(ctx, "worker-1")
	_ = st.FinishBuild(ctx, enq.Builds[0].ID, record.StatePassed, "", nil)
	_ = os.MkdirAll(filepath.Join(data, "artifacts", fmt.Sprint(b.ID)), 0o755)
	_ = os.WriteFile(filepath.Join(data, "artifacts", fmt.Sprint(b.ID), "app"), []byte("v1\n"), 0o644)

	// git push slipway c:refs/release/prod, by bob.
	if err := svc.CheckRelease(ctx, "app", "prod", "0123456789012345678901234567890123456789", "bob"); err != nil {
		fmt.Println("refused:", err)
	}
	if err := svc.CheckRelease(ctx, "app", "prod", c, "bob"); err != nil {
		fmt.Println("refused:", err)
		return
	}
	push := record.Push{Repo: "app", User: "bob", Refs: []record.RefUpdate{
		{Name: "refs/release/prod", Old: "0000000000000000000000000000000000000000", New: c},
	}}
	ds, err := svc.ReleaseDeployments(ctx, push)
	if err != nil {
		fmt.Println(err)
		return
	}
	rec, err := st.RecordPushAndEnqueue(ctx, push, nil, ds)
	if err != nil {
		fmt.Println(err)
		return
	}
	svc.Wake()
	d, err := svc.Wait(ctx, rec.Deployments[0].ID)
	if err != nil {
		fmt.Println(err)
		return
	}
	served, _ := os.ReadFile(filepath.Join(data, "deploys", "app", "prod", "current", "app"))
	fmt.Printf("deployment #%d (%s by %s): %s; prod serves %s", d.ID, d.Trigger, d.User, d.State, served)
	// Output:
	// refused: revision 0123456 has no passed build
	// deployment #1 (release by bob): succeeded; prod serves v1
}

// commitsOnly is a repository in which every pushed id names a commit.
type commitsOnly struct{}

func (commitsOnly) Peel(_ context.Context, _, id string) (string, error) { return id, nil }
