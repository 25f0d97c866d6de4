// Command slipway is a Git host over SSH and a CI/CD engine in one binary.
//
//	slipway serve [--config FILE] [--listen ADDR] [--data DIR]
//	                                run the daemon (embedded default without --config;
//	                                the flags override [ssh] listen and data_dir)
//	slipway hook [--socket S] NAME  run by git for pre-receive and post-receive
//	slipway config check FILE       validate a configuration file
//	slipway config default          print the embedded default configuration
//	slipway config example          print the commented reference configuration
//	slipway version                 print the version
//
// This package only parses flags, wires the packages together and handles
// signals; the work is done in configs, gitserver, hooks, store, build and
// deploy.
package main
