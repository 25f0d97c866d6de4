// Package build turns a recorded push into a tested revision: it reads the
// pipeline file (.slipway.toml) from the pushed commit, queues a build per
// updated branch in the database, and lets workers check the commit out into a
// fresh workspace and run its steps in a bubblewrap sandbox, storing the log and
// the artifacts of a passing build. Its parts live in sub-packages with one job
// each: pipeline (the file), checkout (the workspace), sandbox (isolation and
// limits) and logs (stored, masked, followable build logs).
package build
