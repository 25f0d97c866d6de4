package logs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Open opens the log id for reading, for readers that serve byte ranges
// (the JSON API's raw log) rather than follow. The file is the log as
// stored at this moment and after: a live log keeps growing behind the
// returned file, so a reader takes its size once (Stat) and serves up to
// it. It fails with [ErrNotFound] if there is no log.
func (s *Store) Open(id string) (*os.File, error) {
	path, err := s.path(id)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open log %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open log %q: %w", id, err)
	}
	return f, nil
}
