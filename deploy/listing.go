package deploy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"slipway/configs"
	"slipway/record"
)

// listingTTL is how long a listing of a target answers `releases` before
// the target is asked again. Deployments mark it out of date when they end.
const listingTTL = 5 * time.Second

// listingTimeout bounds one listing of a target made for `releases`.
const listingTimeout = 30 * time.Second

// slot is Slipway's line to one environment's target. Whatever connects
// to the target for that environment (a deployment, a listing for
// `releases`, the check at start) holds busy, so there is at most one
// connection per environment at a time however many people ask; and the
// last listing is kept for `releases` to answer from.
type slot struct {
	busy chan struct{} // capacity 1: held while connected to the target

	mu       sync.Mutex
	rels     []Release     // the last listing of the target (its first host that answered)
	hosts    []HostRelease // with many hosts, what each had live at that listing
	listed   time.Time     // when it was made; zero when never
	err      error         // the last listing's failure, kept for listingTTL too
	failed   time.Time     // when it failed
	stale    bool          // a deployment ended after the listing
	inflight chan struct{} // closed when the listing under way ends; nil when none
}

type slotKey struct{ repo, env string }

// slot returns the slot of env of repo, made on first use.
func (s *Service) slot(repo, env string) *slot {
	s.slotsMu.Lock()
	defer s.slotsMu.Unlock()
	k := slotKey{repo, env}
	sl, ok := s.slots[k]
	if !ok {
		sl = &slot{busy: make(chan struct{}, 1)}
		s.slots[k] = sl
	}
	return sl
}

// acquire takes the slot's line, waiting for whoever holds it.
func (sl *slot) acquire(ctx context.Context) error {
	select {
	case sl.busy <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (sl *slot) tryAcquire() bool {
	select {
	case sl.busy <- struct{}{}:
		return true
	default:
		return false
	}
}

func (sl *slot) release() { <-sl.busy }

// ended marks the listing out of date: a deployment changed the target.
func (sl *slot) ended() {
	sl.mu.Lock()
	sl.stale = true
	sl.mu.Unlock()
}

// list lists the target while the caller holds the slot's line and keeps
// the listing for `releases`.
func (s *Service) list(ctx context.Context, sl *slot, t Target) ([]Release, error) {
	rels, err := s.shipper.Releases(ctx, t)
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if err != nil {
		sl.err, sl.failed = err, time.Now()
		return nil, err
	}
	sl.rels, sl.listed, sl.err, sl.failed, sl.stale = rels, time.Now(), nil, time.Time{}, false
	return rels, nil
}

// listAll is list for an environment of many hosts: every host is listed
// at once; the releases kept are those of the first host that answered,
// and every host's live release (or why it could not be listed) is kept
// beside them. Only when no host answers is the listing a failure.
func (s *Service) listAll(ctx context.Context, sl *slot, ts []Target) error {
	if len(ts) == 1 {
		_, err := s.list(ctx, sl, ts[0])
		return err
	}
	rels, errs := s.listHosts(ctx, ts)
	hosts := make([]HostRelease, len(ts))
	first := -1
	for i, t := range ts {
		hosts[i].Host = t.String()
		if errs[i] != nil {
			hosts[i].Err = errs[i].Error()
			continue
		}
		if first < 0 {
			first = i
		}
		for _, r := range rels[i] {
			if r.Live {
				hosts[i].Live = r.ID
			}
		}
	}
	sl.mu.Lock()
	defer sl.mu.Unlock()
	sl.hosts = hosts
	if first < 0 {
		sl.err, sl.failed = errs[0], time.Now()
		return errs[0]
	}
	sl.rels, sl.listed, sl.err, sl.failed, sl.stale = rels[first], time.Now(), nil, time.Time{}, false
	return nil
}

// listHosts lists every target at once: each one's releases, newest
// first, or why it could not be listed. The caller holds the slot.
func (s *Service) listHosts(ctx context.Context, ts []Target) ([][]Release, []error) {
	rels := make([][]Release, len(ts))
	errs := make([]error, len(ts))
	var wg sync.WaitGroup
	for i, t := range ts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rels[i], errs[i] = s.shipper.Releases(ctx, t)
		}()
	}
	wg.Wait()
	return rels, errs
}

