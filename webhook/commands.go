package webhook

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"slipway/configs"
	"slipway/gitserver"
	"slipway/internal/sshcmd"
	"slipway/internal/termsafe"
	"slipway/record"
)

// Listing is what the SSH commands read and write.
type Listing interface {
	ListDeliveries(ctx context.Context, q record.DeliveryQuery) ([]record.Delivery, error)
	GetDelivery(ctx context.Context, id int64) (record.Delivery, error)
	LastDeliveries(ctx context.Context, repo string) (map[string]record.Delivery, error)
	FanOutDeliveries(ctx context.Context, ds []record.Delivery, cursor string, last int64) ([]record.Delivery, error)
}

// Commands returns the SSH commands of webhooks, for gitserver.Options:
// webhooks, deliveries, delivery and redeliver. They are for admins and
// the writers of the repository concerned.
func (s *Service) Commands(l Listing) map[string]gitserver.Command {
	c := &commands{s: s, l: l}
	return map[string]gitserver.Command{
		"webhooks":   {Usage: "webhooks REPO [--json]", Summary: "a repository's webhooks and their last delivery (admins and writers)", Run: c.webhooks},
		"deliveries": {Usage: "deliveries REPO [HOOK] [--failed] [--limit N] [--json]", Summary: "a repository's webhook deliveries, newest first (admins and writers)", Run: c.deliveries},
		"delivery":   {Usage: "delivery ID [--json]", Summary: "a webhook delivery's last request and answer (admins and writers)", Run: c.delivery},
		"redeliver":  {Usage: "redeliver ID", Summary: "send a webhook delivery's event again, as a new delivery (admins and writers)", Run: c.redeliver},
	}
}

type commands struct {
	s *Service
	l Listing
}

// writer returns the repository's canonical name when who may write it
// (or is an admin), else an error that tells no more than that.
func (c *commands) writer(ctx context.Context, who gitserver.Caller, repo string) (*configs.Config, string, error) {
	cfg := configs.Snapshot(ctx, c.s.o.Config)
	name, err := configs.CleanRepoName(repo)
	if err != nil {
		return nil, "", err
	}
	if !cfg.Access(who.User, name).Has(configs.Write) {
		return nil, "", fmt.Errorf("%s: no such repository, or you may not write it (webhooks are for admins and writers)", name)
	}
	return cfg, name, nil
}

type cmdFlags struct {
	json, failed bool
	limit        int
	args         []string
}

func parseFlags(name string, args []string, stderr io.Writer) (cmdFlags, bool) {
	var f cmdFlags
	fs := sshcmd.NewFlags(name)
	fs.BoolVar(&f.json, "json", false, "")
	fs.BoolVar(&f.failed, "failed", false, "")
	fs.IntVar(&f.limit, "limit", 50, "")
	var err error
	if f.args, err = sshcmd.Parse(fs, args); err != nil {
		fmt.Fprintf(stderr, "slipway: %s: %v\n", name, err)
		return f, false
	}
	if f.limit <= 0 || f.limit > 1000 {
		f.limit = 50
	}
	return f, true
}

// HookView is a hook as `webhooks --json` shows it.
type HookView struct {
	Name         string        `json:"name"`
	Scope        string        `json:"scope"` // "all" ([[webhook]]) or "repo"
	URL          string        `json:"url"`   // secrets masked
	Events       []string      `json:"events"`
	Format       string        `json:"format"`
	Branches     []string      `json:"branches,omitempty"`
	AllowPrivate bool          `json:"allow_private"`
	Signed       bool          `json:"signed"`
	MaxAttempts  int           `json:"max_attempts"`
	Last         *DeliveryView `json:"last_delivery,omitempty"`
}

// DeliveryView is a delivery as the commands' --json show it.
type DeliveryView struct {
	ID              int64      `json:"id"`
	UID             string     `json:"uid"`
	Hook            string     `json:"hook"`
	Repo            string     `json:"repo"`
	URL             string     `json:"url"`
	EventID         int64      `json:"event_id"`
	Event           string     `json:"event"`
	Format          string     `json:"format"`
	State           string     `json:"state"`
	Attempts        int        `json:"attempts"`
	NextAttempt     *time.Time `json:"next_attempt,omitempty"`
	StatusCode      int        `json:"status_code,omitempty"`
	Error           string     `json:"error,omitempty"`
	Created         time.Time  `json:"created"`
	DeliveredAt     *time.Time `json:"delivered_at,omitempty"`
	RedeliveryOf    int64      `json:"redelivery_of,omitempty"`
	RequestHeaders  string     `json:"request_headers,omitempty"`
	RequestBody     string     `json:"request_body,omitempty"`
	ResponseHeaders string     `json:"response_headers,omitempty"`
	ResponseBody    string     `json:"response_body,omitempty"`
}

