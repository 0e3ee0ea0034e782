package airbyte

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/mapping"
	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

// packageDir is this package's directory, from this file's location, so the
// tests work from any clone and any working directory.
func packageDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// repoRoot is the repository root (two levels up).
func repoRoot() string { return filepath.Clean(filepath.Join(packageDir(), "..", "..")) }

// fakerMapping is the declarative mapping of source-faker's streams that
// connectors/mapping ships.
func fakerMapping(t testing.TB) *mapping.Mapping {
	t.Helper()
	m, err := mapping.Load(filepath.Join(repoRoot(), "connectors", "mapping", "examples", "faker.yaml"))
	require.NoError(t, err)
	return m
}

// memEmitter is the Emitter contract in memory: it keeps every Emit and
// Skip, checks each event, and can fail on the nth Emit.
type memEmitter struct {
	t       testing.TB
	mu      sync.Mutex
	batches []emitted
	skips   []skipped
	failOn  int // 1-based Emit call that fails; 0 never
	calls   int
}

type emitted struct {
	events []event.Event
	next   source.Cursor
}

type skipped struct {
	record string
	reason error
}

var errEmit = errors.New("kafka unavailable")

func (e *memEmitter) Emit(_ context.Context, events []event.Event, next source.Cursor) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls++
	if e.failOn > 0 && e.calls == e.failOn {
		return errEmit
	}
	for _, ev := range events {
		require.NoError(e.t, ev.Validate(), "event %s", ev.ID)
	}
	e.batches = append(e.batches, emitted{events: append([]event.Event(nil), events...), next: append(source.Cursor(nil), next...)})
	return nil
}

func (e *memEmitter) Skip(record string, reason error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.skips = append(e.skips, skipped{record, reason})
}

func (e *memEmitter) events() []event.Event {
	var out []event.Event
	for _, b := range e.batches {
		out = append(out, b.events...)
	}
	return out
}

// lastCursor is the cursor a sync engine would have saved: the last non-nil one.
func (e *memEmitter) lastCursor() source.Cursor {
	var c source.Cursor
	for _, b := range e.batches {
		if b.next != nil {
			c = b.next
		}
	}
	return c
}

// fake is a Runner over testdata/fake-connector whose scripted output
// per verb is written to a temp dir.
type fake struct {
	dir string
	env map[string]string
}

func newFake(t testing.TB) *fake {
	return &fake{dir: t.TempDir(), env: map[string]string{}}
}

// script sets what the connector prints for verb: lines of messages.
func (f *fake) script(t testing.TB, verb string, lines ...string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(f.dir, verb+".jsonl"), []byte(strings.Join(lines, "\n")+"\n"), 0o644))
}

func (f *fake) runner(t testing.TB, cfg RunnerConfig) *Runner {
	t.Helper()
	cfg.Command = []string{filepath.Join(packageDir(), "testdata", "fake-connector")}
	cfg.Env = append(cfg.Env, "FAKE_DIR="+f.dir)
	for k, v := range f.env {
		cfg.Env = append(cfg.Env, k+"="+v)
	}
	if cfg.TempDir == "" {
		cfg.TempDir = t.TempDir()
	}
	r, err := NewRunner(cfg)
	require.NoError(t, err)
	return r
}

// logSink collects OnLog lines.
type logSink struct {
	mu    sync.Mutex
	lines []LogLine
}

func (l *logSink) add(line LogLine) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
}

func (l *logSink) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, line := range l.lines {
		b.WriteString(line.Stream + " " + line.Level + " " + line.Message + "\n")
	}
	return b.String()
}
