// Package push is the one way a push flows once git has accepted it.
//
// Post-receive hands every accepted push to a [Handler]. The Handler asks
// each [Part] (builds, deployments) to plan what the push asks of it (the
// builds of updated branches, the deployments of release refs), records the
// push together with everything planned in one store transaction, lets each
// part set its recorded work going, and only then reports to the pusher,
// part by part. The parts never call each other: data flows one way, from
// the push record to the planners and reporters that read it.
//
// See docs/architecture.md for the whole way of a push.
package push
