package console

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"slipway/build/schedule"
	"slipway/configs"
	"slipway/deploy"
	"slipway/gitserver"
	"slipway/record"
)

type genBuilds struct{ fakeBuilds }

func (g *genBuilds) List(_ context.Context, repo string, limit int) ([]record.Build, error) {
	var out []record.Build
	bs := pinBuilds()
	slices.Reverse(bs)
	for _, b := range bs {
		if (repo == "" || b.Repo == repo) && (limit <= 0 || len(out) < limit) {
			out = append(out, b)
		}
	}
	return out, nil
}

type genDeploys struct{ fakeDeploys }

func (g *genDeploys) List(_ context.Context, repo, env string, limit int) ([]record.Deployment, error) {
	var out []record.Deployment
	ds := pinDeployments()
	slices.Reverse(ds)
	for _, d := range ds {
		if d.Repo == repo && (env == "" || d.Env == env) && (limit <= 0 || len(out) < limit) {
			out = append(out, d)
		}
	}
	return out, nil
}

func (g *genDeploys) Releases(_ context.Context, repo, env string) (deploy.Listing, error) {
	if env == "prod" {
		return deploy.Listing{Listed: pinAt(10 * 60e9), Note: "target unreachable: ssh: connect to host prod.example port 22: Connection refused"}, nil
	}
	return pinListing(""), nil
}

type genSchedules struct{}

func (genSchedules) List(_ context.Context, repo string) ([]schedule.Status, error) {
	var out []schedule.Status
	for _, s := range pinSchedules(pinBuilds()[3]) {
		if repo == "" || s.Repo == repo {
			out = append(out, s)
		}
	}
	return out, nil
}
func (genSchedules) RunNow(context.Context, string, string, string) ([]record.Build, error) { return nil, nil }

func TestGenOld(t *testing.T) {
	cfg, err := configs.Parse([]byte(pinTOML), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	cmds := Commands(Options{Config: cfg, Builds: &genBuilds{}, Deploys: &genDeploys{}, Schedules: genSchedules{}})
	for _, c := range pinCommands {
		cmd, ok := cmds[c.args[0]]
		if !ok {
			continue
		}
		var out, errb bytes.Buffer
		if code := cmd.Run(t.Context(), gitserver.Caller{User: c.user}, c.args[1:], &out, &errb); code != 0 {
			t.Fatalf("%v: %d %s", c.args, code, errb.String())
		}
		if err := os.WriteFile(filepath.Join("testdata", c.golden), out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
