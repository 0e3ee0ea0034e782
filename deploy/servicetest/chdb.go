package servicetest

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var chdb struct {
	once   sync.Once
	python string
	err    error
}

// ChdbPython returns the path of a Python interpreter that imports chdb-core
// (a current ClickHouse in process), installed by `deploy/chdb install` at
// its pinned version, once per test binary. An install that fails fails the
// test.
func ChdbPython(t testing.TB) string {
	t.Helper()
	chdb.once.Do(func() {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(filepath.Join(Root(), "deploy", "chdb"), "install")
		cmd.Dir = Root()
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			chdb.err = fmt.Errorf("deploy/chdb install: %w\n%s", err, stderr.String())
			return
		}
		chdb.python = strings.TrimSpace(stdout.String())
	})
	if chdb.err != nil {
		t.Fatalf("chdb-core is not available: %v", chdb.err)
	}
	return chdb.python
}
