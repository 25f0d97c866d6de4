package executor

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The names of the limits, as Unenforced entries start ("memory: ...") and
// as the build log and the daemon's banner name them.
const (
	LimitProcesses = "processes"
	LimitFileSize  = "file size"
	LimitOpenFiles = "open files"
	LimitMemory    = "memory"
	LimitTmp       = "/tmp"
	LimitWorkspace = "workspace"
	LimitArtifacts = "artifacts"
	// Network is not a limit, but where a step has the host's network
	// although the job asked for none, Unenforced says so under this name.
	Network = "network"
)

// ArtifactsTooLargeError is Result.ArtifactsErr when the artifacts are
// larger than Job.MaxArtifactBytes: nothing of them was kept.
type ArtifactsTooLargeError struct {
	// Size is the sum of the lengths of the artifacts' files.
	Size int64
	// Max is Job.MaxArtifactBytes.
	Max int64
}

func (e *ArtifactsTooLargeError) Error() string {
	return fmt.Sprintf("the artifacts are %s, over the cap of %s", FormatBytes(e.Size), FormatBytes(e.Max))
}

// IsArtifactsTooLarge reports whether err is an *ArtifactsTooLargeError.
func IsArtifactsTooLarge(err error) bool {
	var e *ArtifactsTooLargeError
	return errors.As(err, &e)
}

// FormatBytes says a size the way people read it: "64 MiB" when it is a
// whole number of KiB, MiB or GiB, else "67108865 bytes"; sizes from
// 10 MiB on that are not whole, with one decimal ("3.1 GiB (3328599654
// bytes)"), keeping the exact figure.
func FormatBytes(n int64) string {
	units := []struct {
		size int64
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}}
	for _, u := range units {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + " " + u.name
		}
	}
	for _, u := range units[:2] {
		if n >= 10<<20 && n >= u.size {
			return fmt.Sprintf("%.1f %s (%d bytes)", float64(n)/float64(u.size), u.name, n)
		}
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// DescribeLimits is the one line that says which limits hold: those of l
// and the artifacts' cap, each by its name and size, in force or not (with
// the reason from unenforced) or not set. The build log and the daemon's
// banner both say it this way.
func DescribeLimits(l Limits, maxArtifacts int64, unenforced []string) string {
	why := map[string]string{}
	for _, u := range unenforced {
		name, reason, _ := strings.Cut(u, ":")
		why[name] = strings.TrimSpace(reason)
	}
	count := func(n int64) string { return strconv.FormatInt(n, 10) }
	var held, broken, unset []string
	for _, x := range []struct {
		name   string
		n      int64
		format func(int64) string
	}{
		{LimitProcesses, int64(l.Procs), count},
		{LimitFileSize, l.FileSize, FormatBytes},
		{LimitOpenFiles, int64(l.Files), count},
		{LimitMemory, l.Memory, FormatBytes},
		{LimitTmp, l.Tmp, FormatBytes},
		{LimitWorkspace, l.Workspace, FormatBytes},
		{LimitArtifacts, maxArtifacts, FormatBytes},
	} {
		switch reason, no := why[x.name]; {
		case x.n <= 0:
			unset = append(unset, x.name)
		case no:
			broken = append(broken, fmt.Sprintf("%s %s (%s)", x.name, x.format(x.n), reason))
		default:
			held = append(held, x.name+" "+x.format(x.n))
		}
	}
	var parts []string
	for _, p := range []struct {
		label string
		items []string
	}{{"in force", held}, {"NOT in force", broken}, {"not set", unset}} {
		if len(p.items) > 0 {
			parts = append(parts, p.label+": "+strings.Join(p.items, ", "))
		}
	}
	return strings.Join(parts, "; ")
}
