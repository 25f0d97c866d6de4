package configs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Webhook is an HTTP endpoint told about events: [[webhook]] for every
// repository, [[repo.webhook]] for one.
type Webhook struct {
	// Name tells the hook apart in `webhooks` and `deliveries`; unique
	// among the hooks a repository gets. Default: the URL's host (with
	// "-2", "-3", ... when taken).
	Name string `toml:"name"`
	// URL is where deliveries are POSTed: http or https.
	URL string `toml:"url"`
	// Events are the kinds sent (record.EventKinds). Default: the
	// finished ones, DefaultWebhookEvents.
	Events []string `toml:"events"`
	// SecretFile holds the HMAC-SHA256 key of X-Slipway-Signature, read
	// with the configuration (at start and at each reload); never inline.
	// Without it deliveries carry no signature.
	SecretFile string `toml:"secret_file"`
	// Format is "json" (the default, the versioned payload), "slack"
	// ({"text": ...}) or "matrix" ({"msgtype": "m.text", "body": ...}).
	Format string `toml:"format"`
	// Branches, path.Match patterns, narrow the events of builds and
	// pushes to those of these branches. Default: every branch.
	Branches []string `toml:"branches"`
	// AllowPrivate lets the hook reach loopback, private, link-local and
	// other internal addresses, which are refused by default (SSRF).
	AllowPrivate bool `toml:"allow_private"`
	// MaxAttempts caps the attempts at a delivery. Default: 8.
	MaxAttempts int `toml:"max_attempts"`

	secret []byte
}

// Webhooks are the settings every webhook shares ([webhooks]).
type Webhooks struct {
	// Timeout bounds one attempt, from dialling to the end of the
	// answer. Default: "10s".
	Timeout Duration `toml:"timeout"`
	// RetryBase is the first retry's delay; each next one doubles it,
	// with jitter. Default: "30s" (8 attempts span about an hour).
	RetryBase Duration `toml:"retry_base"`
	// Workers is how many deliveries are sent at once. Default: 4.
	Workers int `toml:"workers"`
}

// Webhook defaults.
const (
	DefaultWebhookTimeout     = 10 * time.Second
	DefaultWebhookRetryBase   = 30 * time.Second
	DefaultWebhookWorkers     = 4
	DefaultWebhookMaxAttempts = 8
	maxWebhookSecret          = 4096
)

// WebhookEventKinds are the kinds a hook may ask for (record.EventKinds;
// configs imports nothing of ours).
var WebhookEventKinds = []string{"push", "build.started", "build.finished", "deploy.started",
	"deploy.finished", "release.refused", "schedule.skipped"}

// DefaultWebhookEvents are the "finished" events a hook gets when it names
// none: results, not progress.
var DefaultWebhookEvents = []string{"build.finished", "deploy.finished", "release.refused"}

// WebhookFormats are the body formats.
var WebhookFormats = []string{"json", "slack", "matrix"}

// Secret is the HMAC key read from SecretFile, or nil.
func (w *Webhook) Secret() []byte { return w.secret }

// Wants reports whether the hook asks for events of kind.
func (w *Webhook) Wants(kind string) bool { return slices.Contains(w.Events, kind) }

// WantsBranch reports whether the hook's branch filter lets through an
// event of ref (a full ref name); refs that are no branch pass only
// without a filter.
func (w *Webhook) WantsBranch(ref string) bool {
	if len(w.Branches) == 0 {
		return true
	}
	branch, ok := strings.CutPrefix(ref, "refs/heads/")
	if !ok {
		return false
	}
	for _, p := range w.Branches {
		if ok, _ := path.Match(p, branch); ok {
			return true
		}
	}
	return false
}

// WebhooksOf returns the hooks of a repository: the top-level ones, then
// its own. Their names are unique.
func (c *Config) WebhooksOf(repo string) []Webhook {
	out := slices.Clone(c.Webhooks)
	if r, ok := c.repos[repo]; ok {
		out = append(out, r.Webhooks...)
	}
	return out
}

// WebhookOf returns the hook called name of a repository.
func (c *Config) WebhookOf(repo, name string) (*Webhook, bool) {
	for _, hs := range [][]Webhook{c.Webhooks, c.RepoOrDefault(repo).Webhooks} {
		for i := range hs {
			if hs[i].Name == name {
				return &hs[i], true
			}
		}
	}
	return nil, false
}

func (c *Config) applyWebhookDefaults() {
	w := &c.WebhookSettings
	if w.Timeout.Duration == 0 {
		w.Timeout.Duration = DefaultWebhookTimeout
	}
	if w.RetryBase.Duration == 0 {
		w.RetryBase.Duration = DefaultWebhookRetryBase
	}
	if w.Workers == 0 {
		w.Workers = DefaultWebhookWorkers
	}
}

