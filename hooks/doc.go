// Package hooks is the channel between git and the Slipway daemon during a
// push, and the policy that decides which ref updates a push may make.
//
// The daemon owns one hooks directory (given to git as core.hooksPath) whose
// pre-receive and post-receive scripts, written by WriteScripts, only exec
// `slipway hook <name>`. That client (RunClient) is deliberately dumb and
// quick: it reads git's ref updates from stdin, the push options and the
// per-push token from its environment, sends them over a Unix socket to the
// daemon, relays every message it gets back to stderr (git shows them to the
// pusher as "remote:" lines) and exits with the daemon's verdict. It never
// opens the database or reads the configuration.
//
// The daemon side (Server) holds the decisions. It finds out who pushed from
// the token that gitserver registered for the receive-pack session (Registry);
// a hook run without a token comes from someone pushing on the server's own
// disk and is treated as the user "local", who may update branches and tags
// but never release refs. Pre-receive checks every ref against the rights in
// the configuration (and, for refs/release/*, an optional ReleaseGate) and
// lists every refusal. Post-receive records the push through a Recorder (in
// the daemon, package push) in one call before it answers, then runs the
// record's report, whose output streams to the pusher while the hook stays
// open.
//
// A push that must pass before it lands (`git push -o verify`, or a branch
// of the repository's verify_branches) is built in pre-receive, once the
// rights check passed, through a Verifier: the client forwards git's
// quarantine folder (GIT_QUARANTINE_PATH), the daemon accepts it only as a
// quarantine folder of that very repository, and the build's log streams
// to the pusher; the push is refused unless every build passes. A passed
// push keeps its branches held until its receive-pack session ends
// (Registry.OnEnd), and while a push is verified any other push to its
// branches is refused with the reason.
//
// With config_repo on, pushes to the configuration repository go through a
// ConfigRepo too (package configrepo): pre-receive refuses one whose file
// is not a configuration the daemon would run on, with its reasons, and
// post-receive has the accepted one written and reloaded.
//
// The wire protocol is newline-delimited JSON, versioned and bounded; see
// protocol.go. The daemon treats everything the client sends as hostile.
package hooks
