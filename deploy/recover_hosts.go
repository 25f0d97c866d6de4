package deploy

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"slipway/configs"
	"slipway/record"
)

// recoverHosts settles a deployment to an environment of many hosts that
// nobody runs any more (see settle). Every host's current is read:
//   - on no host is current the deployment's release: nothing was switched,
//     the deployment failed (the next one removes the partial releases);
//   - on every host it is, and every host was recorded live: the rollout
//     ended and only its outcome was not written: succeeded;
//   - otherwise the environment is mixed, or its last batch never passed
//     its activate or health check: every host on the release is switched
//     back to the release it had before (recorded with the host, else the
//     newest other complete release there) and runs that release's
//     activate again; the deployment is rolled back. A host that cannot be
//     read or switched back is named, and the deployment is failed with
//     the environment said to be split.
//
// The caller has checked that d has a release id.
func (s *Service) recoverHosts(ctx context.Context, d record.Deployment, env *configs.Environment, how loss, failed func(string) error) error {
	log := s.log.With("deployment", d.ID, "repo", d.Repo, "env", d.Env, "release", d.ReleaseID, "found", how.at())
	ts, err := s.targets(d.Repo, env)
	if err != nil {
		return failed(err.Error())
	}
	rows, err := s.o.Store.DeploymentHosts(ctx, d.ID)
	if err != nil {
		return fmt.Errorf("read the hosts of deployment %d: %w", d.ID, err)
	}
	recorded := map[string]record.DeploymentHost{}
	for _, r := range rows {
		recorded[r.Host] = r
	}
	sl := s.slot(d.Repo, d.Env)
	if err := sl.acquire(ctx); err != nil {
		return err
	}
	defer sl.release()
	defer sl.ended()

	// What each host has live now.
	type host struct {
		t        Target
		row      record.DeploymentHost
		release  string // the deployment's release on this host
		live     string
		previous string // newest other complete release, when the record has none
		err      error
	}
	lctx, cancel := context.WithTimeout(ctx, recoverTimeout)
	rels, errs := s.listHosts(lctx, ts)
	cancel()
	hs := make([]host, len(ts))
	for i, t := range ts {
		row := recorded[t.String()]
		hs[i] = host{t: t, row: row, release: cmp.Or(row.Release, d.ReleaseID), err: errs[i]}
		for _, r := range rels[i] { // newest first
			switch {
			case r.Live:
				hs[i].live = r.ID
			case r.Complete && r.ID != hs[i].release && hs[i].previous == "":
				hs[i].previous = r.ID
			}
		}
	}

	var switched, unread []int
	allLive := true
	for i, h := range hs {
		switch {
		case h.err != nil:
			unread = append(unread, i)
		case h.live == h.release:
			switched = append(switched, i)
		}
		if h.row.State != record.HostLive {
			allLive = false
		}
	}
	if len(switched) == 0 && len(unread) == 0 {
		return failed(fmt.Sprintf("current was not switched to release %s on any of the %d hosts", d.ReleaseID, len(hs)))
	}
	if len(switched) == len(hs) && allLive {
		reason := fmt.Sprintf("release %s is live on all %d hosts (it went live before %s)", d.ReleaseID, len(hs), how.cut())
		log.Warn("deployment left running after every host went live; recorded succeeded", "cut", how.cut())
		if err := s.o.Store.FinishDeployment(ctx, d.ID, record.DeploySucceeded, reason); err != nil {
			return err
		}
		s.appendLog(d.ID, fmt.Sprintf("== %s during deployment #%d after every host went live; deployment #%d succeeded: %s", how.cut(), d.ID, d.ID, reason))
		return nil
	}

	why := fmt.Sprintf("%s with %d of %d hosts switched", how.cut(), len(switched), len(hs))
	s.appendLog(d.ID, fmt.Sprintf("== %s during deployment #%d (%s %s): switching every host on release %s back", how.cut(), d.ID, how.at(), strings.TrimPrefix(why, how.cut()+" "), d.ReleaseID))
	vars, _, secretErr := s.activateVars(ctx, d)
	if secretErr != nil {
		log.Error("read the deployment's secrets", "err", secretErr)
	}
	var mu sync.Mutex
	var split []string
	for _, i := range unread {
		split = append(split, fmt.Sprintf("%s could not be read (%v)", hs[i].t, hs[i].err))
	}
	var wg sync.WaitGroup
	for _, i := range switched {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := hs[i]
			prev := cmp.Or(h.row.Previous, h.previous)
			rctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
			defer cancel()
			res, err := s.shipper.Restore(rctx, Request{
				Target: h.t, Release: h.release, Repo: d.Repo, Env: d.Env, Commit: d.Commit, Vars: vars,
			}, prev, why)
			back := prev != "" && res.Live == prev
			state, detail := record.HostRolledBack, "switched back to "+prev+" "+how.at()
			if err != nil {
				detail = oneLine(err.Error())
			}
			if !back {
				state = record.HostFailed
				mu.Lock()
				split = append(split, fmt.Sprintf("%s: %v", h.t, err))
				mu.Unlock()
			}
			s.appendLog(d.ID, fmt.Sprintf("== [%s] %s", h.t, detail))
			if err := s.o.Store.SetDeploymentHost(ctx, record.DeploymentHost{
				DeploymentID: d.ID, Pos: i, Host: h.t.String(), Release: h.release, Previous: prev, State: state, Detail: detail,
			}); err != nil {
				log.Error("record a host's state", "host", h.t.String(), "err", err)
			}
		}()
	}
	wg.Wait()
	for i, h := range hs {
		if h.err == nil && h.live != h.release && (h.row.State == record.HostPrepared || h.row.State == record.HostPending) {
			// Never switched (or switched back before the cut): its
			// transferred release stays unused.
			if err := s.o.Store.SetDeploymentHost(ctx, record.DeploymentHost{
				DeploymentID: d.ID, Pos: i, Host: h.t.String(), Release: h.release, Previous: h.row.Previous,
				State: record.HostSkipped, Detail: "never switched: " + why,
			}); err != nil {
				log.Error("record a host's state", "host", h.t.String(), "err", err)
			}
		}
	}
	slices.Sort(split)
	state, reason := record.DeployRolledBack, fmt.Sprintf("%s; every host switched to release %s is back on its previous release", why, d.ReleaseID)
	if len(split) > 0 {
		state, reason = record.DeployFailed, fmt.Sprintf("%s; the environment may be split: %s", why, strings.Join(split, "; "))
	}
	log.Warn("deployment cut off between its hosts; settled", "state", state, "reason", reason)
	if err := s.o.Store.FinishDeployment(ctx, d.ID, state, reason); err != nil {
		return err
	}
	s.appendLog(d.ID, fmt.Sprintf("== deployment #%d %s: %s", d.ID, strings.ReplaceAll(string(state), "_", " "), reason))
	return nil
}
