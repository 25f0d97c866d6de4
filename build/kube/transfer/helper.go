package transfer

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"slipway/build/executor"
)

// HelperPath is where the helper image holds the slipway-helper binary
// (cmd/slipway-helper), which runs Helper.
const HelperPath = "/opt/slipway/bin/slipway-helper"

// The helper's environment, from the build's Secret and the Pod spec.
const (
	EnvURL   = "SLIPWAY_TRANSFER_URL"
	EnvToken = "SLIPWAY_TRANSFER_TOKEN"
)

// Helper runs the in-Pod side of a build's transfer, as the helper image's
// slipway-helper does, and returns the process's exit status:
//
//	fetch DIR                  unpack the build's source into DIR
//	upload DIR MAX [PATH...]   keep PATHs of DIR by executor.CopyArtifacts's
//	                           rules (MAX bytes at most, 0: no cap) and send
//	                           them, or why they cannot be kept
//
// The transfer URL and the build's token come from the environment.
func Helper(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	url, token := strings.TrimSuffix(getenv(EnvURL), "/"), getenv(EnvToken)
	var err error
	switch {
	case url == "" || token == "":
		err = fmt.Errorf("%s and %s must be set", EnvURL, EnvToken)
	case len(args) == 2 && args[0] == "fetch":
		err = fetch(ctx, url, token, args[1])
	case len(args) >= 3 && args[0] == "upload":
		var max int64
		if max, err = strconv.ParseInt(args[2], 10, 64); err == nil {
			err = upload(ctx, url, token, args[1], max, args[3:])
		}
	default:
		err = errors.New("usage: slipway-helper fetch DIR | upload DIR MAX [PATH...]")
	}
	if err != nil {
		fmt.Fprintf(stderr, "slipway-helper: %v\n", err)
		return 1
	}
	return 0
}

// helperClient bounds each request of the helper.
var helperClient = &http.Client{Timeout: 30 * time.Minute}

func fetch(ctx context.Context, url, token, dir string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/source", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := helperClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetch the source: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch the source: %s: %s", resp.Status, readSome(resp.Body))
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		return fmt.Errorf("fetch the source: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := readTree(zr, dir, -1); err != nil {
		return fmt.Errorf("unpack the source: %w", err)
	}
	return nil
}

func upload(ctx context.Context, url, token, dir string, max int64, paths []string) error {
	var body io.Reader = http.NoBody
	header := http.Header{}
	if len(paths) > 0 {
		stage, err := os.MkdirTemp("", "artifacts-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(stage)
		out := filepath.Join(stage, "a")
		_, err = executor.CopyArtifacts(dir, out, paths, max)
		var tooLarge *executor.ArtifactsTooLargeError
		switch {
		case errors.As(err, &tooLarge):
			header.Set(headerError, err.Error())
			header.Set(headerSize, strconv.FormatInt(tooLarge.Size, 10))
		case err != nil:
			header.Set(headerError, err.Error())
		default:
			pr, pw := io.Pipe()
			go func() { pw.CloseWithError(writeTree(pw, out)) }()
			defer pr.Close()
			body = pr
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url+"/artifacts", body)
	if err != nil {
		return err
	}
	req.Header = header
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := helperClient.Do(req)
	if err != nil {
		return fmt.Errorf("send the artifacts: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("send the artifacts: %s: %s", resp.Status, readSome(resp.Body))
	}
	return nil
}

// readSome is the start of a reply's body, for an error message.
func readSome(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 512))
	return string(bytes.TrimSpace(b))
}
