package syncer

import (
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRedact(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"url userinfo", "GET https://admin:hunter2secret@api.example.com/v1: EOF", "GET https://[REDACTED]@api.example.com/v1: EOF"},
		{"query key", "GET /v1/usage?api_key=abc123def456&page=2", "GET /v1/usage?api_key=[REDACTED]&page=2"},
		{"bearer header", "sent Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.x.y", "sent Authorization: Bearer [REDACTED]"},
		{"basic header", "Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic [REDACTED]"},
		{"json pair", `{"secret_access_key": "wJalrXUtnFEMI/K7MDENG", "region": "us-east-1"}`, `{"secret_access_key": "[REDACTED]", "region": "us-east-1"}`},
		{"colon pair", "client_secret: s3cr3tvalue, next", "client_secret: [REDACTED], next"},
		{"openai key", "Incorrect API key provided: sk-proj-AbCdEf0123456789.", "Incorrect API key provided: [REDACTED]."},
		{"stripe key", "Invalid API Key provided: sk_live_51HxYzABCDEFGHIJ", "Invalid API Key provided: [REDACTED]"},
		{"aws key id", "The security token AKIAIOSFODNN7EXAMPLE is invalid", "The security token [REDACTED] is invalid"},
		{"nothing to hide", "stripe /v1/invoices: HTTP 500: internal error (page 3)", "stripe /v1/invoices: HTTP 500: internal error (page 3)"},
		{"plain words survive", "the token expired; rotate the key", "the token expired; rotate the key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, redact(tt.in))
		})
	}
}

func TestLogRingKeepsTheLastLines(t *testing.T) {
	at := time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)
	l := logRing{n: 3}
	assert.Empty(t, l.snapshot())
	for i := 1; i <= 5; i++ {
		l.add(at, "line %d\nwith a newline", i)
	}
	assert.Equal(t, []string{
		"09:30:00.000 line 3 with a newline",
		"09:30:00.000 line 4 with a newline",
		"09:30:00.000 line 5 with a newline",
	}, l.snapshot())
}

func TestFindSQL(t *testing.T) {
	tests := []struct {
		name     string
		q        RunQuery
		wantSQL  string
		wantArgs []any
	}{
		{
			name:    "everything",
			q:       RunQuery{},
			wantSQL: "SELECT " + runColumns + " FROM sync_runs FINAL ORDER BY started_at_ns DESC, id DESC",
		},
		{
			name:     "one service, limited",
			q:        RunQuery{ServiceID: "svc_1", Limit: 20},
			wantSQL:  "SELECT " + runColumns + " FROM sync_runs FINAL WHERE service_id = ? ORDER BY started_at_ns DESC, id DESC LIMIT 20",
			wantArgs: []any{"svc_1"},
		},
		{
			name:     "ids and statuses",
			q:        RunQuery{IDs: []string{"a", "b"}, Statuses: []Status{StatusSucceeded, StatusFailed}, Limit: 1},
			wantSQL:  "SELECT " + runColumns + " FROM sync_runs FINAL WHERE id IN ? AND status IN ? ORDER BY started_at_ns DESC, id DESC LIMIT 1",
			wantArgs: []any{clickhouse.GroupSet{Value: []any{"a", "b"}}, clickhouse.GroupSet{Value: []any{"succeeded", "failed"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sql, args := findSQL(tt.q)
			assert.Equal(t, tt.wantSQL, sql)
			assert.Equal(t, tt.wantArgs, args)
		})
	}
}

func TestConfigValidate(t *testing.T) {
	err := Config{EventsTopic: "t", RequestsTopic: "t", LogLines: -1, PollInterval: -1, HandoverWait: -1}.Validate()
	require.Error(t, err)
	for _, want := range []string{"Services is required", "State is required", "Runs is required", "Publisher is required",
		"must differ", "log lines", "poll interval", "handover wait"} {
		assert.Contains(t, err.Error(), want)
	}
	assert.Contains(t, Config{}.Validate().Error(), "EventsTopic is required")
}

func TestTriggerAndStatus(t *testing.T) {
	for _, tr := range []Trigger{TriggerSchedule, TriggerManual, TriggerAPI} {
		assert.True(t, tr.valid(), tr)
	}
	assert.False(t, Trigger("cron").valid())
	for st, want := range map[Status][2]bool{
		StatusRunning: {false, false}, StatusSucceeded: {true, true}, StatusFailed: {true, true}, StatusCancelled: {true, false},
	} {
		assert.Equal(t, want, [2]bool{st.Finished(), st.settled()}, fmt.Sprint(st))
	}
}
