package transfer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A token fetches the source once and gives the artifacts once, and opens
// nothing once revoked; a hostile archive is refused without writing
// outside its folder.
func TestTransferToken(t *testing.T) {
	ws := t.TempDir()
	if err := os.WriteFile(filepath.Join(ws, "main.go"), []byte("package main"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("main.go", filepath.Join(ws, "link")); err != nil {
		t.Fatal(err)
	}
	tr := &Transfer{}
	out := t.TempDir()
	j, err := tr.Open(ws, filepath.Join(out, "a"), 0)
	if err != nil {
		t.Fatal(err)
	}
	token := j.Token
	srv := httptest.NewServer(tr)
	defer srv.Close()
	do := func(method, path, token string, body io.Reader) *http.Response {
		req, _ := http.NewRequest(method, srv.URL+path, body)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	if resp := do("GET", "/source", "wrong", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a wrong token: %s", resp.Status)
	}
	dst := t.TempDir()
	resp := do("GET", "/source", token, nil)
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := readTree(zr, dst, -1); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "main.go")); string(b) != "package main" {
		t.Errorf("fetched main.go %q", b)
	}
	if l, _ := os.Readlink(filepath.Join(dst, "link")); l != "main.go" {
		t.Errorf("fetched link %q", l)
	}
	if resp := do("GET", "/source", token, nil); resp.StatusCode != http.StatusGone {
		t.Errorf("a second fetch: %s", resp.Status)
	}

	var hostile bytes.Buffer
	tw := tar.NewWriter(&hostile)
	tw.WriteHeader(&tar.Header{Name: "../escaped", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644})
	tw.Write([]byte("x"))
	tw.Close()
	if resp := do("PUT", "/artifacts", token, &hostile); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a hostile archive: %s", resp.Status)
	}
	if _, err := os.Stat(filepath.Join(out, "escaped")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the archive wrote outside its folder: %v", err)
	}
	select {
	case <-j.done:
		if j.Report().Failed == nil {
			t.Error("the hostile archive was not reported as failed")
		}
	default:
		t.Error("the upload was not reported")
	}
	tr.Close(j)
	if resp := do("PUT", "/artifacts", token, http.NoBody); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a revoked token: %s", resp.Status)
	}
}

// The helper program fetches and uploads through the endpoint, and says
// what is wrong when it cannot.
func TestHelperCommandLine(t *testing.T) {
	var stderr bytes.Buffer
	if code := Helper(context.Background(), []string{"fetch", "/x"}, func(string) string { return "" }, &stderr); code != 1 || !strings.Contains(stderr.String(), EnvToken) {
		t.Errorf("no environment: exit %d, %q", code, stderr.String())
	}
}
