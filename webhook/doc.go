// Package webhook tells HTTP endpoints about Slipway's events: signed,
// retried, durable deliveries.
//
// A Service reads the event outbox (store events, migration 10) after its
// cursor "webhooks", matches each event with the hooks of the
// configuration in force ([[webhook]] and [[repo.webhook]]), builds each
// delivery's body from the records (a build's steps and artifact digest,
// a deployment's release, a push's refs) and writes the deliveries and
// the moved cursor in one transaction: an event is fanned out exactly
// once, and a delivery exists before anything is sent.
//
// Senders, a bounded pool, take the oldest pending delivery of each
// (hook, repository) group, so that one repository's events reach a hook
// in order while a hook that retries holds back only its own group. Each
// attempt is POSTed through a Guard's dialer, which refuses internal
// addresses (the address actually dialled, so DNS rebinding does not get
// past it) unless the hook has allow_private, with no proxy and no
// redirects followed, and its outcome is written: delivered on 2xx,
// retried with exponential backoff and jitter (or Retry-After) on network
// errors, 429 and 5xx, failed on other answers or when its attempts run
// out, refused when the guard refused its address. A delivery in flight
// when the daemon dies is sent again after the restart with the same
// X-Slipway-Delivery id: receivers deduplicate by it.
//
// Commands gives the SSH commands webhooks, deliveries, delivery and
// redeliver.
package webhook
