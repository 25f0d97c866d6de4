// Command slipway is a Git host over SSH and a CI/CD engine in one binary.
//
//	slipway serve [--config FILE]   run the daemon (embedded default without --config)
//	slipway hook [--socket S] NAME  run by git for pre-receive and post-receive
//	slipway config check FILE       validate a configuration file
//	slipway version                 print the version
//
// This package only parses flags, wires the packages together and handles
// signals; the work is done in configs, gitserver, hooks, store, build and
// deploy.
package main