// HostRelease is what one host of an environment of many has live.
type HostRelease struct {
	Host string // the host as deployments name it (Target.String())
	Live string // the release its current points at; "" none
	Err  string // why it could not be listed; Live is then unknown
	// Last is the host's part in the newest deployment that reached it;
	// nil when none did (a host just added).
	Last *record.DeploymentHost
}

// Listing is what `releases` shows of an environment: the releases on its
// target, newest first, with what Slipway recorded about each.
type Listing struct {
	Releases []Release
	// Listed is when the target was listed. The listing may be up to a few
	// seconds old: the target is asked at most every few seconds, and
	// again after each deployment.
	Listed time.Time
	// Note says why the listing may be out of date (a deployment is under
	// way, the target could not be reached); empty when it is current.
	Note string
	// Hosts, for an environment of many hosts, says what each has live
	// and how its last deployment went, in the order of the config; the
	// releases above are those of the first host that answered.
	Hosts []HostRelease
}

// Releases reports what is on env's target, newest first, which release is
// live and which deployment and build each came from. It changes nothing
// there. It answers from a listing of the target that is at most a few
// seconds old and made again after each deployment, so that readers cannot
// flood the target: however many ask at once, at most one connection per
// environment is open, and never while a deployment to it runs (then the
// last listing is shown with a note).
func (s *Service) Releases(ctx context.Context, repo, env string) (Listing, error) {
	e, ok := configs.Snapshot(ctx, s.o.Config).Environment(repo, env)
	if !ok {
		return Listing{}, fmt.Errorf("unknown environment %q (%s)", env, s.envNames(ctx, repo))
	}
	ts, err := s.targets(repo, e)
	if err != nil {
		return Listing{}, err
	}
	sl := s.slot(repo, env)
	for {
		sl.mu.Lock()
		now := time.Now()
		switch {
		case !sl.stale && sl.err == nil && !sl.listed.IsZero() && now.Sub(sl.listed) < listingTTL:
			l := Listing{Releases: sl.rels, Listed: sl.listed, Hosts: slices.Clone(sl.hosts)}
			sl.mu.Unlock()
			return s.withHosts(ctx, repo, env, ts, l)
		case sl.err != nil && now.Sub(sl.failed) < listingTTL:
			l, err := sl.fallback(fmt.Sprintf("the target could not be listed: %v", sl.err), sl.err)
			sl.mu.Unlock()
			if err != nil && len(ts) == 1 {
				return Listing{}, err
			}
			if err != nil {
				l = Listing{Note: fmt.Sprintf("no host could be listed: %v", err), Hosts: slices.Clone(sl.hosts)}
			}
			return s.withHosts(ctx, repo, env, ts, l)
		case sl.inflight != nil:
			wait := sl.inflight
			sl.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return Listing{}, context.Cause(ctx)
			}
		case !sl.tryAcquire():
			// A deployment (or the check at start) is connected: do not
			// open a second line beside it.
			l, _ := sl.fallback("a deployment to "+env+" is under way; this listing is from before it", nil)
			sl.mu.Unlock()
			return s.withHosts(ctx, repo, env, ts, l)
		}
		done := make(chan struct{})
		sl.inflight = done
		sl.mu.Unlock()

		// One listing for every caller waiting: the first caller leaving
		// must not cut it short for the others.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), listingTimeout)
		err := s.listAll(lctx, sl, ts)
		cancel()
		sl.release()
		if err != nil {
			s.log.Warn("list releases", "repo", repo, "env", env, "err", err)
		}
		sl.mu.Lock()
		sl.inflight = nil
		close(done)
		sl.mu.Unlock()
	}
}

