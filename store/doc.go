// Package store is Slipway's only record of what happened and what is still to
// do: every accepted push with its ref updates, the build queue, deployments and
// the last fire time of each schedule all live in one SQLite database
// (modernc.org/sqlite, pure Go, so the binary needs no C toolchain).
//
// The package keeps no mirror of the queue in memory: a queued build or
// deployment exists exactly when its row does, so a crash loses nothing that was
// acknowledged. Writes go through a single connection (BEGIN IMMEDIATE, so a
// transaction never has to upgrade a read lock and fail with SQLITE_BUSY
// halfway) and reads through a separate read-only pool, which WAL mode lets run
// beside the writer. Each operation that must be atomic for callers, such as
// recording a push together with the builds it enqueues, is one transaction,
// and a check that decides whether to queue (a newer automatic deployment
// exists, a deployment is still the latest to retry) is read inside the
// transaction that queues: reads through the pool may be stale by the time
// the writer commits.
//
// Times are stored as Unix nanoseconds in UTC and come back as UTC time.Time
// values; an unset time (a build not yet started) is NULL in the database and
// the zero time.Time in Go.
//
// The schema is created and upgraded in code by Open: migrations are Go
// strings applied in order, each in its own transaction together with the row
// in schema_migrations that records it, so opening an older database brings it
// up to date and a half-applied migration cannot exist.
package store
