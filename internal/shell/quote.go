// Package shell quotes words for a POSIX shell, for the scripts Slipway
// writes (hook scripts) and sends (deployment commands over SSH).
package shell

import "strings"

// Quote quotes s for a POSIX shell, so that any byte reaches the command
// intact: inside single quotes nothing is special but the single quote
// itself, which is closed, escaped and reopened.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
