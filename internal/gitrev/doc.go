// Package gitrev answers small questions about revisions in a bare
// repository with git itself: which commit an object id names once annotated
// tags are peeled. It runs git rather than go-git because the answer is
// sometimes needed in pre-receive, while the pushed objects are still in
// git's quarantine folder, which only git (given the quarantine environment)
// can read.
package gitrev
