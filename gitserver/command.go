package gitserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Caller is the authenticated user who runs a command, as derived from the
// key that signed the SSH authentication.
type Caller struct {
	User           string
	KeyFingerprint string // SHA256:... of the verified key
}

// Command is an SSH command that another package adds to the server (builds,
// log, cancel, ...). Run is called once per invocation with the arguments
// after the command's name; its return value is the exit status. ctx is
// cancelled when the client disconnects or the server is stopped, and Run
// should return soon after. Run may be called concurrently.
type Command struct {
	Usage   string // "log ID [-f]"
	Summary string // one line for `help`
	Run     func(ctx context.Context, c Caller, args []string, stdout, stderr io.Writer) int
}

// The git services a client may ask for, by the name it sends.
const (
	UploadPack    = "git-upload-pack"
	ReceivePack   = "git-receive-pack"
	UploadArchive = "git-upload-archive"
)

// CommandLine is an SSH command line split into words.
type CommandLine struct {
	// Name is the first word; "git upload-pack" (with a space, as some
	// clients send it) is normalised to "git-upload-pack".
	Name string
	Args []string
}

// IsGit reports whether the line asks for one of the git services.
func (c CommandLine) IsGit() bool {
	return c.Name == UploadPack || c.Name == ReceivePack || c.Name == UploadArchive
}

// Limits on what a client may send as a command line. Git sends one short
// path; the limits only keep hostile input cheap.
const (
	maxCommandLen  = 4096
	maxCommandArgs = 64
)

// ErrCommandSyntax is wrapped by every error of ParseCommand.
var ErrCommandSyntax = errors.New("bad command line")

// ParseCommand splits an SSH command line into words the way a POSIX shell
// would for the quoting git uses: words separated by blanks, single-quoted
// text taken literally, a backslash outside quotes escaping the next
// character, and double-quoted text with \" and \\ escapes. Git quotes a
// path containing a quote like this:
//
//	git-upload-pack 'it'\''s.git'
//
// There is no expansion of any kind. A git service must have exactly one
// argument, the repository path.
func ParseCommand(line string) (CommandLine, error) {
	if len(line) > maxCommandLen {
		return CommandLine{}, fmt.Errorf("%w: longer than %d bytes", ErrCommandSyntax, maxCommandLen)
	}
	words, err := splitWords(line)
	if err != nil {
		return CommandLine{}, err
	}
	if len(words) == 0 {
		return CommandLine{}, fmt.Errorf("%w: empty", ErrCommandSyntax)
	}
	cl := CommandLine{Name: words[0], Args: words[1:]}
	if cl.Name == "git" && len(cl.Args) > 0 {
		switch cl.Args[0] {
		case "upload-pack", "receive-pack", "upload-archive":
			cl = CommandLine{Name: "git-" + cl.Args[0], Args: cl.Args[1:]}
		}
	}
	if cl.IsGit() && len(cl.Args) != 1 {
		return CommandLine{}, fmt.Errorf("%w: usage: %s REPO", ErrCommandSyntax, cl.Name)
	}
	return cl, nil
}

func splitWords(line string) ([]string, error) {
	var (
		words   []string
		cur     strings.Builder
		inWord  bool
		quote   byte // 0, '\'' or '"'
		escaped bool
	)
	for i := 0; i < len(line); i++ {
		c := line[i]
		if c < 0x20 && c != '\t' || c == 0x7f {
			return nil, fmt.Errorf("%w: control character at byte %d", ErrCommandSyntax, i)
		}
		switch {
		case escaped:
			cur.WriteByte(c)
			escaped = false
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case quote == '"':
			switch {
			case c == '"':
				quote = 0
			case c == '\\' && i+1 < len(line) && (line[i+1] == '"' || line[i+1] == '\\'):
				i++
				cur.WriteByte(line[i])
			default:
				cur.WriteByte(c)
			}
		case c == ' ' || c == '\t':
			if inWord {
				if len(words) == maxCommandArgs {
					return nil, fmt.Errorf("%w: more than %d words", ErrCommandSyntax, maxCommandArgs)
				}
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\\':
			escaped, inWord = true, true
		case c == '\'' || c == '"':
			quote, inWord = c, true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	switch {
	case quote != 0:
		return nil, fmt.Errorf("%w: unterminated %c quote", ErrCommandSyntax, quote)
	case escaped:
		return nil, fmt.Errorf("%w: trailing backslash", ErrCommandSyntax)
	}
	if inWord {
		if len(words) == maxCommandArgs {
			return nil, fmt.Errorf("%w: more than %d words", ErrCommandSyntax, maxCommandArgs)
		}
		words = append(words, cur.String())
	}
	return words, nil
}
