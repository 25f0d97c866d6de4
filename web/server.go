package web

import (
	"context"
	"crypto/tls"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"time"

	"slipway/configs"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configure a Server. Config is required.
type Options struct {
	Config configs.Source
	Logger *slog.Logger // nil discards
	// Repos lists the repositories on disk (canonical names, sorted).
	Repos RepoLister
	// Metrics serves the Prometheus metrics at /metrics, behind the
	// bearer token of [http] metrics_token_file; nil: no /metrics.
	Metrics http.Handler
	// BuildLogs and DeployLogs give the logs and states of builds and
	// deployments (build.Service, deploy.Service); Badges what the badges
	// show (store.Store). Nil: none to show.
	BuildLogs  BuildLogs
	DeployLogs DeployLogs
	Badges     Badges

	// Sessions and Tokens keep the sessions of signed-in browsers and the
	// API tokens; nil: nobody can sign in, and no token is accepted.
	Sessions Sessions
	Tokens   Tokens
	// Addr is the address the web side listens on, for the links `ssh
	// HOST login` prints when [http] public_url is not set; "" when the
	// web side is off.
	Addr string
	// Now is the clock of sessions, links and tokens; nil: time.Now.
	Now func() time.Time

	// Views is the read model the JSON API and the pages serve (package
	// views); nil leaves the API out.
	Views ReadModel
	// Releases is the release gate the build page asks (deploy.Service);
	// ArtifactsDir where passed builds keep their artifacts
	// (<dir>/<build id>/); CloneURL the repositories' SSH address
	// ("ssh://HOST:PORT"), for the commands the pages show.
	Releases     ReleaseGate
	ArtifactsDir string
	CloneURL     string
}

// RepoLister lists the repositories on disk.
type RepoLister interface {
	Repos(ctx context.Context) ([]string, error)
}

// Server is the web side. It is safe for concurrent use.
type Server struct {
	o     Options
	log   *slog.Logger
	pages *template.Template
	mux   *http.ServeMux
	http  *http.Server

	// streams ends the live logs when the server stops (see liveRoutes);
	// pingEvery is their keep-alive; hubs are the runs followed, each
	// follower at most hubQueue events behind (sse.go).
	streams    context.Context
	endStreams context.CancelFunc
	pingEvery  time.Duration
	hubQueue   int
	hubs       hubs
	renders    chan struct{} // lines rendered at once from log files (sse.go)

	links   *links  // pending login links
	touched touched // when each token's use was last written
	tasks   tasks   // writes requests started and did not wait for

	// viewerFor, set only by tests, says who a request comes from in place
	// of the auth part, and stands for a request that passed its write
	// check.
	viewerFor func(*http.Request) viewer
}

// Timeouts of the HTTP server: headers must come quickly (a slow client
// cannot hold a connection open by trickling them), and an idle
// keep-alive connection is closed. Responses have no write timeout: live
// logs stream for as long as a build runs.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
)

// New builds the server and its routes. It does not listen; call Serve.
func New(o Options) (*Server, error) {
	if o.Config == nil {
		return nil, errors.New("web: no config")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pages, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("web: templates: %w", err)
	}
	s := &Server{o: o, log: log, pages: pages, mux: http.NewServeMux(), links: newLinks(), touched: touched{last: map[int64]time.Time{}}}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("web: static files: %w", err)
	}
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", staticHandler(static)))
	s.mux.HandleFunc("GET /{$}", s.index)
	s.liveRoutes()
	s.authRoutes()
	s.metricsRoutes()
	s.apiRoutes()
	s.pageRoutes()
	// The paths of a repository (/team/app/badge.svg: its name may hold
	// slashes) are told apart by their end; what none matches is a 404.
	s.mux.HandleFunc("/", s.repoPaths)
	s.http = &http.Server{
		Handler:           s.authenticate(s.mux),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// Handler is the server's routes, for tests.
func (s *Server) Handler() http.Handler { return s.http.Handler }

// Serve answers on ln until Shutdown, with TLS (and HTTP/2) when the
// configuration names a certificate; it then returns http.ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	h := s.o.Config.Current().HTTP
	if h.TLSCert == "" {
		return s.http.Serve(ln)
	}
	s.http.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	return s.http.ServeTLS(ln, h.TLSCert, h.TLSKey)
}

// Shutdown ends the live logs (their clients get the stream's end and
// reconnect to whoever serves next), stops accepting requests and waits
// for the running ones until ctx ends, then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.endStreams()
	err := s.http.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		s.http.Close()
	}
	s.waitBackground(ctx)
	return err
}

// staticHandler serves the embedded assets; they change only with the
// binary, which the version in their links says.
func staticHandler(static fs.FS) http.Handler {
	files := http.FileServerFS(static)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
}