// fallback is the last listing, noted as possibly out of date, or, when
// there is none, an empty listing (Slipway's records fill it) or err.
// sl.mu is held.
func (sl *slot) fallback(note string, err error) (Listing, error) {
	if sl.listed.IsZero() {
		if err != nil {
			return Listing{}, err
		}
		return Listing{Note: note}, nil
	}
	return Listing{Releases: sl.rels, Listed: sl.listed, Note: note, Hosts: slices.Clone(sl.hosts)}, nil
}

// withHosts is withRecords, and for an environment of many hosts, one
// entry per configured host (in the config's order, however the last
// listing saw them) with the last result recorded for it. A host removed
// from the config is not shown.
func (s *Service) withHosts(ctx context.Context, repo, env string, ts []Target, l Listing) (Listing, error) {
	l, err := s.withRecords(ctx, repo, env, l)
	if err != nil || len(ts) == 1 {
		l.Hosts = nil
		return l, err
	}
	listed := map[string]HostRelease{}
	for _, h := range l.Hosts {
		listed[h.Host] = h
	}
	last, err := s.o.Store.LatestHostResults(ctx, repo, env)
	if err != nil {
		return Listing{}, fmt.Errorf("read the hosts' last results of %s on %s: %w", repo, env, err)
	}
	lastOf := map[string]record.DeploymentHost{}
	for _, r := range last {
		lastOf[r.Host] = r
	}
	hosts := make([]HostRelease, len(ts))
	var unlisted []string
	for i, t := range ts {
		h, ok := listed[t.String()]
		if !ok {
			h = HostRelease{Host: t.String(), Err: "not listed yet"}
		}
		if h.Err != "" {
			unlisted = append(unlisted, h.Host+" ("+h.Err+")")
		}
		if r, ok := lastOf[t.String()]; ok {
			h.Last = &r
		}
		hosts[i] = h
	}
	l.Hosts = hosts
	if len(unlisted) > 0 {
		note := fmt.Sprintf("%d of %d hosts could not be listed: %s", len(unlisted), len(ts), strings.Join(unlisted, "; "))
		if l.Note != "" {
			note = l.Note + "; " + note
		}
		l.Note = note
	}
	return l, nil
}

// recordsWindow is how many recent deployments withRecords looks at.
const recordsWindow = 200

// withRecords adds to each listed release the deployment and build that
// shipped it. When the target has never been listed, the releases are
// Slipway's records alone: what its deployments shipped and what they
// left live.
func (s *Service) withRecords(ctx context.Context, repo, env string, l Listing) (Listing, error) {
	ds, err := s.o.Store.ListDeployments(ctx, repo, env, recordsWindow)
	if err != nil {
		return Listing{}, fmt.Errorf("read deployments of %s to %s: %w", repo, env, err)
	}
	shipped := map[string]record.Deployment{} // release id -> newest deployment that made it live, else newest at all
	for _, d := range ds {                    // newest first
		if d.ReleaseID == "" {
			continue
		}
		if p, ok := shipped[d.ReleaseID]; !ok || (p.State != record.DeploySucceeded && d.State == record.DeploySucceeded) {
			shipped[d.ReleaseID] = d
		}
	}
	if l.Listed.IsZero() {
		live := ""
		for _, d := range ds {
			if d.State == record.DeploySucceeded {
				live = d.ReleaseID
				break
			}
		}
		seen := map[string]bool{}
		for _, d := range ds {
			if d.State != record.DeploySucceeded || seen[d.ReleaseID] {
				continue
			}
			seen[d.ReleaseID] = true
			l.Releases = append(l.Releases, Release{ID: d.ReleaseID, Complete: true, Live: d.ReleaseID == live,
				Commit: d.Commit, Repo: repo, Env: env, Time: d.FinishedAt, Digest: d.Digest})
		}
		if l.Note != "" {
			l.Note += "; shown from Slipway's records"
		}
	}
	out := make([]Release, len(l.Releases))
	for i, r := range l.Releases {
		if d, ok := shipped[r.ID]; ok {
			r.Deployment, r.Build = d.ID, d.BuildID
			if r.Digest == "" {
				r.Digest = d.Digest
			}
		}
		out[i] = r
	}
	l.Releases = out
	return l, nil
}
