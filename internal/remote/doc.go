// Package remote is the one home of the rules for a remote deploy target as
// the configuration writes it ("user@host:/path", "host:/path",
// "user@[::1]:/path", "ssh://user@host:2222/path"): how it splits, and
// which logins, hosts and paths are let through, so that they can be put on
// an ssh or rsync command line without being read as an option or needing
// quotes on either side. configs checks a file's targets with it when the
// file is read, deploy again when it connects; neither imports the other,
// and both give the same answer in the same words.
package remote
