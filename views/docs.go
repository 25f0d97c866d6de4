package views

import (
	"strings"
	"time"

	"slipway/build/schedule"
	"slipway/configs"
	"slipway/deploy"
	"slipway/record"
)

// The documents. Their JSON names are the SSH `--json` output's, pinned by
// console's TestJSONOutputIsPinned: a field may be added (omitempty), none
// renamed or removed.

// Build is one build.
type Build struct {
	ID         int64          `json:"id"`
	Repo       string         `json:"repo"`
	Ref        string         `json:"ref"`
	Commit     string         `json:"commit"`
	State      record.State   `json:"state"`
	Reason     string         `json:"reason,omitempty"`
	Trigger    record.Trigger `json:"trigger"`
	Schedule   string         `json:"schedule,omitempty"`
	Pipeline   string         `json:"pipeline"`
	Attempt    int            `json:"attempt"`
	Created    time.Time      `json:"created"`
	Started    *time.Time     `json:"started,omitempty"`
	Finished   *time.Time     `json:"finished,omitempty"`
	Steps      []Step         `json:"steps,omitempty"`
	PushID     int64          `json:"push_id,omitempty"`
	RetryOf    int64          `json:"retry_of,omitempty"`
	DurationMS int64          `json:"duration_ms,omitempty"`
	// Digest identifies the artifact set the build kept ("sha256:<64 hex>").
	Digest string `json:"digest,omitempty"`
	// RanOn says where the build ran: "kubernetes: pod P on node N
	// (namespace NS)", or "this host (worker-1)".
	RanOn string `json:"ran_on,omitempty"`
}

// Step is one step's result, in the snake_case of every other document.
type Step struct {
	Name       string `json:"name"`
	ExitCode   int    `json:"exit_code"`
	DurationMS int64  `json:"duration_ms"`
}

// BuildOf is the document of b.
func BuildOf(b record.Build) Build {
	j := Build{ID: b.ID, Repo: b.Repo, Ref: b.Ref, Commit: b.Commit, State: b.State, Reason: b.Reason,
		Trigger: b.Trigger, Schedule: b.Schedule, Pipeline: b.Pipeline, Attempt: b.Attempt, Created: b.CreatedAt,
		PushID: b.PushID, RetryOf: b.RetryOf, Started: timePtr(b.StartedAt), Finished: timePtr(b.FinishedAt),
		Digest: b.ArtifactsDigest, RanOn: ranOn(b.Worker)}
	if !b.StartedAt.IsZero() && !b.FinishedAt.IsZero() {
		j.DurationMS = b.FinishedAt.Sub(b.StartedAt).Milliseconds()
	}
	for _, st := range b.Steps {
		j.Steps = append(j.Steps, Step{Name: st.Name, ExitCode: st.ExitCode, DurationMS: st.Duration.Milliseconds()})
	}
	return j
}

func buildsOf(bs []record.Build) []Build { return docsOf(bs, BuildOf) }

// docsOf is the documents of records, in their order: never nil, so that
// JSON shows an empty list as [].
func docsOf[R, D any](records []R, of func(R) D) []D {
	out := make([]D, 0, len(records))
	for _, r := range records {
		out = append(out, of(r))
	}
	return out
}

// Deployment is one deployment.
type Deployment struct {
	ID       int64                `json:"id"`
	Repo     string               `json:"repo"`
	Env      string               `json:"env"`
	BuildID  int64                `json:"build_id"`
	Commit   string               `json:"commit"`
	Trigger  record.DeployTrigger `json:"trigger"`
	User     string               `json:"user,omitempty"`
	PushID   int64                `json:"push_id,omitempty"`
	State    record.DeployState   `json:"state"`
	Reason   string               `json:"reason,omitempty"`
	Release  string               `json:"release,omitempty"`
	Digest   string               `json:"digest,omitempty"` // the artifact set shipped
	Created  time.Time            `json:"created"`
	Started  *time.Time           `json:"started,omitempty"`
	Finished *time.Time           `json:"finished,omitempty"`
	// Hosts, for an environment of many hosts, is each host's part.
	Hosts []DeploymentHost `json:"hosts,omitempty"`
}

