package airbyte

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

// Messages shaped exactly as source-faker 7.2.1 writes them (see
// testdata/faker-read.jsonl, recorded from the real connector).
func userRecord(id int, createdAt string) string {
	return fmt.Sprintf(`{"type":"RECORD","record":{"stream":"users","data":{"id":%d,"created_at":%q,"updated_at":"2026-11-27T02:03:11+00:00","name":"Sean","title":"Madam","age":66,"email":"enjoyed1888+%d@duck.com","nationality":"Chilean","occupation":"Tax Inspector","address":{"city":"Ossining","country_code":"MK"}},"emitted_at":1795744991345}}`, id, createdAt, id)
}

func purchaseRecord(id, productID, userID int) string {
	return fmt.Sprintf(`{"type":"RECORD","record":{"stream":"purchases","data":{"id":%d,"product_id":%d,"user_id":%d,"created_at":"2014-10-12T08:08:11.908655","updated_at":"2026-11-27T02:07:38+00:00","added_to_cart_at":"2023-02-25T08:08:11+00:00","purchased_at":"2023-12-05T08:08:11+00:00"},"emitted_at":1795745258814}}`, id, productID, userID)
}

func streamState(stream string, offset int) string {
	return fmt.Sprintf(`{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":%q},"stream_state":{"seed":1,"updated_at":"2026-11-27T02:03:11+00:00","loop_offset":%d}},"sourceStats":{"recordCount":2.0}}}`, stream, offset)
}

const traceError = `{"type":"TRACE","trace":{"type":"ERROR","emitted_at":1795744991257.525,"error":{"message":"Something went wrong in the connector. See the logs for more details.","internal_message":"HTTPError 500","failure_type":"system_error","stream_descriptor":{"name":"users"}}}}`

var catalogUsersPurchases = &ConfiguredCatalog{Streams: []ConfiguredStream{
	{Stream: Stream{Name: "users", SupportedSyncModes: []string{SyncFullRefresh, SyncIncremental}}, SyncMode: SyncIncremental, CursorField: []string{"updated_at"}, DestinationSyncMode: "append"},
	{Stream: Stream{Name: "purchases", SupportedSyncModes: []string{SyncFullRefresh, SyncIncremental}}, SyncMode: SyncIncremental, CursorField: []string{"updated_at"}, DestinationSyncMode: "append"},
}}

// Events are emitted together with the STATE that covers them, so the
// saved cursor never runs ahead of Kafka; records after the last STATE of a
// failed read are not emitted (they are read again from that cursor); a
// record the mapper rejects is skipped by name and the read goes on.
func TestSourceEmitsEventsWithTheirState(t *testing.T) {
	f := newFake(t)
	f.script(t, "read",
		userRecord(1, "2001-02-03T11:53:10+00:00"),
		userRecord(2, "not a time"), // rejected by the mapping
		streamState("users", 2),
		userRecord(3, "2019-01-19T21:10:27+00:00"),
		purchaseRecord(1, 60, 1),
		streamState("purchases", 1),
		userRecord(4, "2012-12-28T16:23:34+00:00"), // after the last state
		traceError,
	)
	f.env["FAKE_EXIT"] = "1"
	logs := &logSink{}
	src, err := New(SourceConfig{Runner: f.runner(t, RunnerConfig{OnLog: logs.add}), Catalog: catalogUsersPurchases, Mapper: fakerMapping(t)})
	require.NoError(t, err)

	out := &memEmitter{t: t}
	err = src.Read(context.Background(), nil, out)
	var te *TraceError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "fake-connector read failed on stream users (system_error): Something went wrong in the connector. See the logs for more details.: HTTPError 500", err.Error())

	require.Len(t, out.batches, 2)
	assert.Equal(t, []string{"user/1"}, ids(out.batches[0].events))
	assert.JSONEq(t, `[{"type":"STREAM","stream":{"stream_descriptor":{"name":"users"},"stream_state":{"seed":1,"updated_at":"2026-11-27T02:03:11+00:00","loop_offset":2}}}]`, string(out.batches[0].next))
	assert.Equal(t, []string{"user/3", "purchase/1"}, ids(out.batches[1].events))
	assert.Contains(t, string(out.batches[1].next), `"name":"users"`)
	assert.Contains(t, string(out.batches[1].next), `"name":"purchases"`)

	charge := out.batches[1].events[1]
	assert.Equal(t, event.KindCharge, charge.Data.Kind)
	assert.Equal(t, "27890", charge.Data.Amount.String(), "product 60's price")

	require.Len(t, out.skips, 1)
	assert.Equal(t, "users record 2", out.skips[0].record)
	assert.ErrorContains(t, out.skips[0].reason, "not a time")
	assert.Contains(t, logs.text(), "stderr  fake connector: read")

	// The next read starts from the saved cursor.
	f.env["FAKE_EXIT"] = "0"
	f.script(t, "read", userRecord(4, "2012-12-28T16:23:34+00:00"), streamState("users", 4))
	args := filepath.Join(t.TempDir(), "args")
	f.env["FAKE_ARGS"] = args
	src2, err := New(SourceConfig{Runner: f.runner(t, RunnerConfig{}), Catalog: catalogUsersPurchases, Mapper: fakerMapping(t)})
	require.NoError(t, err)
	out2 := &memEmitter{t: t}
	require.NoError(t, src2.Read(context.Background(), out.lastCursor(), out2))
	given, err := os.ReadFile(args)
	require.NoError(t, err)
	stateLine := strings.TrimPrefix(strings.TrimSpace(strings.Split(string(given), "\n")[3]), "state ")
	assert.JSONEq(t, string(out.lastCursor()), stateLine, "the connector got the saved state")
	assert.Equal(t, []string{"user/4"}, ids(out2.events()))
}

