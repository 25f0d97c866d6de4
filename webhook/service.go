package webhook

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"slipway/configs"
	"slipway/internal/queue"
	"slipway/record"
)

// Cursor is the webhooks' place in the outbox (event_cursors).
const Cursor = "webhooks"

// Outbox is the event outbox the dispatcher reads.
type Outbox interface {
	EventsChanged() <-chan struct{}
	EventsAfter(ctx context.Context, after int64, limit int) ([]record.Event, error)
	StartCursor(ctx context.Context, name string) (int64, error)
}

// Deliveries is where deliveries are kept.
type Deliveries interface {
	FanOutDeliveries(ctx context.Context, ds []record.Delivery, cursor string, last int64) ([]record.Delivery, error)
	PendingHeads(ctx context.Context, limit int) ([]record.Delivery, error)
	RecordAttempt(ctx context.Context, id int64, a record.DeliveryAttempt) error
	PendingGroups(ctx context.Context) ([][2]string, error)
	CancelDeliveries(ctx context.Context, hook, repo, reason string) (int, error)
}

// RecordReader reads the records payloads are made from.
type RecordReader interface {
	GetBuild(ctx context.Context, id int64) (record.Build, error)
	GetDeployment(ctx context.Context, id int64) (record.Deployment, error)
	GetPush(ctx context.Context, id int64) (record.Push, error)
}

// Counter counts deliveries' attempts by outcome (delivered, retry,
// failed, refused); optional.
type Counter interface {
	WebhookAttempt(outcome string)
}

// Options configure a Service.
type Options struct {
	Config     configs.Source
	Outbox     Outbox
	Deliveries Deliveries
	Records    RecordReader
	Logger     *slog.Logger
	Metrics    Counter // nil: not counted
}

// Service fans events out into deliveries and sends them. Start it once;
// Shutdown stops it.
type Service struct {
	o       Options
	workers int
	wake    chan struct{} // the sender has new or changed work
	rand    *mrand.Rand
	randMu  sync.Mutex

	clients sync.Map // allowPrivate bool -> *http.Client

	bg queue.Background
}

// New checks o and returns a Service that is not started.
func New(o Options) (*Service, error) {
	if o.Config == nil || o.Outbox == nil || o.Deliveries == nil || o.Records == nil {
		return nil, errors.New("webhook: Config, Outbox, Deliveries and Records are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	w := o.Config.Current().WebhookSettings.Workers
	if w <= 0 {
		w = configs.DefaultWebhookWorkers
	}
	return &Service{o: o, workers: w, wake: make(chan struct{}, 1),
		rand: mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 0x5eed))}, nil
}

// Start reads the webhooks' outbox cursor (a first start puts it at the
// newest event: the past is not replayed), then starts the dispatcher and
// the senders. Pending deliveries of an earlier run are sent again.
func (s *Service) Start(ctx context.Context) error {
	cursor, err := s.o.Outbox.StartCursor(ctx, Cursor)
	if err != nil {
		return fmt.Errorf("webhooks: %w", err)
	}
	s.bg.Go(ctx, func(ctx context.Context) { s.dispatch(ctx, cursor) }, s.send)
	return nil
}

// Shutdown stops fanning out and sending; attempts in flight are cut off
// and left pending, to be sent again at the next start. It returns when
// everything stopped or ctx ends.
func (s *Service) Shutdown(ctx context.Context) error {
	if err := s.bg.Stop(ctx); err != nil {
		return fmt.Errorf("webhooks: %w", err)
	}
	return nil
}

// Reloaded tells the senders that the configuration in force changed:
// the pending deliveries of hooks that are gone are cancelled.
func (s *Service) Reloaded() { s.poke() }

func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// batch is how many events one fan-out takes.
const batch = 256

