package webhook

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"slipway/internal/gitrev"
	"slipway/record"
)

// PayloadVersion is the version of the JSON payload. Fields may be added
// within a version; none is removed or changes its meaning.
const PayloadVersion = 1

// Payload is the JSON body of a delivery in format json.
type Payload struct {
	Version    int               `json:"version"`
	Event      record.EventKind  `json:"event"`
	Delivery   string            `json:"delivery"` // the X-Slipway-Delivery id
	EventID    int64             `json:"event_id"`
	Time       time.Time         `json:"time"`
	Repo       string            `json:"repo"`
	Ref        string            `json:"ref,omitempty"`
	Branch     string            `json:"branch,omitempty"`
	Env        string            `json:"env,omitempty"`
	Commit     string            `json:"commit,omitempty"`
	User       string            `json:"user,omitempty"`
	State      string            `json:"state,omitempty"`
	Reason     string            `json:"reason,omitempty"`
	Schedule   string            `json:"schedule,omitempty"`
	Build      *BuildInfo        `json:"build,omitempty"`
	Deployment *DeployInfo       `json:"deployment,omitempty"`
	Push       *PushInfo         `json:"push,omitempty"`
	Links      map[string]string `json:"links,omitempty"`
	// Text is the one line the slack and matrix formats send.
	Text string `json:"text"`
}

// BuildInfo is a build in a payload.
type BuildInfo struct {
	ID              int64      `json:"id"`
	State           string     `json:"state"`
	Reason          string     `json:"reason,omitempty"`
	Trigger         string     `json:"trigger,omitempty"`
	Pipeline        string     `json:"pipeline,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
	StartedAt       *time.Time `json:"started_at,omitempty"`
	FinishedAt      *time.Time `json:"finished_at,omitempty"`
	DurationMS      int64      `json:"duration_ms,omitempty"`
	Steps           []StepInfo `json:"steps,omitempty"`
	ArtifactsDigest string     `json:"artifacts_digest,omitempty"`
}

// StepInfo is a build step's result.
type StepInfo struct {
	Name       string `json:"name"`
	ExitCode   int    `json:"exit_code"`
	DurationMS int64  `json:"duration_ms"`
}

// DeployInfo is a deployment in a payload.
type DeployInfo struct {
	ID         int64      `json:"id"`
	Env        string     `json:"env"`
	State      string     `json:"state"`
	Reason     string     `json:"reason,omitempty"`
	Trigger    string     `json:"trigger,omitempty"`
	BuildID    int64      `json:"build_id"`
	ReleaseID  string     `json:"release_id,omitempty"`
	Digest     string     `json:"digest,omitempty"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	DurationMS int64      `json:"duration_ms,omitempty"`
}

// PushInfo is a push in a payload.
type PushInfo struct {
	ID   int64     `json:"id"`
	Refs []RefInfo `json:"refs"`
}

// RefInfo is one ref a push updated.
type RefInfo struct {
	Name string `json:"name"`
	Old  string `json:"old"`
	New  string `json:"new"`
}

// Records are what a payload is made from beside its event. A record
// that is gone (pruned) leaves its part of the payload out.
type Records struct {
	Build      *record.Build
	Deployment *record.Deployment
	Push       *record.Push
}

// Links builds the links of a payload; nil when [http] public_url is not
// set.
type Links func(kind string, id int64) string