func ids(events []event.Event) []string {
	out := make([]string, len(events))
	for i, ev := range events {
		out[i] = ev.ID
	}
	return out
}

// Past MaxBatch events without a STATE, events go out with no cursor; the
// tail of a read that ends without a final STATE too.
func TestSourceFlushesLongRunsWithoutCursor(t *testing.T) {
	f := newFake(t)
	var lines []string
	for i := 1; i <= 5; i++ {
		lines = append(lines, userRecord(i, "2001-02-03T11:53:10+00:00"))
	}
	f.script(t, "read", lines...)
	src, err := New(SourceConfig{Runner: f.runner(t, RunnerConfig{}), Catalog: catalogUsersPurchases, Mapper: fakerMapping(t), MaxBatch: 2})
	require.NoError(t, err)
	out := &memEmitter{t: t}
	require.NoError(t, src.Read(context.Background(), nil, out))
	require.Len(t, out.batches, 3)
	for _, b := range out.batches {
		assert.Nil(t, b.next)
	}
	assert.Len(t, out.events(), 5)
}

// An Emit failure (Kafka down) stops the connector at once, even one that
// would print records forever, and is the error of Read.
func TestSourceEmitFailureStopsTheConnector(t *testing.T) {
	f := newFake(t)
	f.env["FAKE_FLOOD"] = "1"
	src, err := New(SourceConfig{Runner: f.runner(t, RunnerConfig{KillGrace: time.Second}), Catalog: catalogUsersPurchases, Mapper: fakerMapping(t), MaxBatch: 100})
	require.NoError(t, err)
	out := &memEmitter{t: t, failOn: 3}
	start := time.Now()
	err = src.Read(context.Background(), nil, out)
	require.ErrorIs(t, err, errEmit)
	assert.Less(t, time.Since(start), 10*time.Second)
	assert.Len(t, out.batches, 2, "the failed batch is not counted as emitted")
}

// A check that answers FAILED is a CheckError that reads as a rejected
// credential; SUCCEEDED is nil.
func TestSourceCheck(t *testing.T) {
	f := newFake(t)
	f.script(t, "check", `{"type":"CONNECTION_STATUS","connectionStatus":{"status":"FAILED","message":"Config validation error: 'x' is not of type 'integer'"}}`)
	src, err := New(SourceConfig{Runner: f.runner(t, RunnerConfig{}), Mapper: fakerMapping(t), Config: json.RawMessage(`{"count":"x"}`)})
	require.NoError(t, err)
	err = src.Check(context.Background())
	var ce *CheckError
	require.ErrorAs(t, err, &ce)
	assert.True(t, source.IsAuth(err))
	assert.Equal(t, "fake-connector check failed: Config validation error: 'x' is not of type 'integer'", err.Error())

	f.script(t, "check", `{"type":"LOG","log":{"level":"INFO","message":"Check succeeded"}}`, `{"type":"CONNECTION_STATUS","connectionStatus":{"status":"SUCCEEDED"}}`)
	require.NoError(t, src.Check(context.Background()))

	f.script(t, "check", `{"type":"LOG","log":{"level":"INFO","message":"nothing"}}`)
	assert.ErrorContains(t, src.Check(context.Background()), "no CONNECTION_STATUS message")
}

