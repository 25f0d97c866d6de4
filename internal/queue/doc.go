// Package queue is the skeleton every work queue of Slipway shares (builds,
// deployments): a fixed number of workers that claim work from the
// database, which is the only record of what is queued, sleep on a wake
// channel (with a slow tick as a safety net) instead of polling, and stop in
// two stages — stop claiming, then, when the caller's patience ends, cancel
// what runs with a cause. It also holds Signal, the broadcast that tells
// waiters something changed, and Background, the loops of a service that
// reads the outbox (notes, webhooks) from its Start to its Shutdown.
package queue