// dispatch fans the outbox's events out into deliveries, for ever.
func (s *Service) dispatch(ctx context.Context, cursor int64) {
	log := s.o.Logger
	delay := 100 * time.Millisecond
	for {
		changed := s.o.Outbox.EventsChanged()
		es, err := s.o.Outbox.EventsAfter(ctx, cursor, batch)
		if err == nil && len(es) > 0 {
			var ds []record.Delivery
			ds, err = s.fanOut(ctx, es)
			if err == nil {
				if _, err = s.o.Deliveries.FanOutDeliveries(ctx, ds, Cursor, es[len(es)-1].ID); err == nil {
					cursor = es[len(es)-1].ID
					delay = 100 * time.Millisecond
					if len(ds) > 0 {
						s.poke()
					}
					continue
				}
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			log.Error("fan out events to webhooks", "after", cursor, "err", err)
			if !sleep(ctx, delay) {
				return
			}
			delay = min(delay*2, 30*time.Second)
			continue
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// fanOut makes the deliveries of events under the configuration in
// force.
func (s *Service) fanOut(ctx context.Context, es []record.Event) ([]record.Delivery, error) {
	cfg := s.o.Config.Current()
	var links Links
	if base := strings.TrimSuffix(cfg.HTTP.PublicURL, "/"); base != "" {
		links = func(kind string, id int64) string {
			if kind == "build" {
				return cfg.BuildURL(id)
			}
			return fmt.Sprintf("%s/%s/%d", base, map[string]string{"deployment": "deployments", "push": "pushes"}[kind], id)
		}
	}
	var ds []record.Delivery
	for _, e := range es {
		var hooks []configs.Webhook
		for _, h := range cfg.WebhooksOf(e.Repo) {
			if h.Wants(string(e.Kind)) {
				hooks = append(hooks, h)
			}
		}
		if len(hooks) == 0 {
			continue
		}
		rs, err := s.records(ctx, e)
		if err != nil {
			return nil, err
		}
		for _, h := range hooks {
			if !wantsBranch(&h, e, rs) {
				continue
			}
			uid := rand.Text()
			body, err := Body(NewPayload(e, uid, rs, links), h.Format)
			if err != nil {
				return nil, err
			}
			ds = append(ds, record.Delivery{UID: uid, Hook: h.Name, Repo: e.Repo, URL: h.URL,
				EventID: e.ID, EventKind: e.Kind, Format: h.Format, RequestBody: body})
		}
	}
	return ds, nil
}

// wantsBranch applies a hook's branch filter: to a build's ref, and to a
// push's refs (any of them). Deployments, refused releases and skipped
// schedules are about environments and schedules, not branches: they
// pass.
func wantsBranch(h *configs.Webhook, e record.Event, rs Records) bool {
	switch e.Kind {
	case record.EventBuildStarted, record.EventBuildFinished:
		return h.WantsBranch(e.Ref)
	case record.EventPush:
		if len(h.Branches) == 0 {
			return true
		}
		if rs.Push == nil {
			return false
		}
		for _, r := range rs.Push.Refs {
			if h.WantsBranch(r.Name) {
				return true
			}
		}
		return false
	}
	return true
}

// records reads what an event's payload is made from; a record that is
// gone is left out.
func (s *Service) records(ctx context.Context, e record.Event) (Records, error) {
	var rs Records
	if e.BuildID != 0 && e.Kind != record.EventPush {
		b, err := s.o.Records.GetBuild(ctx, e.BuildID)
		switch {
		case err == nil:
			rs.Build = &b
		case !errors.Is(err, record.ErrNotFound):
			return rs, err
		}
	}
	if e.DeploymentID != 0 {
		d, err := s.o.Records.GetDeployment(ctx, e.DeploymentID)
		switch {
		case err == nil:
			rs.Deployment = &d
		case !errors.Is(err, record.ErrNotFound):
			return rs, err
		}
	}
	if e.PushID != 0 && e.Kind == record.EventPush {
		p, err := s.o.Records.GetPush(ctx, e.PushID)
		switch {
		case err == nil:
			rs.Push = &p
		case !errors.Is(err, record.ErrNotFound):
			return rs, err
		}
	}
	return rs, nil
}

// headsLimit bounds the groups one look at the pending deliveries takes.
const headsLimit = 1000

// recheck is how often the senders look at the pending deliveries with
// nothing to wake them: a safety net, not the way work arrives.
const recheck = 30 * time.Second

// send runs the senders until ctx ends: the head of each (hook, repo)
// group, when due and not in flight, goes to one of s.workers attempts.
func (s *Service) send(ctx context.Context) {
	type group struct{ hook, repo string }
	inflight := map[group]bool{}
	done := make(chan group)
	var wg sync.WaitGroup
	defer wg.Wait()
	var seen *configs.Config
	for {
		cfg := s.o.Config.Current()
		if cfg != seen {
			s.cancelRemoved(ctx, cfg)
			seen = cfg
		}
		wait := recheck
		heads, err := s.o.Deliveries.PendingHeads(ctx, headsLimit)
		if err != nil && ctx.Err() == nil {
			s.o.Logger.Error("read pending webhook deliveries", "err", err)
			wait = time.Second
		}
		now := time.Now()
		for _, d := range heads {
			g := group{d.Hook, d.Repo}
			if inflight[g] {
				continue
			}
			if due := d.NextAttempt.Sub(now); due > 0 {
				wait = min(wait, due)
				continue
			}
			if len(inflight) >= s.workers {
				break
			}
			inflight[g] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.attempt(ctx, d)
				select {
				case done <- g:
				case <-ctx.Done():
				}
			}()
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.wake:
		case g := <-done:
			delete(inflight, g)
		case <-t.C:
		}
		t.Stop()
	}
}

// cancelRemoved cancels the pending deliveries of hooks cfg no longer
// has.
func (s *Service) cancelRemoved(ctx context.Context, cfg *configs.Config) {
	groups, err := s.o.Deliveries.PendingGroups(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.o.Logger.Error("read pending webhook deliveries", "err", err)
		}
		return
	}
	for _, g := range groups {
		if _, ok := cfg.WebhookOf(g[1], g[0]); ok {
			continue
		}
		n, err := s.o.Deliveries.CancelDeliveries(ctx, g[0], g[1], fmt.Sprintf("webhook %s was removed from the configuration", g[0]))
		if err != nil {
			s.o.Logger.Error("cancel deliveries of a removed webhook", "hook", g[0], "repo", g[1], "err", err)
			continue
		}
		s.o.Logger.Info("cancelled the deliveries of a removed webhook", "hook", g[0], "repo", g[1], "deliveries", n)
	}
}

// userAgent is the User-Agent of deliveries.
const userAgent = "Slipway"

// client returns the HTTP client of hooks with or without allow_private:
// no proxy from the environment (a proxy would dial for us, past the
// guard), no redirects followed, the guard's dialer.
func (s *Service) client(allowPrivate bool, timeout time.Duration) *http.Client {
	if c, ok := s.clients.Load(allowPrivate); ok {
		return c.(*http.Client)
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           Dialer(allowPrivate, timeout).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
	}
	c := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	actual, _ := s.clients.LoadOrStore(allowPrivate, c)
	return actual.(*http.Client)
}

// attempt makes one attempt at d and writes its outcome. An attempt cut
// off by the daemon's stop is not written: d stays pending and is sent
// again at the next start.
func (s *Service) attempt(ctx context.Context, d record.Delivery) {
	cfg := s.o.Config.Current()
	h, ok := cfg.WebhookOf(d.Repo, d.Hook)
	if !ok {
		s.cancelRemoved(ctx, cfg)
		return
	}
	timeout := cfg.WebhookSettings.Timeout.Duration
	if timeout <= 0 {
		timeout = configs.DefaultWebhookTimeout
	}
	a := s.post(ctx, h, d, timeout)
	if ctx.Err() != nil {
		return
	}
	outcome := string(a.State)
	if a.State == record.DeliveryPending {
		n := d.Attempts + 1
		if n >= h.MaxAttempts {
			a.State = record.DeliveryFailed
			a.Error = fmt.Sprintf("gave up after %d attempts: %s", n, a.Error)
			outcome = "failed"
		} else {
			wait, ok := a.Next.Sub(a.At), !a.Next.IsZero()
			if !ok {
				s.randMu.Lock()
				wait = Backoff(n, cfg.WebhookSettings.RetryBase.Duration, s.rand)
				s.randMu.Unlock()
			}
			a.Next = a.At.Add(wait)
			outcome = "retry"
		}
	}
	if s.o.Metrics != nil {
		s.o.Metrics.WebhookAttempt(outcome)
	}
	log := s.o.Logger.With("delivery", d.ID, "hook", d.Hook, "repo", d.Repo, "event", d.EventKind, "attempt", d.Attempts+1)
	if err := s.o.Deliveries.RecordAttempt(context.WithoutCancel(ctx), d.ID, a); err != nil {
		log.Error("record a webhook attempt", "err", err)
		return
	}
	switch a.State {
	case record.DeliveryDelivered:
		log.Debug("webhook delivered", "status", a.StatusCode)
	case record.DeliveryPending:
		log.Info("webhook attempt failed; will retry", "status", a.StatusCode, "err", a.Error, "next", a.Next)
	default:
		log.Warn("webhook delivery "+string(a.State), "status", a.StatusCode, "err", a.Error)
	}
}

// post sends d to h once. The returned attempt is pending when it is
// worth retrying (Next set when the receiver said when), or final.
func (s *Service) post(ctx context.Context, h *configs.Webhook, d record.Delivery, timeout time.Duration) record.DeliveryAttempt {
	a := record.DeliveryAttempt{At: time.Now(), URL: h.URL}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, h.URL, bytes.NewReader(d.RequestBody))
	if err != nil {
		a.State, a.Error = record.DeliveryFailed, fmt.Sprintf("bad url: %v", err)
		return a
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("X-Slipway-Event", string(d.EventKind))
	req.Header.Set("X-Slipway-Delivery", d.UID)
	if secret := h.Secret(); secret != nil {
		req.Header.Set("X-Slipway-Signature", Sign(secret, d.RequestBody))
	}
	a.RequestHeaders = headerLines(req.Header)
	resp, err := s.client(h.AllowPrivate, timeout).Do(req)
	if err != nil {
		a.Error = describe(err, timeout)
		if errors.Is(err, ErrRefused) {
			a.State = record.DeliveryRefused
		} else {
			a.State = record.DeliveryPending
		}
		return a
	}
	defer resp.Body.Close()
	a.StatusCode = resp.StatusCode
	a.ResponseHeaders = capString(headerLines(resp.Header), record.MaxDeliveryBody)
	body, err := io.ReadAll(io.LimitReader(resp.Body, record.MaxDeliveryBody))
	a.ResponseBody = body
	// The rest of a long answer is not read: the connection is not reused.
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		a.State = record.DeliveryDelivered
		if err != nil {
			// The answer's status came; its body did not in time: the
			// receiver has the delivery.
			a.Error = fmt.Sprintf("reading the answer: %s", describe(err, timeout))
		}
	case code == http.StatusTooManyRequests || code >= 500:
		a.State = record.DeliveryPending
		a.Error = fmt.Sprintf("the receiver answered %s", resp.Status)
		if wait, ok := RetryAfter(resp.Header.Get("Retry-After"), a.At); ok {
			a.Next = a.At.Add(wait)
		}
	case code >= 300 && code < 400:
		a.State = record.DeliveryFailed
		a.Error = fmt.Sprintf("the receiver answered %s, a redirect to %q, which is not followed", resp.Status, resp.Header.Get("Location"))
	default:
		a.State = record.DeliveryFailed
		a.Error = fmt.Sprintf("the receiver answered %s", resp.Status)
	}
	return a
}

// describe says in one line why a request failed.
func describe(err error, timeout time.Duration) string {
	switch {
	case errors.Is(err, ErrRefused):
		var msg string
		for e := err; e != nil; e = errors.Unwrap(e) {
			if strings.HasPrefix(e.Error(), ErrRefused.Error()+":") {
				msg = e.Error()
				break
			}
		}
		if msg != "" {
			return msg
		}
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("no answer within %s", timeout)
	}
	return err.Error()
}

// headerLines writes h as sorted "Name: value" lines.
func headerLines(h http.Header) string {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		for _, v := range h[k] {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	return b.String()
}

func capString(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