// NewPayload makes the payload of event e with its records.
func NewPayload(e record.Event, uid string, rs Records, link Links) Payload {
	p := Payload{
		Version: PayloadVersion, Event: e.Kind, Delivery: uid, EventID: e.ID, Time: e.Time.UTC(),
		Repo: e.Repo, Ref: e.Ref, Env: e.Env, Commit: e.Commit, User: e.User, State: e.State,
		Reason: e.Reason, Schedule: e.Schedule,
	}
	if b, ok := strings.CutPrefix(e.Ref, "refs/heads/"); ok {
		p.Branch = b
	}
	if b := rs.Build; b != nil {
		bi := &BuildInfo{ID: b.ID, State: string(b.State), Reason: b.Reason, Trigger: string(b.Trigger),
			Pipeline: b.Pipeline, CreatedAt: b.CreatedAt.UTC(), ArtifactsDigest: b.ArtifactsDigest,
			StartedAt: timePtr(b.StartedAt), FinishedAt: timePtr(b.FinishedAt)}
		// The event tells the state at its moment; the record may have
		// moved on (a build.started read after the build finished).
		if e.Kind == record.EventBuildStarted {
			bi.State, bi.FinishedAt, bi.Reason = e.State, nil, e.Reason
		} else {
			for _, s := range b.Steps {
				bi.Steps = append(bi.Steps, StepInfo{Name: s.Name, ExitCode: s.ExitCode, DurationMS: s.Duration.Milliseconds()})
			}
			if !b.StartedAt.IsZero() && !b.FinishedAt.IsZero() {
				bi.DurationMS = b.FinishedAt.Sub(b.StartedAt).Milliseconds()
			}
		}
		p.Build = bi
	}
	if d := rs.Deployment; d != nil {
		di := &DeployInfo{ID: d.ID, Env: d.Env, State: string(d.State), Reason: d.Reason, Trigger: string(d.Trigger),
			BuildID: d.BuildID, ReleaseID: d.ReleaseID, Digest: d.Digest,
			StartedAt: timePtr(d.StartedAt), FinishedAt: timePtr(d.FinishedAt)}
		if e.Kind == record.EventDeployStarted {
			di.State, di.FinishedAt, di.Reason = e.State, nil, e.Reason
		} else if !d.StartedAt.IsZero() && !d.FinishedAt.IsZero() {
			di.DurationMS = d.FinishedAt.Sub(d.StartedAt).Milliseconds()
		}
		p.Deployment = di
	}
	if ps := rs.Push; ps != nil {
		pi := &PushInfo{ID: ps.ID, Refs: []RefInfo{}}
		for _, r := range ps.Refs {
			pi.Refs = append(pi.Refs, RefInfo{Name: r.Name, Old: r.Old, New: r.New})
		}
		p.Push = pi
	}
	if link != nil {
		p.Links = map[string]string{}
		for _, l := range []struct {
			kind string
			id   int64
		}{{"build", e.BuildID}, {"deployment", e.DeploymentID}, {"push", e.PushID}} {
			if l.id != 0 {
				if u := link(l.kind, l.id); u != "" {
					p.Links[l.kind] = u
				}
			}
		}
		if len(p.Links) == 0 {
			p.Links = nil
		}
	}
	p.Text = text(p)
	return p
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// text is the one readable line of a payload, with its main link.
func text(p Payload) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: ", p.Repo)
	short := gitrev.Short(p.Commit)
	ref := gitrev.ShortRef(p.Ref)
	switch p.Event {
	case record.EventPush:
		who := p.User
		if who == "" {
			who = "someone"
		}
		fmt.Fprintf(&b, "%s pushed", who)
		if p.Push != nil {
			for i, r := range p.Push.Refs {
				if i == 3 {
					fmt.Fprintf(&b, " (+%d more)", len(p.Push.Refs)-3)
					break
				}
				sep := ","
				if i == 0 {
					sep = ""
				}
				if record.ZeroID(r.New) {
					fmt.Fprintf(&b, "%s %s (deleted)", sep, gitrev.ShortRef(r.Name))
				} else {
					fmt.Fprintf(&b, "%s %s %s", sep, gitrev.ShortRef(r.Name), gitrev.Short(r.New))
				}
			}
		}
	case record.EventBuildStarted, record.EventBuildFinished:
		id := int64(0)
		if p.Build != nil {
			id = p.Build.ID
		}
		fmt.Fprintf(&b, "build #%d of %s (%s)", id, ref, short)
		if p.Schedule != "" {
			fmt.Fprintf(&b, " by schedule %s", p.Schedule)
		}
		if p.Event == record.EventBuildStarted {
			b.WriteString(" started")
		} else {
			fmt.Fprintf(&b, " %s", p.State)
			if p.Build != nil && p.Build.DurationMS > 0 {
				fmt.Fprintf(&b, " in %s", (time.Duration(p.Build.DurationMS) * time.Millisecond).Round(100*time.Millisecond))
			}
		}
	case record.EventDeployStarted, record.EventDeployFinished:
		id, build := int64(0), int64(0)
		if p.Deployment != nil {
			id, build = p.Deployment.ID, p.Deployment.BuildID
		}
		fmt.Fprintf(&b, "deployment #%d of build #%d (%s) to %s", id, build, short, p.Env)
		if p.Event == record.EventDeployStarted {
			b.WriteString(" started")
		} else {
			fmt.Fprintf(&b, " %s", p.State)
			if p.Deployment != nil && p.Deployment.ReleaseID != "" && p.State == string(record.DeploySucceeded) {
				fmt.Fprintf(&b, " (release %s)", p.Deployment.ReleaseID)
			}
		}
	case record.EventReleaseRefused:
		fmt.Fprintf(&b, "release of %s to %s", short, p.Env)
		if p.User != "" {
			fmt.Fprintf(&b, " by %s", p.User)
		}
		b.WriteString(" refused")
	case record.EventScheduleSkipped:
		fmt.Fprintf(&b, "schedule %s skipped", p.Schedule)
		if ref != "" {
			fmt.Fprintf(&b, " on %s", ref)
		}
	default:
		fmt.Fprintf(&b, "%s", p.Event)
	}
	if p.Reason != "" && p.Event != record.EventBuildStarted && p.Event != record.EventDeployStarted {
		fmt.Fprintf(&b, ": %s", oneLine(p.Reason, 300))
	}
	for _, k := range []string{"build", "deployment", "push"} {
		if u := p.Links[k]; u != "" {
			fmt.Fprintf(&b, " %s", u)
			break
		}
	}
	return b.String()
}

// oneLine folds s to one line of at most n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// Body encodes p in format (json, slack or matrix). A json body larger
// than record.MaxDeliveryBody loses its steps and push refs first.
func Body(p Payload, format string) ([]byte, error) {
	var v any
	switch format {
	case "slack":
		v = struct {
			Text string `json:"text"`
		}{p.Text}
	case "matrix":
		v = struct {
			MsgType string `json:"msgtype"`
			Body    string `json:"body"`
		}{"m.text", p.Text}
	case "json", "":
		v = p
	default:
		return nil, fmt.Errorf("unknown webhook format %q", format)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode the %s payload: %w", format, err)
	}
	if len(b) > record.MaxDeliveryBody && (format == "json" || format == "") {
		if p.Build != nil {
			bi := *p.Build
			bi.Steps = nil
			p.Build = &bi
		}
		if p.Push != nil {
			p.Push = &PushInfo{ID: p.Push.ID, Refs: []RefInfo{}}
		}
		p.Reason, p.Text = oneLine(p.Reason, 1000), oneLine(p.Text, 1000)
		return json.Marshal(p)
	}
	return b, nil
}
