// Command bench measures Slipway against a stock OpenSSH sshd with git-shell
// on loopback, side by side in one run, and prints medians and ratios:
//
//	sudo go run ./bench [-runs 10] [-baseline bench/openssh-baseline.sh]
//
// It needs root (the baseline script creates a local user "gitbench") and the
// openssh-server package. Both servers get the same repositories and the same
// client key; only the server differs. Slipway's figures include its hooks
// (the push is recorded in SQLite before the pusher is answered).
package main
