package airbyte

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/uvrhq/uvr/connectors/source"
)

// RunnerConfig configures a Runner. Exactly one of Command and Image is set.
type RunnerConfig struct {
	// Command is the connector's command line without its verb, e.g.
	// {"/var/airbyte/airbyte-source-faker/bin/source-faker"} (what
	// deploy/airbyte-connector install prints) or {"python", "main.py"}.
	Command []string
	// Image runs the connector's Docker image instead:
	// `docker run --rm -i --user UID:GID -v TMP:/uvr-airbyte IMAGE VERB …`,
	// with the config, catalog and state files in the mounted directory.
	Image  string
	Docker string // docker binary; default "docker"

	// Name names the connector in errors and logs; default the command's or
	// image's base name (e.g. "source-faker").
	Name string
	// Env is added to the process environment (KEY=value).
	Env []string
	// TempDir holds the per-command directory of config/catalog/state files
	// (mode 0700, files 0600, removed after the command); default os.TempDir.
	TempDir string
	// Timeout bounds one command (spec, check, discover, read); 0 means none.
	Timeout time.Duration
	// KillGrace is how long a cancelled connector gets between SIGTERM and
	// SIGKILL (both sent to its whole process group); default 5s.
	KillGrace time.Duration
	// OnLog receives the connector's stderr lines, its LOG messages and any
	// non-message line on stdout, redacted, one call at a time per command.
	// nil logs them at debug level.
	OnLog func(LogLine)
	// Secrets are redacted from every log line and error, in addition to the
	// config's credential-like values (see ConfigSecrets).
	Secrets []string
	Logger  *slog.Logger
}

// LogLine is one line a connector wrote for people.
type LogLine struct {
	Stream  string // "stderr", "stdout" (a non-message line) or "log" (a LOG message)
	Level   string // the LOG message's level; "INFO" for stdout, "" for stderr
	Message string // redacted
}

// Runner runs one Airbyte source connector's commands as child processes.
// Safe for concurrent use: each command gets its own process and files.
type Runner struct {
	cfg RunnerConfig
	log *slog.Logger
}

// NewRunner checks cfg.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	switch {
	case len(cfg.Command) == 0 && cfg.Image == "":
		return nil, errors.New("airbyte runner: a command or an image is required")
	case len(cfg.Command) > 0 && cfg.Image != "":
		return nil, errors.New("airbyte runner: give a command or an image, not both")
	case len(cfg.Command) > 0 && cfg.Command[0] == "":
		return nil, errors.New("airbyte runner: empty command")
	}
	if cfg.Docker == "" {
		cfg.Docker = "docker"
	}
	if cfg.Name == "" {
		if cfg.Image != "" {
			cfg.Name = strings.SplitN(filepath.Base(cfg.Image), ":", 2)[0]
		} else {
			cfg.Name = filepath.Base(cfg.Command[0])
		}
	}
	if cfg.KillGrace <= 0 {
		cfg.KillGrace = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Runner{cfg: cfg, log: cfg.Logger.With("component", "airbyte", "connector", cfg.Name)}, nil
}

// Name is the connector's name.
func (r *Runner) Name() string { return r.cfg.Name }

// TraceError is the ERROR trace a connector emitted before failing.
type TraceError struct {
	Connector   string
	Command     string
	Message     string
	Internal    string // internal_message, redacted
	FailureType string // system_error, config_error, transient_error
	Stream      string
}

func (e *TraceError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s failed", e.Connector, e.Command)
	if e.Stream != "" {
		fmt.Fprintf(&b, " on stream %s", e.Stream)
	}
	if e.FailureType != "" {
		fmt.Fprintf(&b, " (%s)", e.FailureType)
	}
	b.WriteString(": " + e.Message)
	if e.Internal != "" && e.Internal != e.Message {
		b.WriteString(": " + e.Internal)
	}
	return b.String()
}