func view(d record.Delivery) DeliveryView {
	v := DeliveryView{ID: d.ID, UID: d.UID, Hook: d.Hook, Repo: d.Repo, URL: configs.MaskURL(d.URL), EventID: d.EventID,
		Event: string(d.EventKind), Format: d.Format, State: string(d.State), Attempts: d.Attempts,
		StatusCode: d.StatusCode, Error: d.Error, Created: d.Created, RedeliveryOf: d.RedeliveryOf,
		RequestHeaders: d.RequestHeaders, RequestBody: string(d.RequestBody),
		ResponseHeaders: d.ResponseHeaders, ResponseBody: string(d.ResponseBody)}
	if d.State == record.DeliveryPending {
		t := d.NextAttempt
		v.NextAttempt = &t
	}
	if !d.DeliveredAt.IsZero() {
		t := d.DeliveredAt
		v.DeliveredAt = &t
	}
	return v
}

func (c *commands) webhooks(ctx context.Context, who gitserver.Caller, args []string, stdout, stderr io.Writer) int {
	f, ok := parseFlags("webhooks", args, stderr)
	if !ok || len(f.args) != 1 || f.failed {
		return sshcmd.Fail(stderr, "usage: webhooks REPO [--json]")
	}
	cfg, repo, err := c.writer(ctx, who, f.args[0])
	if err != nil {
		return sshcmd.Fail(stderr, "%v", err)
	}
	last, err := c.l.LastDeliveries(ctx, repo)
	if err != nil {
		return sshcmd.Fail(stderr, "%v", err)
	}
	own := map[string]bool{}
	if r, ok := cfg.Repo(repo); ok {
		for _, h := range r.Webhooks {
			own[h.Name] = true
		}
	}
	var hs []HookView
	for _, h := range cfg.WebhooksOf(repo) {
		hv := HookView{Name: h.Name, Scope: "all", URL: configs.MaskURL(h.URL), Events: h.Events, Format: h.Format,
			Branches: h.Branches, AllowPrivate: h.AllowPrivate, Signed: h.Secret() != nil, MaxAttempts: h.MaxAttempts}
		if own[h.Name] {
			hv.Scope = "repo"
		}
		if d, ok := last[h.Name]; ok {
			v := view(d)
			hv.Last = &v
		}
		hs = append(hs, hv)
	}
	if f.json {
		if hs == nil {
			hs = []HookView{}
		}
		return sshcmd.WriteJSON(stdout, stderr, hs)
	}
	if len(hs) == 0 {
		fmt.Fprintf(stdout, "No webhooks for %s.\n", repo)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOOK\tFOR\tFORMAT\tEVENTS\tURL\tLAST DELIVERY")
	for _, h := range hs {
		last := "none yet"
		if d := h.Last; d != nil {
			last = fmt.Sprintf("#%d %s %s", d.ID, d.Event, d.State)
			if d.StatusCode != 0 {
				last += fmt.Sprintf(" (%d)", d.StatusCode)
			}
			last += " " + d.Created.Format("2006-01-02 15:04 MST")
		}
		events := ""
		for i, e := range h.Events {
			if i > 0 {
				events += ","
			}
			events += e
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.Name, h.Scope, h.Format, events, termsafe.Line(h.URL), last)
	}
	tw.Flush()
	return 0
}

func (c *commands) deliveries(ctx context.Context, who gitserver.Caller, args []string, stdout, stderr io.Writer) int {
	f, ok := parseFlags("deliveries", args, stderr)
	if !ok || len(f.args) < 1 || len(f.args) > 2 {
		return sshcmd.Fail(stderr, "usage: deliveries REPO [HOOK] [--failed] [--limit N] [--json]")
	}
	_, repo, err := c.writer(ctx, who, f.args[0])
	if err != nil {
		return sshcmd.Fail(stderr, "%v", err)
	}
	q := record.DeliveryQuery{Repo: repo, Failed: f.failed, Limit: f.limit}
	if len(f.args) == 2 {
		q.Hook = f.args[1]
	}
	ds, err := c.l.ListDeliveries(ctx, q)
	if err != nil {
		return sshcmd.Fail(stderr, "%v", err)
	}
	if f.json {
		vs := []DeliveryView{}
		for _, d := range ds {
			vs = append(vs, view(d))
		}
		return sshcmd.WriteJSON(stdout, stderr, vs)
	}
	if len(ds) == 0 {
		fmt.Fprintln(stdout, "No deliveries.")
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tHOOK\tEVENT\tSTATE\tSTATUS\tATTEMPTS\tNEXT ATTEMPT\tCREATED\tERROR")
	for _, d := range ds {
		status, next := "-", "-"
		if d.StatusCode != 0 {
			status = strconv.Itoa(d.StatusCode)
		}
		if d.State == record.DeliveryPending {
			next = d.NextAttempt.Format("2006-01-02 15:04:05 MST")
		}
		msg := d.Error
		if msg == "" {
			msg = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s#%d\t%s\t%s\t%d\t%s\t%s\t%s\n", d.ID, d.Hook, d.EventKind, d.EventID, d.State, status,
			d.Attempts, next, d.Created.Format("2006-01-02 15:04:05 MST"), termsafe.Line(msg))
	}
	tw.Flush()
	return 0
}

// get reads delivery id for who, who must be able to write its
// repository; another's delivery is "no such delivery", as a missing one.
func (c *commands) get(ctx context.Context, who gitserver.Caller, arg string) (record.Delivery, *configs.Config, error) {
	id, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || id <= 0 {
		return record.Delivery{}, nil, fmt.Errorf("%q is not a delivery id", termsafe.Line(arg))
	}
	notFound := fmt.Errorf("no delivery %d that you may see", id)
	d, err := c.l.GetDelivery(ctx, id)
	if errors.Is(err, record.ErrNotFound) {
		return d, nil, notFound
	}
	if err != nil {
		return d, nil, err
	}
	cfg, _, err := c.writer(ctx, who, d.Repo)
	if err != nil {
		return record.Delivery{}, nil, notFound
	}
	return d, cfg, nil
}

func (c *commands) delivery(ctx context.Context, who gitserver.Caller, args []string, stdout, stderr io.Writer) int {
	f, ok := parseFlags("delivery", args, stderr)
	if !ok || len(f.args) != 1 {
		return sshcmd.Fail(stderr, "usage: delivery ID [--json]")
	}
	d, _, err := c.get(ctx, who, f.args[0])
	if err != nil {
		return sshcmd.Fail(stderr, "%v", err)
	}
	v := view(d)
	if f.json {
		return sshcmd.WriteJSON(stdout, stderr, v)
	}
	// Everything here but our own ids may come from the receiver: shown
	// safe for a terminal.
	w := termsafe.NewWriter(stdout)
	fmt.Fprintf(w, "delivery %d (%s): %s of event %d to hook %s of %s\n", d.ID, d.UID, d.EventKind, d.EventID, d.Hook, d.Repo)
	fmt.Fprintf(w, "url: %s\nstate: %s after %d attempt(s)", v.URL, d.State, d.Attempts)
	if d.StatusCode != 0 {
		fmt.Fprintf(w, ", status %d", d.StatusCode)
	}
	if v.NextAttempt != nil {
		fmt.Fprintf(w, ", next attempt %s", v.NextAttempt.Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	if d.Error != "" {
		fmt.Fprintf(w, "error: %s\n", d.Error)
	}
	if d.RedeliveryOf != 0 {
		fmt.Fprintf(w, "sends again: delivery %d\n", d.RedeliveryOf)
	}
	fmt.Fprintf(w, "\n== request\n%s\n%s\n", d.RequestHeaders, d.RequestBody)
	fmt.Fprintf(w, "\n== response\n%s\n%s\n", d.ResponseHeaders, d.ResponseBody)
	w.Close()
	return 0
}

func (c *commands) redeliver(ctx context.Context, who gitserver.Caller, args []string, stdout, stderr io.Writer) int {
	f, ok := parseFlags("redeliver", args, stderr)
	if !ok || len(f.args) != 1 || f.json || f.failed {
		return sshcmd.Fail(stderr, "usage: redeliver ID")
	}
	d, cfg, err := c.get(ctx, who, f.args[0])
	if err != nil {
		return sshcmd.Fail(stderr, "%v", err)
	}
	h, ok := cfg.WebhookOf(d.Repo, d.Hook)
	if !ok {
		return sshcmd.Fail(stderr, "webhook %s of %s is no longer configured", d.Hook, d.Repo)
	}
	uid := rand.Text()
	body := d.RequestBody
	if d.Format == "json" {
		var p Payload
		if err := json.Unmarshal(body, &p); err != nil {
			return sshcmd.Fail(stderr, "read delivery %d's body: %v", d.ID, err)
		}
		p.Delivery = uid
		if body, err = Body(p, "json"); err != nil {
			return sshcmd.Fail(stderr, "%v", err)
		}
	}
	nd := record.Delivery{UID: uid, Hook: d.Hook, Repo: d.Repo, URL: h.URL, EventID: d.EventID, EventKind: d.EventKind,
		Format: d.Format, RequestBody: body, RedeliveryOf: d.ID}
	out, err := c.l.FanOutDeliveries(ctx, []record.Delivery{nd}, "", 0)
	if err != nil {
		return sshcmd.Fail(stderr, "%v", err)
	}
	c.s.poke()
	fmt.Fprintf(stdout, "delivery %d queued: %s of event %d to %s again (id %s; see deliveries %s %s)\n",
		out[0].ID, d.EventKind, d.EventID, d.Hook, uid, d.Repo, d.Hook)
	return 0
}