// DeploymentHost is one host's part in a deployment.
type DeploymentHost struct {
	Host     string           `json:"host"`
	Release  string           `json:"release,omitempty"`
	Previous string           `json:"previous,omitempty"`
	State    record.HostState `json:"state"`
	Detail   string           `json:"detail,omitempty"`
}

func deploymentHostsOf(hs []record.DeploymentHost) []DeploymentHost {
	if len(hs) < 2 {
		return nil
	}
	out := make([]DeploymentHost, len(hs))
	for i, h := range hs {
		out[i] = DeploymentHost{Host: h.Host, Release: h.Release, Previous: h.Previous, State: h.State, Detail: h.Detail}
	}
	return out
}

// DeploymentOf is the document of d.
func DeploymentOf(d record.Deployment) Deployment {
	return Deployment{ID: d.ID, Repo: d.Repo, Env: d.Env, BuildID: d.BuildID, Commit: d.Commit,
		Trigger: d.Trigger, User: d.User, PushID: d.PushID, State: d.State, Reason: d.Reason, Release: d.ReleaseID,
		Digest: d.Digest, Created: d.CreatedAt, Started: timePtr(d.StartedAt), Finished: timePtr(d.FinishedAt)}
}

func deploymentsOf(ds []record.Deployment) []Deployment { return docsOf(ds, DeploymentOf) }

// Release is one release on an environment's target.
type Release struct {
	ID         string     `json:"id"`
	Live       bool       `json:"live"`
	Complete   bool       `json:"complete"`
	Commit     string     `json:"commit,omitempty"`
	Completed  *time.Time `json:"completed,omitempty"`
	Digest     string     `json:"digest,omitempty"`     // the artifact set it holds
	Deployment int64      `json:"deployment,omitempty"` // the deployment that shipped it, from Slipway's records
	Build      int64      `json:"build,omitempty"`
	// LiveOn, for an environment of many hosts, names the hosts whose
	// current is this release.
	LiveOn []string `json:"live_on,omitempty"`
	// Listed is when the target was listed (the answer is cached for a
	// few seconds); Note says why the listing may be out of date.
	Listed *time.Time `json:"listed,omitempty"`
	Note   string     `json:"note,omitempty"`
}

// ReleaseHost is what one host of an environment of many has live, and
// how the last deployment that reached it went there.
type ReleaseHost struct {
	Host           string           `json:"host"`
	Live           string           `json:"live,omitempty"`
	Error          string           `json:"error,omitempty"` // why it could not be listed
	LastDeployment int64            `json:"last_deployment,omitempty"`
	LastState      record.HostState `json:"last_state,omitempty"`
	LastDetail     string           `json:"last_detail,omitempty"`
}

// Releases is an environment's target as last listed.
type Releases struct {
	Releases []Release `json:"releases"`
	// Hosts, for an environment of many hosts: each one's live release;
	// Releases are those of the first host that answered.
	Hosts []ReleaseHost `json:"hosts,omitempty"`
	// Listed is when the target was listed; Note says why the listing
	// may be out of date (a deployment is under way, the target could
	// not be reached), and is there even when no release is.
	Listed *time.Time `json:"listed,omitempty"`
	Note   string     `json:"note,omitempty"`
}

