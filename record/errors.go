package record

import "errors"

// Sentinel errors that callers branch on; returned errors wrap them.
var (
	// ErrNotFound means the requested record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means the record exists but is in a state that does not
	// allow the requested change (finishing a build that is not running,
	// cancelling one that already ended).
	ErrConflict = errors.New("conflict")
	// ErrInvalid means the caller passed a value the store refuses to record
	// (an empty repo name, a malformed object id, an unknown state).
	ErrInvalid = errors.New("invalid")
)
