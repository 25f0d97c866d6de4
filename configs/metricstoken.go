package configs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// Bounds of a metrics token: long enough that guessing it over the
// network is hopeless, short enough to be a token and not the wrong file.
const (
	minMetricsToken = 16
	maxMetricsToken = 4096
)

// MetricsToken is the bearer token /metrics asks for (the content of
// [http] metrics_token_file, read with the configuration), or "" when
// metrics are off.
func (c *Config) MetricsToken() string { return c.metricsToken }

// readMetricsToken reads the token file at path. Surrounding whitespace
// (an editor's final newline) is not part of the token. The error never
// quotes the file's content.
func readMetricsToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", fmt.Errorf("cannot read %s: %w", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMetricsToken+1))
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %w", path, err)
	}
	if len(b) > maxMetricsToken {
		return "", fmt.Errorf("%s is longer than %d bytes; it should hold one token, such as `openssl rand -hex 32` prints", path, maxMetricsToken)
	}
	tok := strings.TrimSpace(string(b))
	for _, r := range tok {
		if r < 0x21 || r > 0x7e {
			return "", fmt.Errorf("%s holds more than one line, spaces or characters other than visible ASCII; it should hold one token, such as `openssl rand -hex 32` prints", path)
		}
	}
	if len(tok) < minMetricsToken {
		what := fmt.Sprintf("a token of %d characters", len(tok))
		if tok == "" {
			what = "nothing"
		}
		return "", fmt.Errorf("%s holds %s; a token needs at least %d, such as `openssl rand -hex 32` prints", path, what, minMetricsToken)
	}
	return tok, nil
}
