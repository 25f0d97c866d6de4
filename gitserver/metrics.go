package gitserver

import "time"

// Metrics counts what the server does, for /metrics (package metrics
// provides it). Its methods are called on the connections' and sessions'
// own paths, concurrently, and must not block.
type Metrics interface {
	// SSHConnection counts a connection reaching stage: "accepted" (let
	// in, not authenticated yet), "authenticated" (its key's signature
	// verified, a session slot given), "over_limit" (verified, but at
	// ssh.max_sessions or max_sessions_per_user: let in only to read why).
	SSHConnection(stage string)
	// SSHRefused counts a connection refused, or closed before it
	// authenticated, for reason: "max_startups", "per_source_max_startups",
	// "gave_way", "handshake_timeout" or "failed".
	SSHRefused(reason string)
	// GitOperation counts one git service run: kind is "fetch"
	// (git-upload-pack), "push" (git-receive-pack) or "archive"
	// (git-upload-archive); ok says whether git exited 0.
	GitOperation(kind string, ok bool, took time.Duration)
}

// noMetrics counts nothing.
type noMetrics struct{}

func (noMetrics) SSHConnection(string)                     {}
func (noMetrics) SSHRefused(string)                        {}
func (noMetrics) GitOperation(string, bool, time.Duration) {}

// String is the reason's label value in SSHRefused.
func (r refusal) String() string {
	switch r {
	case overPerSource:
		return "per_source_max_startups"
	case overStartups:
		return "max_startups"
	case gaveWay:
		return "gave_way"
	case timedOut:
		return "handshake_timeout"
	}
	return "failed"
}

// gitKind is the kind of operation a git service is, in Metrics' words.
func gitKind(service string) string {
	switch service {
	case ReceivePack:
		return "push"
	case UploadArchive:
		return "archive"
	}
	return "fetch"
}

// Connections returns how many connections are open now that have not
// authenticated yet, and how many hold a session slot. It takes no lock
// the connections take: it is read by the metrics' scrape.
func (s *Server) Connections() (preauth, authenticated int) {
	return int(s.startups.open.Load()), int(s.authedNow.Load())
}