// CheckError is a `check` that answered FAILED: the connector rejected its
// configuration or credentials. It unwraps to a *source.AuthError, so a
// sync engine treats it like a rejected credential (stop, tell the user).
type CheckError struct {
	Connector string
	Message   string // the connector's message, redacted
}

func (e *CheckError) Error() string {
	return fmt.Sprintf("%s check failed: %s", e.Connector, e.Message)
}

// Unwrap lets source.IsAuth recognise a failed check.
func (e *CheckError) Unwrap() error {
	return &source.AuthError{Service: e.Connector, Detail: e.Message}
}

// Spec runs `spec`.
func (r *Runner) Spec(ctx context.Context) (*ConnectorSpecification, error) {
	var spec *ConnectorSpecification
	err := r.run(ctx, "spec", nil, nil, func(m Message) error {
		if m.Type == TypeSpec {
			spec = m.Spec
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if spec == nil {
		return nil, fmt.Errorf("%s spec: no SPEC message in its output", r.cfg.Name)
	}
	return spec, nil
}

// Check runs `check --config`: nil when the connector answered SUCCEEDED, a
// *CheckError when it answered FAILED, another error when it could not run.
func (r *Runner) Check(ctx context.Context, config json.RawMessage) error {
	var status *ConnectionStatus
	redact := r.redactor(config)
	err := r.run(ctx, "check", []input{{flag: "config", name: "config.json", data: config}}, redact, func(m Message) error {
		if m.Type == TypeConnectionStatus {
			status = m.ConnectionStatus
		}
		return nil
	})
	if err != nil {
		return err
	}
	switch {
	case status == nil:
		return fmt.Errorf("%s check: no CONNECTION_STATUS message in its output", r.cfg.Name)
	case status.Status == CheckSucceeded:
		return nil
	default:
		msg := status.Message
		if msg == "" {
			msg = "status " + status.Status
		}
		return &CheckError{Connector: r.cfg.Name, Message: redact(msg)}
	}
}

// Discover runs `discover --config`.
func (r *Runner) Discover(ctx context.Context, config json.RawMessage) (*Catalog, error) {
	var catalog *Catalog
	err := r.run(ctx, "discover", []input{{flag: "config", name: "config.json", data: config}}, r.redactor(config), func(m Message) error {
		if m.Type == TypeCatalog {
			catalog = m.Catalog
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if catalog == nil {
		return nil, fmt.Errorf("%s discover: no CATALOG message in its output", r.cfg.Name)
	}
	return catalog, nil
}

// Read runs `read --config --catalog [--state]` and hands every message but
// LOG (which goes to OnLog) to handle as it streams in. An error from handle
// stops the connector and is returned. A TRACE ERROR makes Read return a
// *TraceError once the connector exited.
func (r *Runner) Read(ctx context.Context, config json.RawMessage, catalog ConfiguredCatalog, state json.RawMessage, handle func(Message) error) error {
	cat, err := json.Marshal(catalog)
	if err != nil {
		return fmt.Errorf("encode configured catalog: %w", err)
	}
	inputs := []input{
		{flag: "config", name: "config.json", data: config},
		{flag: "catalog", name: "catalog.json", data: cat},
	}
	if len(state) > 0 {
		inputs = append(inputs, input{flag: "state", name: "state.json", data: state})
	}
	return r.run(ctx, "read", inputs, r.redactor(config), handle)
}

// input is a file handed to the connector as --flag PATH.
type input struct {
	flag, name string
	data       []byte
}

// containerDir is where the Docker mode mounts the command's files.
const containerDir = "/uvr-airbyte"

// argv is the full command line for verb and its arguments.
func (r *Runner) argv(dir string, args []string) []string {
	if r.cfg.Image == "" {
		return append(append([]string{}, r.cfg.Command...), args...)
	}
	// --user: the files are 0600 and ours; the container must read them as us.
	argv := []string{r.cfg.Docker, "run", "--rm", "-i",
		"--user", fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid()),
		"-v", dir + ":" + containerDir}
	for _, e := range r.cfg.Env {
		argv = append(argv, "-e", e)
	}
	return append(append(argv, r.cfg.Image), args...)
}

func (r *Runner) filePath(dir, name string) string {
	if r.cfg.Image != "" {
		return containerDir + "/" + name
	}
	return filepath.Join(dir, name)
}

// run runs one connector command and streams its output: messages to
// handle, log lines to OnLog. It returns once the process and its output
// are done.
func (r *Runner) run(ctx context.Context, verb string, inputs []input, redact func(string) string, handle func(Message) error) (err error) {
	if redact == nil {
		redact = r.redactor(nil)
	}
	if r.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.cfg.Timeout)
		defer cancel()
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()

	dir, err := os.MkdirTemp(r.cfg.TempDir, "uvr-airbyte-*") // mode 0700
	if err != nil {
		return fmt.Errorf("%s %s: temp dir: %w", r.cfg.Name, verb, err)
	}
	defer os.RemoveAll(dir)
	args := []string{verb}
	for _, in := range inputs {
		path := filepath.Join(dir, in.name)
		if err := os.WriteFile(path, in.data, 0o600); err != nil {
			return fmt.Errorf("%s %s: write %s: %w", r.cfg.Name, verb, in.name, err)
		}
		args = append(args, "--"+in.flag, r.filePath(dir, in.name))
	}

	argv := r.argv(dir, args)
	cmd := exec.Command(argv[0], argv[1:]...)
	// Its own process group, so that a cancel reaches the connector's
	// children too (Python CDK worker pools, the docker CLI's container).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if r.cfg.Image == "" {
		cmd.Env = append(os.Environ(), r.cfg.Env...)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("%s %s: %w", r.cfg.Name, verb, err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return fmt.Errorf("%s %s: %w", r.cfg.Name, verb, err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s %s: start %s: %w", r.cfg.Name, verb, argv[0], err)
	}
	r.log.Debug("connector started", "command", verb, "pid", cmd.Process.Pid)

	exited := make(chan struct{})
	var killer sync.WaitGroup
	killer.Add(1)
	go func() {
		defer killer.Done()
		r.killOnCancel(runCtx, cmd.Process.Pid, exited)
	}()

	// OnLog is called from the stderr and the stdout readers: one at a time.
	var logMu sync.Mutex
	emitLog := func(l LogLine) {
		logMu.Lock()
		defer logMu.Unlock()
		r.emitLog(l)
	}
	tail := newTail(8)
	var stderrDone sync.WaitGroup
	stderrDone.Add(1)
	go func() {
		defer stderrDone.Done()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line := redact(strings.TrimRight(sc.Text(), "\r"))
			tail.add(line)
			emitLog(LogLine{Stream: "stderr", Message: line})
		}
		_, _ = io.Copy(io.Discard, stderr) // a line over 4 MiB: drop the rest
	}()

	var handleErr error
	var trace *TraceError
	dec := NewDecoder(stdout)
	for {
		line, err := dec.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if handleErr == nil {
				handleErr = fmt.Errorf("%s %s: read output: %w", r.cfg.Name, verb, err)
				stop()
			}
			_, _ = io.Copy(io.Discard, stdout)
			break
		}
		if handleErr != nil {
			continue // draining after a failure, until the killed process closes its output
		}
		m := line.Message
		switch {
		case m == nil:
			emitLog(LogLine{Stream: "stdout", Level: "INFO", Message: redact(line.Text)})
		case m.Type == TypeLog:
			msg := m.Log.Message
			if m.Log.StackTrace != "" {
				msg += "\n" + m.Log.StackTrace
			}
			emitLog(LogLine{Stream: "log", Level: m.Log.Level, Message: redact(msg)})
		case m.Type == TypeTrace && m.Trace.Type == TraceTypeError:
			if trace == nil {
				trace = &TraceError{Connector: r.cfg.Name, Command: verb,
					Message: redact(m.Trace.Error.Message), Internal: redact(m.Trace.Error.InternalMessage),
					FailureType: m.Trace.Error.FailureType}
				if m.Trace.Error.StreamDescriptor != nil {
					trace.Stream = m.Trace.Error.StreamDescriptor.String()
				}
			}
		default:
			if err := handle(*m); err != nil {
				handleErr = err
				stop() // kill the connector; keep reading until its output closes
			}
		}
	}
	stderrDone.Wait()
	waitErr := cmd.Wait()
	close(exited)
	killer.Wait()
	elapsed := time.Since(start)

	switch {
	case handleErr != nil:
		return handleErr
	case ctx.Err() != nil:
		return fmt.Errorf("%s %s stopped after %s: %w", r.cfg.Name, verb, elapsed.Round(time.Millisecond), ctx.Err())
	case trace != nil:
		return trace
	case waitErr != nil:
		detail := tail.String()
		if detail == "" {
			detail = "no output on stderr"
		}
		return fmt.Errorf("%s %s: %s: %s", r.cfg.Name, verb, waitErr, detail)
	}
	r.log.Debug("connector finished", "command", verb, "duration", elapsed)
	return nil
}

// killOnCancel sends SIGTERM to the connector's process group when ctx ends
// before the process exits, and SIGKILL after KillGrace.
func (r *Runner) killOnCancel(ctx context.Context, pid int, exited <-chan struct{}) {
	select {
	case <-exited:
		return
	case <-ctx.Done():
	}
	r.log.Info("stopping connector", "pid", pid, "reason", context.Cause(ctx))
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	timer := time.NewTimer(r.cfg.KillGrace)
	defer timer.Stop()
	select {
	case <-exited:
	case <-timer.C:
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

func (r *Runner) emitLog(l LogLine) {
	if r.cfg.OnLog != nil {
		r.cfg.OnLog(l)
		return
	}
	r.log.Debug("connector output", "stream", l.Stream, "level", l.Level, "message", l.Message)
}

// secretKey matches config keys whose values are credentials.
var secretKey = regexp.MustCompile(`(?i)(secret|token|password|passwd|api_?key|access_?key|private|credential|auth|signature|client_id|cookie)`)

// ConfigSecrets returns the credential-like string values of a connector
// config: every string under a key that names a credential (api_key,
// client_secret, access_token, password, …), at any depth. Airbyte specs
// mark such fields airbyte_secret; their names follow these words.
func ConfigSecrets(config json.RawMessage) []string {
	var v any
	if json.Unmarshal(config, &v) != nil {
		return nil
	}
	var out []string
	var walk func(key string, v any, secret bool)
	walk = func(key string, v any, secret bool) {
		switch x := v.(type) {
		case map[string]any:
			for k, child := range x {
				walk(k, child, secret || secretKey.MatchString(k))
			}
		case []any:
			for _, child := range x {
				walk(key, child, secret)
			}
		case string:
			if secret && len(x) >= 4 {
				out = append(out, x)
			}
		}
	}
	walk("", v, false)
	return out
}

// redactor replaces the configured secrets and the config's credentials.
func (r *Runner) redactor(config json.RawMessage) func(string) string {
	secrets := append(append([]string{}, r.cfg.Secrets...), ConfigSecrets(config)...)
	return func(s string) string {
		for _, secret := range secrets {
			if len(secret) >= 4 {
				s = strings.ReplaceAll(s, secret, "[redacted]")
			}
		}
		return s
	}
}

// tail keeps the last n lines, for the error of a failed command.
type tail struct {
	mu    sync.Mutex
	n     int
	lines []string
}

func newTail(n int) *tail { return &tail{n: n} }

func (t *tail) add(line string) {
	if strings.TrimSpace(line) == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(line) > 500 {
		line = line[:500] + "…"
	}
	t.lines = append(t.lines, line)
	if len(t.lines) > t.n {
		t.lines = t.lines[1:]
	}
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, " | ")
}
