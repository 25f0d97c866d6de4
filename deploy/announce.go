package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"slipway/configs"
	"slipway/internal/gitrev"
	"time"

	"slipway/internal/manifest"
	"slipway/internal/termsafe"
	"slipway/record"
)

// NoWaitOption is the push option (`git push -o nowait`) with which a push
// to a release ref returns as soon as its deployment is queued, instead of
// streaming it to the end.
const NoWaitOption = "nowait"

// Announce tells the pusher about the deployments recorded with a push and,
// unless the push says nowait, streams their logs until they end, each
// followed by its result. When ctx ends (the pusher went away) it returns;
// the deployments go on.
func (s *Service) Announce(ctx context.Context, p record.Push, ds []record.Deployment, out io.Writer) {
	for _, d := range ds {
		who := d.User
		if who == "" {
			who = "auto"
		}
		fmt.Fprintf(out, "deployment #%d queued: %s @ %s to %s (%s by %s) — follow: %s log deploy %d -f\n",
			d.ID, d.Repo, gitrev.Short(d.Commit), d.Env, d.Trigger, who, s.sshCommand(), d.ID)
		fmt.Fprintf(out, "deployment #%d ships %s\n", d.ID, s.describeShipment(ctx, d))
	}
	if slices.Contains(p.Options, NoWaitOption) {
		return
	}
	// The push is recorded: a daemon that stops ends the wait, not the
	// deployments, and the pusher is told where to follow them.
	wctx, done := s.queue.WhileClaiming(ctx, errShutdown)
	defer done()
	for i, d := range ds {
		err := s.Follow(wctx, d.ID, out, true)
		var fd record.Deployment
		if err == nil {
			fd, err = s.Wait(wctx, d.ID)
		}
		if err != nil {
			switch {
			case ctx.Err() != nil:
			case errors.Is(context.Cause(wctx), errShutdown):
				for _, d := range ds[i:] {
					fmt.Fprintf(out, "slipway: the daemon is stopping; follow deployment #%d with: %s log deploy %d -f\n", d.ID, s.sshCommand(), d.ID)
				}
			default:
				s.log.Warn("stream deployment log to pusher", "deployment", d.ID, "err", err)
			}
			return
		}
		line := fmt.Sprintf("deployment #%d to %s %s in %s", fd.ID, fd.Env, fd.State, fd.FinishedAt.Sub(fd.StartedAt).Round(10*time.Millisecond))
		if fd.Reason != "" {
			line += ": " + termsafe.Line(fd.Reason) // it may quote what the target printed
		}
		fmt.Fprintln(out, line)
	}
}

// describeShipment says which artifacts d ships and why those, as the
// gate chose them.
func (s *Service) describeShipment(ctx context.Context, d record.Deployment) string {
	plain := fmt.Sprintf("build #%d (%s)", d.BuildID, manifest.Short(d.Digest))
	e, ok := configs.Snapshot(ctx, s.o.Config).Environment(d.Repo, d.Env)
	if !ok {
		return plain
	}
	sh, err := s.shipment(ctx, d.Repo, e, d.Commit)
	if err != nil || sh.Build.ID != d.BuildID {
		return plain
	}
	sh.Build.ArtifactsDigest = d.Digest
	return sh.describe()
}

func (s *Service) sshCommand() string {
	if s.o.SSHCommand == "" {
		return "ssh"
	}
	return s.o.SSHCommand
}

// Get returns a deployment's record.
func (s *Service) Get(ctx context.Context, id int64) (record.Deployment, error) {
	return s.o.Store.GetDeployment(ctx, id)
}
