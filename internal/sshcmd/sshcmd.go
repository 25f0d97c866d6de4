package sshcmd

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
)

// Fail prints one line, "slipway: " and the message, and returns exit
// status 1.
func Fail(stderr io.Writer, format string, args ...any) int {
	fmt.Fprintf(stderr, "slipway: "+format+"\n", args...)
	return 1
}

// Parse parses args with fs, flags before, between or after the
// arguments, and returns the arguments in their order. fs should be made
// with flag.ContinueOnError and its output discarded: the caller words
// the error.
func Parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return rest, err
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
	return rest, nil
}

// NewFlags is a flag set for Parse: errors returned, nothing printed.
func NewFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// WriteJSON writes v as indented JSON and returns the exit status: 1,
// with the reason on stderr, when it cannot be written.
func WriteJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return Fail(stderr, "%v", err)
	}
	return 0
}
