// Package sshcmd holds what every SSH command of Slipway does the same
// way: parse flags that may follow the arguments ("log 12 -f"), print a
// refusal as one "slipway: " line with exit status 1, and write --json
// output. The commands themselves live with what they show (console,
// web, webhook, gitserver).
package sshcmd
