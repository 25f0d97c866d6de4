package record

import (
	"fmt"
	"strings"
	"time"
)

// RefUpdate is one line of what git hands the receive hooks: a ref and its old
// and new object ids. An all-zero Old means the ref was created, an all-zero
// New that it was deleted.
type RefUpdate struct {
	Name, Old, New string
}

// Push is one accepted `git push`: who pushed, with which key, which refs
// changed and with which push options (`git push -o`).
type Push struct {
	ID             int64
	Repo           string
	User           string
	KeyFingerprint string
	Refs           []RefUpdate
	Options        []string
	Time           time.Time // when git accepted it; the store's clock if zero
}

// Found reports whether the push was found in a repository rather than
// received: its refs moved without Slipway (reconciliation records such
// moves at start, with no user), so nobody's rights or release gate were
// asked.
func (p Push) Found() bool { return p.User == "" }

// ZeroID reports whether id is git's all-zero object id (SHA-1 or SHA-256).
func ZeroID(id string) bool {
	return id != "" && strings.Trim(id, "0") == ""
}

// ValidObjectID accepts lowercase SHA-1 (40) or SHA-256 (64) hex ids, the
// only forms git prints in hook input.
func ValidObjectID(id string) bool {
	if len(id) != 40 && len(id) != 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Validate reports whether the update is one git could have sent. Ref names
// are git's to check in full; this only refuses what would make the record
// unreadable or meaningless.
func (u RefUpdate) Validate() error {
	if !strings.HasPrefix(u.Name, "refs/") || len(u.Name) == len("refs/") {
		return fmt.Errorf("%w: ref name %q does not start with refs/", ErrInvalid, u.Name)
	}
	if strings.ContainsFunc(u.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("%w: ref name %q contains a control character", ErrInvalid, u.Name)
	}
	if !ValidObjectID(u.Old) || !ValidObjectID(u.New) || len(u.Old) != len(u.New) {
		return fmt.Errorf("%w: ref %q: object ids %q -> %q are not both lowercase hex of one hash", ErrInvalid, u.Name, u.Old, u.New)
	}
	if ZeroID(u.Old) && ZeroID(u.New) {
		return fmt.Errorf("%w: ref %q: old and new object ids are both zero", ErrInvalid, u.Name)
	}
	return nil
}

// OpenPush is a push whose record git's reference-transaction hook opened
// before git moved its refs, and whose work is not planned yet. Refs are the
// updates git reported made (committed); Prepared the ones it was about to
// make when last heard of, which it may or may not have made.
type OpenPush struct {
	Push
	Prepared []RefUpdate
}