// Without a catalog the Source discovers one and reads every stream (or the
// chosen ones) incrementally where it can.
func TestSourceDiscoversItsCatalog(t *testing.T) {
	f := newFake(t)
	b, err := os.ReadFile(filepath.Join("testdata", "faker-discover.jsonl"))
	require.NoError(t, err)
	f.script(t, "discover", strings.TrimSpace(string(b)))
	src, err := New(SourceConfig{Runner: f.runner(t, RunnerConfig{}), Mapper: fakerMapping(t), Streams: []string{"users", "purchases"}})
	require.NoError(t, err)
	cat, err := src.Catalog(context.Background())
	require.NoError(t, err)
	require.Len(t, cat.Streams, 2)
	for _, s := range cat.Streams {
		assert.Equal(t, SyncIncremental, s.SyncMode, s.Stream.Name)
		assert.Equal(t, []string{"updated_at"}, s.CursorField)
		assert.Equal(t, [][]string{{"id"}}, s.PrimaryKey)
	}
	_, err = Configure(Catalog{}, nil)
	assert.ErrorContains(t, err, "no streams")
	var disc Catalog
	for _, s := range cat.Streams {
		disc.Streams = append(disc.Streams, s.Stream)
	}
	_, err = Configure(disc, []string{"users", "invoices"})
	assert.EqualError(t, err, `stream "invoices" is not in the connector's catalog`)
}

