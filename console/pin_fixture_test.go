package console

import (
	"strings"
	"time"

	"slipway/build/schedule"
	"slipway/deploy"
	"slipway/record"
)

// The fixture of the pinned outputs (TestJSONOutputIsPinned): records as
// a daemon writes them, at fixed times.

var (
	pinT0     = time.Date(2026, 11, 25, 18, 40, 0, 0, time.UTC)
	pinC1     = strings.Repeat("1", 40)
	pinC2     = strings.Repeat("2", 40)
	pinC3     = strings.Repeat("3", 40)
	pinZero   = strings.Repeat("0", 40)
	pinDigest = "sha256:" + strings.Repeat("ab", 32)
	pinCET    = time.FixedZone("CET", 3600)
)

const pinTOML = `
[[user]]
name = "alice"
keys = ["` + keyA + `"]
admin = true
[[user]]
name = "bob"
keys = ["` + keyB + `"]
[[repo]]
name = "app"
read = ["bob"]
release = ["bob"]
[[repo]]
name = "secret"
[[repo]]
name = "team/tools"
`

func pinAt(d time.Duration) time.Time { return pinT0.Add(d) }

func pinBuilds() []record.Build {
	return []record.Build{
		{ID: 1, Repo: "app", Ref: "refs/heads/main", Commit: pinC1, PushID: 1, Trigger: record.TriggerPush, Pipeline: "build",
			State: record.StatePassed, CreatedAt: pinT0, StartedAt: pinAt(time.Second), FinishedAt: pinAt(61500 * time.Millisecond),
			Attempt: 1, Steps: []record.StepResult{{Name: "go vet ./...", ExitCode: 0, Duration: 1200 * time.Millisecond},
				{Name: "go test ./...", ExitCode: 0, Duration: 58300 * time.Millisecond}}, ArtifactsDigest: pinDigest},
		{ID: 2, Repo: "app", Ref: "refs/heads/feature", Commit: pinC2, PushID: 2, Trigger: record.TriggerPush, Pipeline: "build",
			State: record.StateFailed, Reason: "step 2 (go test ./...) exited 1", CreatedAt: pinAt(2 * time.Minute),
			StartedAt: pinAt(2*time.Minute + 500*time.Millisecond), FinishedAt: pinAt(2*time.Minute + 3500*time.Millisecond),
			Attempt: 1, Steps: []record.StepResult{{Name: "go vet ./...", ExitCode: 0, Duration: time.Second},
				{Name: "go test ./...", ExitCode: 1, Duration: 2 * time.Second}}},
		{ID: 3, Repo: "app", Ref: "refs/heads/main", Commit: pinC1, Trigger: record.TriggerRetry, RetryOf: 1, Pipeline: "build",
			State: record.StateQueued, CreatedAt: pinAt(3 * time.Minute)},
		{ID: 4, Repo: "team/tools", Ref: "refs/heads/main", Commit: pinC3, Trigger: record.TriggerSchedule, Schedule: "nightly",
			Pipeline: "nightly", State: record.StateSkipped, Reason: "no .slipway.toml in 3333333",
			CreatedAt: pinAt(4 * time.Minute), FinishedAt: pinAt(4 * time.Minute)},
	}
}

func pinDeployments() []record.Deployment {
	return []record.Deployment{
		{ID: 1, Repo: "app", Env: "staging", BuildID: 1, Commit: pinC1, Trigger: record.DeployAuto, State: record.DeploySucceeded,
			ReleaseID: "20261125-184102-1", Digest: pinDigest, CreatedAt: pinAt(62 * time.Second), StartedAt: pinAt(62 * time.Second),
			FinishedAt: pinAt(63 * time.Second)},
		{ID: 2, Repo: "app", Env: "prod", BuildID: 1, Commit: pinC1, Trigger: record.DeployRelease, User: "bob", PushID: 3,
			State: record.DeployQueued, Digest: pinDigest, CreatedAt: pinAt(5 * time.Minute)},
	}
}

