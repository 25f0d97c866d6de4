// Package web is Slipway's web side, served by the daemon itself: the
// dashboard (server-rendered pages that work without JavaScript), live
// logs over Server-Sent Events, badges, the JSON API under /api/v1 and
// Prometheus metrics.
//
// Identity on the web comes from SSH keys too: a one-time link printed by
// `ssh HOST login` opens a session, and `ssh HOST token create` makes API
// tokens. What a request may see and do is decided, like everything else,
// by the configuration in force (configs.Source) for the viewer's user;
// anonymous viewers see only repositories marked public = true.
//
// No handler takes a lock that pushes or builds wait for: pages read the
// store and the services' listings, never the workers' state.
package web