// A planted credential never shows in what the runner surfaces: stderr and
// LOG lines, stdout noise, the TRACE error, the logger.
func TestRunnerRedactsCredentials(t *testing.T) {
	const secret = "sk_live_PLANTED0123456789"
	f := newFake(t)
	f.env["FAKE_ECHO_CONFIG"] = "1"
	f.env["FAKE_EXIT"] = "1"
	logs := &logSink{}
	var slogBuf bytes.Buffer
	r := f.runner(t, RunnerConfig{OnLog: logs.add, Logger: slog.New(slog.NewTextHandler(&slogBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	config := json.RawMessage(`{"account_id":"acct_1","credentials":{"client_secret":"` + secret + `"},"start_date":"2024-01-01T00:00:00Z"}`)
	err := r.Read(context.Background(), config, *catalogUsersPurchases, nil, func(Message) error { return nil })
	var te *TraceError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "config_error", te.FailureType)
	assert.Contains(t, err.Error(), "[redacted]")
	assert.NotContains(t, err.Error(), secret)
	surfaced := logs.text()
	assert.Contains(t, surfaced, "loaded config")
	assert.Contains(t, surfaced, "plain stdout line")
	assert.Contains(t, surfaced, "log INFO config:")
	assert.Contains(t, surfaced, "acct_1", "non-credential values stay readable")
	assert.NotContains(t, surfaced, secret)
	assert.NotContains(t, slogBuf.String(), secret)

	err = r.Check(context.Background(), config)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), secret)
}

// Config, catalog and state are written 0600 into a private directory and
// removed after the command.
func TestRunnerTempFiles(t *testing.T) {
	f := newFake(t)
	args := filepath.Join(t.TempDir(), "args")
	f.env["FAKE_ARGS"] = args
	f.script(t, "read", streamState("users", 1))
	r := f.runner(t, RunnerConfig{})
	require.NoError(t, r.Read(context.Background(), json.RawMessage(`{"count":1}`), *catalogUsersPurchases, json.RawMessage(`[]`), func(Message) error { return nil }))
	b, err := os.ReadFile(args)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	require.Len(t, lines, 4)
	assert.Equal(t, "read", lines[0])
	for _, l := range lines[1:3] {
		mode, path, _ := strings.Cut(l, " ")
		assert.Equal(t, "600", mode, path)
		_, err := os.Stat(path)
		assert.True(t, os.IsNotExist(err), "%s removed after the command", path)
		_, err = os.Stat(filepath.Dir(path))
		assert.True(t, os.IsNotExist(err), "its directory too")
	}
	assert.Equal(t, "state []", lines[3])
}

// A connector that exits non-zero without a TRACE error fails with its last
// stderr lines; one that cannot start fails naming the command.
func TestRunnerExitStatus(t *testing.T) {
	f := newFake(t)
	f.env["FAKE_EXIT"] = "3"
	r := f.runner(t, RunnerConfig{})
	_, err := r.Spec(context.Background())
	assert.EqualError(t, err, "fake-connector spec: exit status 3: fake connector: spec")

	bad, err := NewRunner(RunnerConfig{Command: []string{filepath.Join(t.TempDir(), "source-missing")}})
	require.NoError(t, err)
	_, err = bad.Spec(context.Background())
	assert.ErrorContains(t, err, "source-missing spec: start")

	_, err = NewRunner(RunnerConfig{})
	assert.Error(t, err)
	_, err = NewRunner(RunnerConfig{Command: []string{"x"}, Image: "airbyte/source-stripe:5.14.1"})
	assert.Error(t, err)
}

// Cancelling the context (or a timeout) stops a hung connector and every
// process of its group, and Read returns promptly.
func TestRunnerKillsProcessGroupOnCancel(t *testing.T) {
	for _, how := range []string{"cancel", "timeout"} {
		t.Run(how, func(t *testing.T) {
			f := newFake(t)
			pids := filepath.Join(t.TempDir(), "pids")
			f.env["FAKE_HANG"] = pids
			f.script(t, "read", userRecord(1, "2001-02-03T11:53:10+00:00"))
			cfg := RunnerConfig{KillGrace: 2 * time.Second}
			if how == "timeout" {
				cfg.Timeout = 500 * time.Millisecond
			}
			r := f.runner(t, cfg)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			got := make(chan Message, 10)
			done := make(chan error, 1)
			go func() {
				done <- r.Read(ctx, json.RawMessage(`{}`), *catalogUsersPurchases, nil, func(m Message) error {
					got <- m
					return nil
				})
			}()
			// The record arrives while the connector is still running: output streams.
			select {
			case m := <-got:
				assert.Equal(t, "users", m.Record.Stream)
			case <-time.After(30 * time.Second):
				t.Fatal("no record from the running connector")
			}
			var leader, child int
			require.Eventually(t, func() bool {
				b, err := os.ReadFile(pids)
				if err != nil {
					return false
				}
				_, err = fmt.Sscan(string(b), &leader, &child)
				return err == nil
			}, 30*time.Second, 10*time.Millisecond)
			if how == "cancel" {
				cancel()
			}
			select {
			case err := <-done:
				require.Error(t, err)
				if how == "cancel" {
					assert.ErrorIs(t, err, context.Canceled)
				} else {
					assert.ErrorIs(t, err, context.DeadlineExceeded)
				}
				assert.Contains(t, err.Error(), "fake-connector read stopped after")
			case <-time.After(30 * time.Second):
				t.Fatal("Read did not return after the cancel")
			}
			require.Eventually(t, func() bool { return !alive(child) && !alive(leader) }, 10*time.Second, 10*time.Millisecond,
				"the connector (%d) and its child (%d) are gone", leader, child)
		})
	}
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// The Docker form mounts the command's directory and runs as the caller, so
// the 0600 files are readable in the container. (No Docker engine runs on
// these machines: this checks the command line only.)
func TestRunnerDockerCommandLine(t *testing.T) {
	r, err := NewRunner(RunnerConfig{Image: "airbyte/source-stripe:5.14.1", Env: []string{"LOG_LEVEL=INFO"}})
	require.NoError(t, err)
	assert.Equal(t, "source-stripe", r.Name())
	argv := r.argv("/tmp/uvr-airbyte-1", []string{"read", "--config", r.filePath("/tmp/uvr-airbyte-1", "config.json")})
	assert.Equal(t, []string{"docker", "run", "--rm", "-i", "--user", fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid()),
		"-v", "/tmp/uvr-airbyte-1:/uvr-airbyte", "-e", "LOG_LEVEL=INFO", "airbyte/source-stripe:5.14.1",
		"read", "--config", "/uvr-airbyte/config.json"}, argv)
}

func TestConfigSecrets(t *testing.T) {
	got := ConfigSecrets(json.RawMessage(`{"account_id":"acct_123","client_secret":"sk_live_x1","start_date":"2024-01-01",
		"credentials":{"auth_type":"oauth","access_token":"tok_abcdef","refresh_token":"ref_abcdef"},"api_keys":["k_111","k_222"],"password":"abc"}`))
	assert.ElementsMatch(t, []string{"sk_live_x1", "oauth", "tok_abcdef", "ref_abcdef", "k_111", "k_222"}, got,
		"values under credential-like keys, at any depth; values under 4 bytes are never redacted")
	assert.Nil(t, ConfigSecrets(json.RawMessage(`not json`)))
}