func pinPushes() []record.Push {
	return []record.Push{
		{ID: 1, Repo: "app", User: "alice", KeyFingerprint: "SHA256:alice", Time: pinT0,
			Refs: []record.RefUpdate{{Name: "refs/heads/main", Old: pinZero, New: pinC1}}},
		{ID: 2, Repo: "app", User: "alice", KeyFingerprint: "SHA256:alice", Time: pinAt(2 * time.Minute),
			Refs: []record.RefUpdate{{Name: "refs/heads/feature", Old: pinZero, New: pinC2}}},
		{ID: 3, Repo: "app", User: "bob", KeyFingerprint: "SHA256:bob", Time: pinAt(5 * time.Minute), Options: []string{"nowait"},
			Refs: []record.RefUpdate{{Name: "refs/release/prod", Old: pinZero, New: pinC1}}},
		{ID: 4, Repo: "team/tools", User: "alice", KeyFingerprint: "SHA256:alice", Time: pinAt(6 * time.Minute),
			Refs: []record.RefUpdate{{Name: "refs/heads/main", Old: pinZero, New: pinC3}, {Name: "refs/tags/v1", Old: pinC3, New: pinZero}}},
	}
}

func pinListing(note string) deploy.Listing {
	return deploy.Listing{
		Releases: []deploy.Release{
			{ID: "20261125-184102-1", Live: true, Complete: true, Commit: pinC1, Time: pinAt(63 * time.Second), Digest: pinDigest,
				Deployment: 1, Build: 1},
			{ID: "20261125-183000-9", Complete: false},
		},
		Listed: pinAt(10 * time.Minute),
		Note:   note,
	}
}

// pinCommands are the commands whose output is pinned, by golden file.
var pinCommands = []struct {
	golden, user string
	args         []string
}{
	{"builds-alice.json", "alice", []string{"builds", "--json"}},
	{"builds-alice-limit2.json", "alice", []string{"builds", "--limit", "2", "--json"}},
	{"builds-app.json", "alice", []string{"builds", "app", "--json"}},
	{"builds-bob.json", "bob", []string{"builds", "--json"}},
	{"builds-alice.txt", "alice", []string{"builds"}},
	{"deploys-app.json", "alice", []string{"deploys", "app", "--json"}},
	{"deploys-app-staging.json", "bob", []string{"deploys", "app", "staging", "--json"}},
	{"deploys-app.txt", "alice", []string{"deploys", "app"}},
	{"releases-app-staging.json", "alice", []string{"releases", "app", "staging", "--json"}},
	{"releases-app-staging.txt", "alice", []string{"releases", "app", "staging"}},
	{"releases-app-prod.json", "alice", []string{"releases", "app", "prod", "--json"}},
	{"releases-app-prod.txt", "alice", []string{"releases", "app", "prod"}},
	{"schedules-alice.json", "alice", []string{"schedules", "--json"}},
	{"schedules-bob.json", "bob", []string{"schedules", "--json"}},
	{"schedules-alice.txt", "alice", []string{"schedules"}},
	{"repos-alice.json", "alice", []string{"repos", "--json"}},
	{"repos-bob.json", "bob", []string{"repos", "--json"}},
	{"repos-alice.txt", "alice", []string{"repos"}},
}

func pinSchedules(lastRun record.Build) []schedule.Status {
	return []schedule.Status{
		{Repo: "app", Name: "never", Spec: "0 0 30 2 *", Zone: "UTC", Branches: []string{"main"}, Pipeline: "nightly"},
		{Repo: "app", Name: "weekly", Spec: "CRON_TZ=CET @weekly", Zone: "CET", Branches: []string{"main", "release/*"},
			Pipeline: "nightly", Next: time.Date(2026, 11, 29, 0, 0, 0, 0, pinCET)},
		{Repo: "team/tools", Name: "nightly", Spec: "CRON_TZ=UTC 0 2 * * *", Zone: "UTC", Branches: []string{"main"},
			Pipeline: "nightly", Next: time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC), LastRun: &lastRun},
	}
}
