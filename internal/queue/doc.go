// Package queue is the skeleton every work queue of Slipway shares (builds,
// deployments): a fixed number of workers that claim work from the
// database, which is the only record of what is queued, sleep on a wake
// channel (with a slow tick as a safety net) instead of polling, and stop in
// two stages — stop claiming, then, when the caller's patience ends, cancel
// what runs with a cause. It also holds Signal, the broadcast that tells
// waiters something changed.
package queue