// validateWebhooks checks the top-level hooks and every repository's,
// fills in their defaults and reads their secrets.
func (c *Config) validateWebhooks(v *validator) {
	c.applyWebhookDefaults()
	if c.WebhookSettings.Workers < 0 {
		v.add(v.loc.keyIn("webhooks", -1, "workers"), "webhooks.workers must be positive")
	}
	global := map[string]bool{}
	for j := range c.Webhooks {
		c.validateWebhook(v, &c.Webhooks[j], "webhook", j, 0, "", global)
	}
	for i := range c.Repos {
		r := &c.Repos[i]
		names := map[string]bool{}
		for n := range global {
			names[n] = true
		}
		for j := range r.Webhooks {
			c.validateWebhook(v, &r.Webhooks[j], "repo.webhook", j, v.loc.table("repo", i), r.Name, names)
		}
	}
}

func (c *Config) validateWebhook(v *validator, w *Webhook, table string, j, from int, repo string, names map[string]bool) {
	at := func(key string) int {
		if from == 0 {
			return v.loc.keyIn(table, j, key)
		}
		return v.loc.keyInNth(table, j, key, from)
	}
	who := "webhook"
	if repo != "" {
		who = fmt.Sprintf("repo %q: webhook", repo)
	}
	u, err := url.Parse(w.URL)
	switch {
	case w.URL == "":
		v.add(at("url"), "%s has no url", who)
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		v.add(at("url"), "%s url %q: use an absolute http or https URL", who, truncate(MaskURL(w.URL)))
	case u.Port() != "":
		if n, err := strconv.Atoi(u.Port()); err != nil || n < 1 || n > 65535 {
			v.add(at("url"), "%s url %q: bad port", who, truncate(MaskURL(w.URL)))
		}
	}
	if w.Name == "" && err == nil && u != nil && u.Hostname() != "" {
		base := strings.ToLower(u.Hostname())
		w.Name = base
		for n := 2; names[w.Name]; n++ {
			w.Name = fmt.Sprintf("%s-%d", base, n)
		}
	}
	switch {
	case w.Name == "":
	case checkSegment(w.Name) != nil:
		v.add(at("name"), "%s name %q: use lowercase letters, digits, '.', '_' or '-'", who, truncate(w.Name))
	case names[w.Name]:
		v.add(at("name"), "%s name %q is taken (a [[webhook]] for every repository, or another of this repository)", who, w.Name)
	}
	names[w.Name] = true
	if w.Name != "" {
		who = fmt.Sprintf("%s %q", who, w.Name)
	}
	if len(w.Events) == 0 {
		w.Events = slices.Clone(DefaultWebhookEvents)
	}
	for _, e := range w.Events {
		if !slices.Contains(WebhookEventKinds, e) {
			v.add(v.loc.valueLine(at("events"), e), "%s: unknown event %q (one of %s)", who, truncate(e), strings.Join(WebhookEventKinds, ", "))
		}
	}
	if w.Format == "" {
		w.Format = "json"
	}
	if !slices.Contains(WebhookFormats, w.Format) {
		v.add(at("format"), "%s: format %q: use json, slack or matrix", who, truncate(w.Format))
	}
	for _, p := range w.Branches {
		if _, err := path.Match(p, "x"); err != nil || p == "" {
			v.add(at("branches"), "%s: bad branch pattern %q", who, truncate(p))
		}
	}
	if w.MaxAttempts == 0 {
		w.MaxAttempts = DefaultWebhookMaxAttempts
	}
	if w.MaxAttempts < 1 || w.MaxAttempts > 100 {
		v.add(at("max_attempts"), "%s: max_attempts must be from 1 to 100", who)
	}
	if w.SecretFile != "" {
		s, err := readWebhookSecret(w.SecretFile)
		if err != nil {
			v.add(at("secret_file"), "%s: secret_file: %v", who, err)
		}
		w.secret = s
	}
}

// readWebhookSecret reads an HMAC key file. Surrounding whitespace (an
// editor's final newline) is not part of the key. The error never quotes
// the file's content.
func readWebhookSecret(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("cannot read %s: %w", p, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxWebhookSecret+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", p, err)
	}
	if len(b) > maxWebhookSecret {
		return nil, fmt.Errorf("%s is longer than %d bytes; it should hold one secret, such as `openssl rand -hex 32` prints", p, maxWebhookSecret)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil, fmt.Errorf("%s is empty; it should hold one secret, such as `openssl rand -hex 32` prints", p)
	}
	return []byte(s), nil
}

// MaskURL returns u with what may be a secret hidden: a password or
// user in it, and the values of its query (a token=... that chat
// services put there); a path is shown as it is.
func MaskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		u.User = url.User("***")
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{"***"}
		}
		u.RawQuery = strings.ReplaceAll(q.Encode(), "%2A", "*")
	}
	u.Fragment = ""
	// Chat services put the token in the path (/services/T0/B0/XXXX,
	// /webhook/<uuid>): only short words stay.
	segs := strings.Split(u.Path, "/")
	for i, s := range segs {
		if !plainWord(s) {
			segs[i] = "***"
		}
	}
	u.Path, u.RawPath = strings.Join(segs, "/"), ""
	return strings.ReplaceAll(u.String(), "%2A", "*")
}

// plainWord reports whether a URL path segment is short and made of
// lowercase letters, '-' and '_' only: a word, not a token.
func plainWord(s string) bool {
	if len(s) > 24 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && r != '-' && r != '_' && r != '.' {
			return false
		}
	}
	return true
}
