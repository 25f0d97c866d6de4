package deploy

import (
	"context"
	"io"

	"slipway/push"
	"slipway/record"
)

// Pushes returns the deployments' part of the way of a push (package push):
// a created or moved refs/release/<env> becomes a deployment, recorded with
// the push, and the pusher sees it through to its end unless the push asked
// otherwise (`-o nowait`).
func (s *Service) Pushes() push.Part { return pushes{s} }

// pushes is the deployments' push.Part.
type pushes struct{ s *Service }

// Plan returns the deployments the push's release refs ask for; see
// ReleaseDeployments.
func (ps pushes) Plan(ctx context.Context, p record.Push) (push.Plan, error) {
	ds, err := ps.s.ReleaseDeployments(ctx, p)
	if err != nil {
		return push.Plan{}, err
	}
	return push.Plan{
		Deployments: ds,
		Settle: func(_ context.Context, rec record.Enqueued, err error) {
			if err == nil && len(rec.Deployments) > 0 {
				ps.s.Wake()
			}
		},
	}, nil
}

// Report announces the push's deployments and streams them; see Announce.
func (ps pushes) Report(ctx context.Context, p record.Push, _ push.Plan, rec record.Enqueued, out io.Writer) {
	if len(rec.Deployments) > 0 {
		ps.s.Announce(ctx, p, rec.Deployments, out)
	}
}
