package views

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"slipway/build/schedule"
	"slipway/configs"
	"slipway/deploy"
	"slipway/record"
)

// Caller is who asks.
type Caller struct {
	// User is the configured user, or "" for an anonymous caller.
	User string
	// Scope bounds what the caller may do whatever User may: an API
	// token's scope; configs.Admin for an SSH session or a web session.
	Scope configs.Access
	// Public makes repositories marked `public = true` readable by this
	// caller whatever its rights: the web side's rule (public is a
	// setting of the web side; SSH sessions leave it false).
	Public bool
}

// SSH is the caller of an SSH command: the user with all of their rights.
func SSH(user string) Caller { return Caller{User: user, Scope: configs.Admin} }

// Access is what c may do with repo under cfg: the user's rights within
// the scope, plus read on a public repository for a caller that sees
// those.
func (c Caller) Access(cfg *configs.Config, repo string) configs.Access {
	var a configs.Access
	if c.User != "" {
		a = cfg.Access(c.User, repo) & c.Scope
	}
	if c.Public {
		if r, ok := cfg.Repo(repo); ok && r.Public {
			a |= configs.Read
		}
	}
	return a
}

// The kinds of refusal callers branch on (a status code on the web, a
// message over SSH); returned errors wrap them and read as one sentence.
var (
	// ErrNotFound: no such object, or one the caller may not read.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: a malformed argument (an id, a name, a filter).
	ErrInvalid = errors.New("invalid")
	// ErrForbidden: the caller may read the object but not do this.
	ErrForbidden = errors.New("forbidden")
	// ErrConflict: the object is in a state that does not allow it (a
	// build that already ended cannot be cancelled).
	ErrConflict = errors.New("conflict")
)

// refusal is an error a caller shows as it is: its message is one
// sentence for people, and it matches one of the kinds above.
type refusal struct {
	kind error
	msg  string
}

func (r *refusal) Error() string        { return r.msg }
func (r *refusal) Is(target error) bool { return target == r.kind }

func refuse(kind error, format string, args ...any) error {
	return &refusal{kind: kind, msg: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return refuse(ErrNotFound, format+" not found", args...)
}

// RepoLister lists the repositories on disk (canonical names, sorted).
type RepoLister interface {
	Repos(ctx context.Context) ([]string, error)
}

// Records is what the views read from the store.
type Records interface {
	QueryBuilds(ctx context.Context, q record.BuildQuery) ([]record.Build, error)
	GetBuild(ctx context.Context, id int64) (record.Build, error)
	QueryDeployments(ctx context.Context, q record.DeploymentQuery) ([]record.Deployment, error)
	GetDeployment(ctx context.Context, id int64) (record.Deployment, error)
	DeploymentHosts(ctx context.Context, id int64) ([]record.DeploymentHost, error)
	QueryPushes(ctx context.Context, q record.PushQuery) ([]record.Push, error)
	GetPush(ctx context.Context, id int64) (record.Push, error)
	PushWork(ctx context.Context, id int64) ([]record.Build, []record.Deployment, error)
	LastPushes(ctx context.Context) (map[string]record.Push, error)
}

// Builds is what the actions and logs need of the build service.
type Builds interface {
	Follow(ctx context.Context, id int64, w io.Writer, follow bool) error
	CancelBy(ctx context.Context, id int64, user string) error
	Retry(ctx context.Context, id int64) (record.Build, error)
}

// Deploys is what the views need of the deployment service.
type Deploys interface {
	Releases(ctx context.Context, repo, env string) (deploy.Listing, error)
	Follow(ctx context.Context, id int64, w io.Writer, follow bool) error
	Retry(ctx context.Context, id int64, user string) (record.Deployment, error)
}

// Schedules is what the views need of the scheduler.
type Schedules interface {
	List(ctx context.Context, repo string) ([]schedule.Status, error)
	RunNow(ctx context.Context, repo, name, user string) ([]record.Build, error)
}

// LogFiles opens stored build and deployment logs for reading by range
// (build/logs.Store);
// a log that does not exist is an error wrapping logs.ErrNotFound.
type LogFiles interface {
	Open(id string) (*os.File, error)
}

// Options are what the views read and act through. Config and Records are
// required; a nil service leaves its queries and actions failing with a
// plain error (tests give only what they use).
type Options struct {
	Config    configs.Source
	Repos     RepoLister
	Records   Records
	Builds    Builds
	Deploys   Deploys
	Schedules Schedules
	Logs      LogFiles
	Revisions Revisions // `status`
}

// Service answers the queries and runs the actions. It keeps no state of
// its own and is safe for concurrent use.
type Service struct{ o Options }

// New checks o and returns the views.
func New(o Options) (*Service, error) {
	if o.Config == nil || o.Records == nil {
		return nil, errors.New("views: Config and Records are required")
	}
	return &Service{o: o}, nil
}

// DefaultLimit is the length of a listing page when the caller names none.
const DefaultLimit = 20

// ParseID reads the id of a build or deployment ("12" or "#12"); what
// names the kind in the message ("build", "deployment").
func ParseID(what, s string) (int64, error) {
	id, err := strconv.ParseInt(strings.TrimPrefix(s, "#"), 10, 64)
	if err != nil || id <= 0 {
		if len(s) > 32 {
			s = s[:32] + "..."
		}
		return 0, refuse(ErrInvalid, "%q is not a %s id", s, what)
	}
	return id, nil
}

// config is the snapshot a request is answered with.
func (s *Service) config(ctx context.Context) *configs.Config {
	return configs.Snapshot(ctx, s.o.Config)
}

// readableRepo returns the canonical name of a repository c may read, or
// the refusal (a hidden repository is "not found").
func (s *Service) readableRepo(cfg *configs.Config, c Caller, arg string) (string, error) {
	name, err := configs.CleanRepoName(arg)
	if err != nil {
		return "", refuse(ErrInvalid, "%v", err)
	}
	if !c.Access(cfg, name).Has(configs.Read) {
		return "", notFound("repository %q", name)
	}
	return name, nil
}

// readable narrows a listing to what c may read: the one repository asked
// for, or every one c may read. all is true when that is every repository
// there is (no filter needed); none when it is no repository at all.
func (s *Service) readable(cfg *configs.Config, c Caller, repo string) (repos []string, none bool, err error) {
	if repo != "" {
		name, err := s.readableRepo(cfg, c, repo)
		if err != nil {
			return nil, false, err
		}
		return []string{name}, false, nil
	}
	if u, ok := cfg.User(c.User); ok && u.Admin && c.Scope.Has(configs.Read) {
		return nil, false, nil // admins read every repository, configured or not
	}
	// Others read configured repositories only.
	for _, r := range cfg.Repos {
		if c.Access(cfg, r.Name).Has(configs.Read) {
			repos = append(repos, r.Name)
		}
	}
	return repos, len(repos) == 0, nil
}

// check turns a store's "not found" into the caller's, and leaves other
// errors as they are.
func check(err error, format string, args ...any) error {
	if errors.Is(err, record.ErrNotFound) {
		return notFound(format, args...)
	}
	return err
}

// BuildURL is the dashboard's page of build id under [http] public_url,
// or "" when no public URL is configured.
func (v *Service) BuildURL(ctx context.Context, id int64) string {
	return configs.Snapshot(ctx, v.o.Config).BuildURL(id)
}
