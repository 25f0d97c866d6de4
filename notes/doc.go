// Package notes puts build and deployment results where git users
// already look: in git notes on the commit, under refs/notes/slipway of
// the repository's bare repo.
//
// A [Service] reads the event outbox (store: its cursor is "notes") and,
// for every build.finished and deploy.finished, appends one [Line] to the
// note of the event's commit with a [Writer]. The Writer uses git's
// plumbing, never a push, and runs git with its hooks off, so a note is
// no push to record nor a ref to build. It swaps the notes ref with
// compare-and-swap (git update-ref NEW OLD) and starts again from the new
// value when another writer moved it first, so that concurrent writers
// (in this process or not) never lose a line; a line already in the note
// is not added again, which makes the outbox's at-least-once delivery
// write each line once.
//
// Clients fetch the notes (git fetch origin refs/notes/slipway:refs/notes/slipway)
// and read them with git log --notes=slipway; pre-receive refuses every
// push to the ref (package hooks).
package notes
