package syncer

import (
	"fmt"
	"strings"
	"time"
)

// Trigger says what started a sync run.
type Trigger string

// Triggers. A scheduled request is dropped as a duplicate when the service's
// last run finished less than half its interval ago (every instance's
// scheduler fires); a manual or API request always runs.
const (
	TriggerSchedule Trigger = "schedule"
	TriggerManual   Trigger = "manual" // "Sync now" on one service
	TriggerAPI      Trigger = "api"    // POST /api/sync: every active service
)

func (t Trigger) valid() bool {
	return t == TriggerSchedule || t == TriggerManual || t == TriggerAPI
}

// Status of a sync run.
type Status string

// Statuses. A run is running until it ends in exactly one of the other three.
const (
	StatusRunning   Status = "running"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	// StatusCancelled: the run's context ended (shutdown, or its request's
	// partition moved to another instance, which runs it again from the
	// saved cursor), or the instance running it died.
	StatusCancelled Status = "cancelled"
)

// Finished reports whether s is an end status (succeeded, failed, cancelled).
func (s Status) Finished() bool { return s != StatusRunning && s != "" }

// settled reports whether a run ended for good: a cancelled run of a request
// is run again by the next owner of its partition, under the same id.
func (s Status) settled() bool { return s == StatusSucceeded || s == StatusFailed }

// Run is one sync of one service: the record listed by GET /api/sync-runs.
type Run struct {
	ID          string
	ServiceID   string
	ServiceType string
	Trigger     Trigger
	Status      Status
	StartedAt   time.Time
	FinishedAt  time.Time // zero while running

	RecordsRead    uint64 // events handed to Emit plus records skipped
	EventsEmitted  uint64 // events Kafka acknowledged
	RecordsSkipped uint64 // records and invalid events skipped

	// Error is the redacted cause of a failed or cancelled run.
	Error string
	// Log holds the run's last log lines (at most Config.LogLines), oldest
	// first: pages, skipped records with their reasons, the outcome.
	Log []string
	// Instance names the engine instance that ran it (Config.Instance).
	Instance string

	// rev orders the versions of the record: the store keeps the highest.
	rev int64
}

// Duration is how long the run took (so far, while running).
func (r Run) Duration(now time.Time) time.Duration {
	if r.FinishedAt.IsZero() {
		return now.Sub(r.StartedAt)
	}
	return r.FinishedAt.Sub(r.StartedAt)
}

// logRing keeps the last n log lines of a run.
type logRing struct {
	n     int
	lines []string
	start int // index of the oldest line once full
}

func (l *logRing) add(at time.Time, format string, args ...any) {
	line := at.UTC().Format("15:04:05.000") + " " + fmt.Sprintf(format, args...)
	line = strings.ReplaceAll(line, "\n", " ")
	if len(l.lines) < l.n {
		l.lines = append(l.lines, line)
		return
	}
	l.lines[l.start] = line
	l.start = (l.start + 1) % l.n
}

// snapshot returns the lines oldest first.
func (l *logRing) snapshot() []string {
	out := make([]string, 0, len(l.lines))
	out = append(out, l.lines[l.start:]...)
	return append(out, l.lines[:l.start]...)
}
