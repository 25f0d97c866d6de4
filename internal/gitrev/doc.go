// Package gitrev is the one home of what Slipway knows about revisions and
// ref names: the release ref namespace, ids and refs as people read them
// (Short, ShortRef), and, asked of git itself, which commit an object id
// names once annotated tags are peeled (Peel). Peel runs git rather than
// go-git because the answer is sometimes needed in pre-receive, while the
// pushed objects are still in git's quarantine folder, which only git
// (given the quarantine environment) can read.
package gitrev
