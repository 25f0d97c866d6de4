package viewstest

import (
	"strings"
	"time"

	"slipway/build/schedule"
	"slipway/deploy"
	"slipway/record"
)

// The fixture: records as a daemon writes them, at fixed times, so that
// outputs can be compared byte for byte.

// Users' keys (authorized_keys lines) in TOML.
const (
	KeyA = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMHVGCVEtr5qxn1dYi/5xpqoXWVgHqsmnZ0Dwt0eBXYT a"
	KeyB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEK5ZPWdR0HSt4JUcmgH4a8lDYp/Jpe8CXn1l80kwVUb b"
	KeyC = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPGmo1n+lvHDkRdF/Mkp4QeSGZWNouHldboMnUwYxzDy c"
	KeyD = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHZS6aUxvsykS8YeiKUsSR0zUmr3uLbF37nIwyFGXZo5 d"
)

// The fixture's times, commits and artifact digest.
var (
	T0     = time.Date(2026, 11, 25, 18, 40, 0, 0, time.UTC)
	C1     = strings.Repeat("1", 40)
	C2     = strings.Repeat("2", 40)
	C3     = strings.Repeat("3", 40)
	Zero   = strings.Repeat("0", 40)
	Digest = "sha256:" + strings.Repeat("ab", 32)
	CET    = time.FixedZone("CET", 3600)
)

// TOML is the fixture's configuration: alice is an admin; of app, bob
// may read and release, carol write, dave only read; secret and
// team/tools are for admins only.
const TOML = `
[[user]]
name = "alice"
keys = ["` + KeyA + `"]
admin = true
[[user]]
name = "bob"
keys = ["` + KeyB + `"]
[[user]]
name = "carol"
keys = ["` + KeyC + `"]
[[user]]
name = "dave"
keys = ["` + KeyD + `"]
[[repo]]
name = "app"
read = ["bob", "dave"]
write = ["carol"]
release = ["bob"]
  [[repo.environment]]
  name = "staging"
  target = "/srv/slipway-test/app/staging"
  auto = "main"
  [[repo.environment]]
  name = "prod"
  target = "/srv/slipway-test/app/prod"
  requires = "staging"
[[repo]]
name = "secret"
[[repo]]
name = "team/tools"
`

// At is T0 + d.
func At(d time.Duration) time.Time { return T0.Add(d) }

// Builds are the fixture's builds, oldest first, as Fill records them.
func Builds() []record.Build {
	return []record.Build{
		{ID: 1, Repo: "app", Ref: "refs/heads/main", Commit: C1, PushID: 1, Trigger: record.TriggerPush, Pipeline: "build",
			State: record.StatePassed, CreatedAt: T0, StartedAt: At(time.Second), FinishedAt: At(61500 * time.Millisecond),
			Attempt: 1, Steps: []record.StepResult{{Name: "go vet ./...", ExitCode: 0, Duration: 1200 * time.Millisecond},
				{Name: "go test ./...", ExitCode: 0, Duration: 58300 * time.Millisecond}}, ArtifactsDigest: Digest},
		{ID: 2, Repo: "app", Ref: "refs/heads/feature", Commit: C2, PushID: 2, Trigger: record.TriggerPush, Pipeline: "build",
			State: record.StateFailed, Reason: "step 2 (go test ./...) exited 1", CreatedAt: At(2 * time.Minute),
			StartedAt: At(2*time.Minute + 500*time.Millisecond), FinishedAt: At(2*time.Minute + 3500*time.Millisecond),
			Attempt: 1, Steps: []record.StepResult{{Name: "go vet ./...", ExitCode: 0, Duration: time.Second},
				{Name: "go test ./...", ExitCode: 1, Duration: 2 * time.Second}}},
		{ID: 3, Repo: "app", Ref: "refs/heads/main", Commit: C1, Trigger: record.TriggerRetry, RetryOf: 1, Pipeline: "build",
			State: record.StateQueued, CreatedAt: At(3 * time.Minute)},
		{ID: 4, Repo: "team/tools", Ref: "refs/heads/main", Commit: C3, Trigger: record.TriggerSchedule, Schedule: "nightly",
			Pipeline: "nightly", State: record.StateSkipped, Reason: "no .slipway.toml in 3333333",
			CreatedAt: At(4 * time.Minute), FinishedAt: At(4 * time.Minute)},
	}
}

// Deployments are the fixture's deployments, oldest first.
func Deployments() []record.Deployment {
	return []record.Deployment{
		{ID: 1, Repo: "app", Env: "staging", BuildID: 1, Commit: C1, Trigger: record.DeployAuto, State: record.DeploySucceeded,
			ReleaseID: "20261125-184102-1", Digest: Digest, CreatedAt: At(62 * time.Second), StartedAt: At(62 * time.Second),
			FinishedAt: At(63 * time.Second)},
		{ID: 2, Repo: "app", Env: "prod", BuildID: 1, Commit: C1, Trigger: record.DeployRelease, User: "bob", PushID: 3,
			State: record.DeployQueued, Digest: Digest, CreatedAt: At(5 * time.Minute)},
	}
}

// Pushes are the fixture's pushes, oldest first.
func Pushes() []record.Push {
	return []record.Push{
		{ID: 1, Repo: "app", User: "alice", KeyFingerprint: "SHA256:alice", Time: T0,
			Refs: []record.RefUpdate{{Name: "refs/heads/main", Old: Zero, New: C1}}},
		{ID: 2, Repo: "app", User: "alice", KeyFingerprint: "SHA256:alice", Time: At(2 * time.Minute),
			Refs: []record.RefUpdate{{Name: "refs/heads/feature", Old: Zero, New: C2}}},
		{ID: 3, Repo: "app", User: "bob", KeyFingerprint: "SHA256:bob", Time: At(5 * time.Minute), Options: []string{"nowait"},
			Refs: []record.RefUpdate{{Name: "refs/release/prod", Old: Zero, New: C1}}},
		{ID: 4, Repo: "team/tools", User: "alice", KeyFingerprint: "SHA256:alice", Time: At(6 * time.Minute),
			Refs: []record.RefUpdate{{Name: "refs/heads/main", Old: Zero, New: C3}, {Name: "refs/tags/v1", Old: C3, New: Zero}}},
	}
}

// Listing is what the fixture's staging target holds; note is the
// listing's note.
func Listing(note string) deploy.Listing {
	return deploy.Listing{
		Releases: []deploy.Release{
			{ID: "20261125-184102-1", Live: true, Complete: true, Commit: C1, Time: At(63 * time.Second), Digest: Digest,
				Deployment: 1, Build: 1},
			{ID: "20261125-183000-9", Complete: false},
		},
		Listed: At(10 * time.Minute),
		Note:   note,
	}
}

// Schedules are the fixture's schedules, as the scheduler lists them;
// lastRun is the last run of team/tools' nightly (build 4).
func Schedules(lastRun record.Build) []schedule.Status {
	return []schedule.Status{
		{Repo: "app", Name: "never", Spec: "0 0 30 2 *", Zone: "UTC", Branches: []string{"main"}, Pipeline: "nightly"},
		{Repo: "app", Name: "weekly", Spec: "CRON_TZ=CET @weekly", Zone: "CET", Branches: []string{"main", "release/*"},
			Pipeline: "nightly", Next: time.Date(2026, 11, 29, 0, 0, 0, 0, CET)},
		{Repo: "team/tools", Name: "nightly", Spec: "CRON_TZ=UTC 0 2 * * *", Zone: "UTC", Branches: []string{"main"},
			Pipeline: "nightly", Next: time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC), LastRun: &lastRun},
	}
}