func releasesOf(l deploy.Listing) Releases {
	out := Releases{Releases: make([]Release, 0, len(l.Releases)), Listed: timePtr(l.Listed), Note: l.Note}
	for _, h := range l.Hosts {
		rh := ReleaseHost{Host: h.Host, Live: h.Live, Error: h.Err}
		if h.Last != nil {
			rh.LastDeployment, rh.LastState, rh.LastDetail = h.Last.DeploymentID, h.Last.State, h.Last.Detail
		}
		out.Hosts = append(out.Hosts, rh)
	}
	liveOn := map[string][]string{}
	for _, h := range l.Hosts {
		if h.Live != "" {
			liveOn[h.Live] = append(liveOn[h.Live], h.Host)
		}
	}
	for _, r := range l.Releases {
		out.Releases = append(out.Releases, Release{ID: r.ID, Live: r.Live, Complete: r.Complete, Commit: r.Commit,
			Completed: timePtr(r.Time), Digest: r.Digest, Deployment: r.Deployment, Build: r.Build,
			LiveOn: liveOn[r.ID], Listed: timePtr(l.Listed), Note: l.Note})
	}
	return out
}

// Schedule is one schedule with its next fire time and last run.
type Schedule struct {
	Repo     string     `json:"repo"`
	Name     string     `json:"name"`
	Spec     string     `json:"spec"`
	Zone     string     `json:"zone"`
	Branches []string   `json:"branches"`
	Pipeline string     `json:"pipeline"`
	Next     *time.Time `json:"next,omitempty"`
	LastRun  *Build     `json:"last_run,omitempty"`
}

func scheduleOf(s schedule.Status) Schedule {
	j := Schedule{Repo: s.Repo, Name: s.Name, Spec: s.Spec, Zone: s.Zone, Branches: s.Branches,
		Pipeline: s.Pipeline, Next: timePtr(s.Next)}
	if s.LastRun != nil {
		b := BuildOf(*s.LastRun)
		j.LastRun = &b
	}
	return j
}

// Repo is a repository the caller may read.
type Repo struct {
	Name   string   `json:"name"`
	Access []string `json:"access"`
	// Configured is false for a repository the configuration does not
	// name (created by an admin's push, or removed from the file):
	// only admins see it.
	Configured bool      `json:"configured"`
	LastPush   *LastPush `json:"last_push,omitempty"`
}

// LastPush is the newest push of a repository, in a listing of
// repositories.
type LastPush struct {
	ID   int64              `json:"id"`
	Time time.Time          `json:"time"`
	User string             `json:"user"`
	Refs []record.RefUpdate `json:"refs"`
}

// Push is one recorded push: who pushed, with which key, what moved, and
// (for one push asked for by id) the builds and deployments it caused.
type Push struct {
	ID   int64     `json:"id"`
	Repo string    `json:"repo"`
	Time time.Time `json:"time"`
	// User is who pushed; empty for refs that moved on the server's disk
	// without Slipway, recorded as found at start (Found).
	User           string             `json:"user"`
	Found          bool               `json:"found,omitempty"`
	KeyFingerprint string             `json:"key_fingerprint,omitempty"`
	Options        []string           `json:"options,omitempty"`
	Refs           []record.RefUpdate `json:"refs"`
	Builds         []Build            `json:"builds,omitempty"`
	Deployments    []Deployment       `json:"deployments,omitempty"`
}

// PushOf is the document of p, without the work it caused.
func PushOf(p record.Push) Push {
	refs := p.Refs
	if refs == nil {
		refs = []record.RefUpdate{}
	}
	return Push{ID: p.ID, Repo: p.Repo, Time: p.Time.UTC(), User: p.User, Found: p.Found(),
		KeyFingerprint: p.KeyFingerprint, Options: p.Options, Refs: refs}
}

// AccessWords names the rights in a, in the order people read them.
func AccessWords(a configs.Access) []string {
	var w []string
	for _, x := range []struct {
		bit  configs.Access
		word string
	}{{configs.Read, "read"}, {configs.Write, "write"}, {configs.Release, "release"}, {configs.Create, "create"}} {
		if a.Has(x.bit) {
			w = append(w, x.word)
		}
	}
	return w
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// ranOn says where a build ran from its worker field: the executor's
// placement, or the local worker's name.
func ranOn(worker string) string {
	if worker == "" || strings.Contains(worker, ":") {
		return worker
	}
	return "this host (" + worker + ")"
}
