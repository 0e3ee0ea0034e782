// Package airbyte brings data from Airbyte into uvr three ways: it runs any
// Airbyte source connector as a process (a PyPI `airbyte-source-*` command or
// `docker run airbyte/source-X`) and maps its records through the vendor's
// source.Mapper (Runner, Source); it imports recorded Airbyte messages from
// files (Importer, for `uvr import airbyte`); and it talks to an Airbyte
// platform (Cloud or self-hosted) through its public API, consuming what the
// platform's destination-kafka writes (Platform, DestinationKafkaHandler).
//
// The message types follow the Airbyte protocol v0 (airbytehq/airbyte-protocol
// @ 776eede0: protocol-models/src/main/resources/airbyte_protocol/v0/
// airbyte_protocol.yaml). Every opaque blob (record data, state,
// JSON schemas, connector config) stays json.RawMessage: uvr never reshapes
// what it only passes back to the connector.
package airbyte

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/uvrhq/uvr/pipeline/event"
)

// MessageType is AirbyteMessage.type.
type MessageType string

// Message types of protocol v0.
const (
	TypeRecord             MessageType = "RECORD"
	TypeState              MessageType = "STATE"
	TypeLog                MessageType = "LOG"
	TypeSpec               MessageType = "SPEC"
	TypeConnectionStatus   MessageType = "CONNECTION_STATUS"
	TypeCatalog            MessageType = "CATALOG"
	TypeTrace              MessageType = "TRACE"
	TypeControl            MessageType = "CONTROL"
	TypeDestinationCatalog MessageType = "DESTINATION_CATALOG"
)

// Message is one AirbyteMessage: Type says which of the other fields is set.
type Message struct {
	Type               MessageType             `json:"type"`
	Log                *LogMessage             `json:"log,omitempty"`
	Spec               *ConnectorSpecification `json:"spec,omitempty"`
	ConnectionStatus   *ConnectionStatus       `json:"connectionStatus,omitempty"`
	Catalog            *Catalog                `json:"catalog,omitempty"`
	Record             *RecordMessage          `json:"record,omitempty"`
	State              *StateMessage           `json:"state,omitempty"`
	Trace              *TraceMessage           `json:"trace,omitempty"`
	Control            *ControlMessage         `json:"control,omitempty"`
	DestinationCatalog json.RawMessage         `json:"destination_catalog,omitempty"`
}

// Millis is an epoch time in milliseconds. The protocol declares
// record.emitted_at an integer but trace and control emitted_at a number, and
// real connectors write both forms (1795744991257.525, 3.1336416e12): any JSON
// number is accepted and truncated to whole milliseconds.
type Millis int64

// UnmarshalJSON reads any JSON number (integer, fraction or exponent form)
// from its text, never through float64.
func (m *Millis) UnmarshalJSON(b []byte) error {
	text := string(bytes.TrimSpace(b))
	if text == "null" {
		return nil
	}
	// On the text first (event.ParseDecimal): IntPart of 9e99999999 would
	// build a number of a hundred million digits.
	d, err := event.ParseDecimal(text, 16, 9)
	if err != nil {
		return fmt.Errorf("emitted_at: want epoch milliseconds, got %s: %w", text, err)
	}
	*m = Millis(d.IntPart())
	return nil
}

// Time is m as a UTC time.
func (m Millis) Time() time.Time { return time.UnixMilli(int64(m)).UTC() }

// RecordMessage carries one record of a stream.
type RecordMessage struct {
	Namespace     string          `json:"namespace,omitempty"`
	Stream        string          `json:"stream"`
	Data          json.RawMessage `json:"data"`
	EmittedAt     Millis          `json:"emitted_at"`
	Meta          *RecordMeta     `json:"meta,omitempty"`
	FileReference json.RawMessage `json:"file_reference,omitempty"`
}

// StreamDescriptor names the record's stream.
func (r RecordMessage) StreamDescriptor() StreamDescriptor {
	return StreamDescriptor{Name: r.Stream, Namespace: r.Namespace}
}

// RecordMeta lists changes the source made to a record while syncing.
type RecordMeta struct {
	Changes []RecordMetaChange `json:"changes,omitempty"`
}

// RecordMetaChange is one field the source nulled or truncated, and why.
type RecordMetaChange struct {
	Field  string `json:"field"`
	Change string `json:"change"` // NULLED, TRUNCATED
	Reason string `json:"reason"`
}

// StateType is AirbyteStateMessage.type; absent means LEGACY.
type StateType string

// State types.
const (
	StateGlobal StateType = "GLOBAL"
	StateStream StateType = "STREAM"
	StateLegacy StateType = "LEGACY"
)

// StateMessage is a checkpoint: every record the source emitted before it
// is covered, and a read started with it resumes after them.
type StateMessage struct {
	Type             StateType       `json:"type,omitempty"`
	Stream           *StreamState    `json:"stream,omitempty"`
	Global           *GlobalState    `json:"global,omitempty"`
	Data             json.RawMessage `json:"data,omitempty"` // LEGACY
	SourceStats      *StateStats     `json:"sourceStats,omitempty"`
	DestinationStats *StateStats     `json:"destinationStats,omitempty"`
}

// Kind is the state's type with the protocol's default applied (LEGACY).
func (s StateMessage) Kind() StateType {
	if s.Type == "" {
		return StateLegacy
	}
	return s.Type
}

// StreamState is the state of one stream.
type StreamState struct {
	StreamDescriptor StreamDescriptor `json:"stream_descriptor"`
	StreamState      json.RawMessage  `json:"stream_state,omitempty"`
}

// GlobalState is one shared state (e.g. a CDC position) plus per-stream states.
type GlobalState struct {
	SharedState  json.RawMessage `json:"shared_state,omitempty"`
	StreamStates []StreamState   `json:"stream_states"`
}

// StreamDescriptor names a stream.
type StreamDescriptor struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

func (d StreamDescriptor) String() string {
	if d.Namespace == "" {
		return d.Name
	}
	return d.Namespace + "." + d.Name
}

// StateStats counts the records a state covers. The protocol sends doubles
// ("recordCount": 2.0); they are kept as the number's text.
type StateStats struct {
	RecordCount         json.Number `json:"recordCount,omitempty"`
	RejectedRecordCount json.Number `json:"rejectedRecordCount,omitempty"`
}

// LogMessage is a line the connector wants the platform to record.
type LogMessage struct {
	Level      string `json:"level"` // FATAL, ERROR, WARN, INFO, DEBUG, TRACE
	Message    string `json:"message"`
	StackTrace string `json:"stack_trace,omitempty"`
}

// TraceType is AirbyteTraceMessage.type.
type TraceType string

// Trace types.
const (
	TraceTypeError        TraceType = "ERROR"
	TraceTypeEstimate     TraceType = "ESTIMATE"
	TraceTypeStreamStatus TraceType = "STREAM_STATUS"
	TraceTypeAnalytics    TraceType = "ANALYTICS"
)

// TraceMessage reports an error, an estimate, a stream's status or analytics.
type TraceMessage struct {
	Type         TraceType          `json:"type"`
	EmittedAt    Millis             `json:"emitted_at"`
	Error        *ErrorTrace        `json:"error,omitempty"`
	Estimate     *EstimateTrace     `json:"estimate,omitempty"`
	StreamStatus *StreamStatusTrace `json:"stream_status,omitempty"`
	Analytics    *AnalyticsTrace    `json:"analytics,omitempty"`
}

// ErrorTrace is the error that ends a connector's command.
type ErrorTrace struct {
	Message          string            `json:"message"`
	InternalMessage  string            `json:"internal_message,omitempty"`
	StackTrace       string            `json:"stack_trace,omitempty"`
	FailureType      string            `json:"failure_type,omitempty"` // system_error, config_error, transient_error
	StreamDescriptor *StreamDescriptor `json:"stream_descriptor,omitempty"`
}

// EstimateTrace is a guess at how much a stream (or the sync) will emit.
type EstimateTrace struct {
	Name         string      `json:"name"`
	Type         string      `json:"type"` // STREAM, SYNC
	Namespace    string      `json:"namespace,omitempty"`
	RowEstimate  json.Number `json:"row_estimate,omitempty"`
	ByteEstimate json.Number `json:"byte_estimate,omitempty"`
}

// Stream statuses.
const (
	StatusStarted    = "STARTED"
	StatusRunning    = "RUNNING"
	StatusComplete   = "COMPLETE"
	StatusIncomplete = "INCOMPLETE"
)

// StreamStatusTrace is the status of one stream within a sync.
type StreamStatusTrace struct {
	StreamDescriptor StreamDescriptor     `json:"stream_descriptor"`
	Status           string               `json:"status"`
	Reasons          []StreamStatusReason `json:"reasons,omitempty"`
}

// StreamStatusReason says why a stream has its status (RATE_LIMITED).
type StreamStatusReason struct {
	Type        string `json:"type"`
	RateLimited *struct {
		QuotaReset *Millis `json:"quota_reset,omitempty"`
	} `json:"rate_limited,omitempty"`
}

// AnalyticsTrace is a connector-specific usage fact.
type AnalyticsTrace struct {
	Type  string `json:"type"`
	Value string `json:"value,omitempty"`
}

// ControlMessage asks the platform to persist something, such as a refreshed
// OAuth token in the connector's config.
type ControlMessage struct {
	Type            string `json:"type"` // CONNECTOR_CONFIG
	EmittedAt       Millis `json:"emitted_at"`
	ConnectorConfig *struct {
		Config json.RawMessage `json:"config"`
	} `json:"connectorConfig,omitempty"`
}

// Connection statuses.
const (
	CheckSucceeded = "SUCCEEDED"
	CheckFailed    = "FAILED"
)

// ConnectionStatus is the answer to `check`.
type ConnectionStatus struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

// Catalog is the answer to `discover`: the streams a source offers.
type Catalog struct {
	Streams []Stream `json:"streams"`
}

// Sync modes.
const (
	SyncFullRefresh = "full_refresh"
	SyncIncremental = "incremental"
)

// Stream describes one stream of a source.
type Stream struct {
	Name                    string          `json:"name"`
	JSONSchema              json.RawMessage `json:"json_schema"`
	SupportedSyncModes      []string        `json:"supported_sync_modes"`
	SourceDefinedCursor     bool            `json:"source_defined_cursor,omitempty"`
	DefaultCursorField      []string        `json:"default_cursor_field,omitempty"`
	SourceDefinedPrimaryKey [][]string      `json:"source_defined_primary_key,omitempty"`
	Namespace               string          `json:"namespace,omitempty"`
	IsResumable             bool            `json:"is_resumable,omitempty"`
	IsFileBased             bool            `json:"is_file_based,omitempty"`
}

// ConfiguredCatalog is what `read` is asked to read.
type ConfiguredCatalog struct {
	Streams []ConfiguredStream `json:"streams"`
}

// ConfiguredStream is one stream of a ConfiguredCatalog with its sync mode.
type ConfiguredStream struct {
	Stream              Stream     `json:"stream"`
	SyncMode            string     `json:"sync_mode"`
	CursorField         []string   `json:"cursor_field,omitempty"`
	DestinationSyncMode string     `json:"destination_sync_mode"`
	PrimaryKey          [][]string `json:"primary_key,omitempty"`
	GenerationID        *int64     `json:"generation_id,omitempty"`
	MinimumGenerationID *int64     `json:"minimum_generation_id,omitempty"`
	SyncID              *int64     `json:"sync_id,omitempty"`
}

// ConnectorSpecification is the answer to `spec`.
type ConnectorSpecification struct {
	DocumentationURL              string          `json:"documentationUrl,omitempty"`
	ChangelogURL                  string          `json:"changelogUrl,omitempty"`
	ConnectionSpecification       json.RawMessage `json:"connectionSpecification"`
	SupportsIncremental           bool            `json:"supportsIncremental,omitempty"`
	SupportsNormalization         bool            `json:"supportsNormalization,omitempty"`
	SupportsDBT                   bool            `json:"supportsDBT,omitempty"`
	SupportedDestinationSyncModes []string        `json:"supported_destination_sync_modes,omitempty"`
	AuthSpecification             json.RawMessage `json:"authSpecification,omitempty"`
	AdvancedAuth                  json.RawMessage `json:"advanced_auth,omitempty"`
	ProtocolVersion               string          `json:"protocol_version,omitempty"`
}

// ParseMessage decodes one AirbyteMessage and checks that the part its type
// names is there with its required fields. A bare record body
// ({"stream","data","emitted_at"} with no "type", the form of the
// connectors' expected_records.jsonl) is accepted as a RECORD.
func ParseMessage(b []byte) (Message, error) {
	var probe struct {
		Type   *string         `json:"type"`
		Stream json.RawMessage `json:"stream"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "unexpected end of JSON input") {
			return Message{}, fmt.Errorf("invalid JSON: %s", jsonReason(err))
		}
		return Message{}, fmt.Errorf("not a JSON object: %s", jsonReason(err))
	}
	if probe.Type == nil {
		if probe.Stream == nil || probe.Data == nil {
			return Message{}, errors.New(`neither an Airbyte message (no "type") nor a bare record ({"stream", "data", "emitted_at"})`)
		}
		var rec RecordMessage
		if err := json.Unmarshal(b, &rec); err != nil {
			return Message{}, fmt.Errorf("bare record: %s", jsonReason(err))
		}
		m := Message{Type: TypeRecord, Record: &rec}
		return m, m.Validate()
	}
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		return Message{}, fmt.Errorf("%s message: %s", *probe.Type, jsonReason(err))
	}
	return m, m.Validate()
}

// Validate checks that the message carries what its type requires.
func (m Message) Validate() error {
	missing := func(field string) error {
		return fmt.Errorf("%s message without %s", m.Type, field)
	}
	switch m.Type {
	case TypeRecord:
		switch {
		case m.Record == nil:
			return missing("record")
		case m.Record.Stream == "":
			return missing("record.stream")
		case !isObject(m.Record.Data):
			return errors.New("RECORD message: record.data must be a JSON object")
		}
	case TypeState:
		if m.State == nil {
			return missing("state")
		}
		switch m.State.Kind() {
		case StateStream:
			if m.State.Stream == nil || m.State.Stream.StreamDescriptor.Name == "" {
				return missing("state.stream.stream_descriptor.name")
			}
		case StateGlobal:
			if m.State.Global == nil {
				return missing("state.global")
			}
		case StateLegacy:
			if m.State.Data == nil {
				return missing("state.data")
			}
		default:
			return fmt.Errorf("STATE message of unknown type %q (want GLOBAL, STREAM or LEGACY)", m.State.Type)
		}
	case TypeLog:
		if m.Log == nil {
			return missing("log")
		}
	case TypeSpec:
		if m.Spec == nil {
			return missing("spec")
		}
	case TypeConnectionStatus:
		if m.ConnectionStatus == nil || m.ConnectionStatus.Status == "" {
			return missing("connectionStatus.status")
		}
	case TypeCatalog:
		if m.Catalog == nil {
			return missing("catalog")
		}
	case TypeTrace:
		if m.Trace == nil || m.Trace.Type == "" {
			return missing("trace.type")
		}
		if m.Trace.Type == TraceTypeError && m.Trace.Error == nil {
			return missing("trace.error")
		}
	case TypeControl:
		if m.Control == nil {
			return missing("control")
		}
	case TypeDestinationCatalog:
		if m.DestinationCatalog == nil {
			return missing("destination_catalog")
		}
	default:
		return fmt.Errorf("unknown message type %q", m.Type)
	}
	return nil
}

func isObject(b json.RawMessage) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 0 && b[0] == '{'
}

// jsonReason shortens encoding/json's errors to the part a person needs.
func jsonReason(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Sprintf("%s (at byte %d)", syn.Error(), syn.Offset)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		field := typ.Field
		if field == "" {
			field = "(value)"
		}
		return fmt.Sprintf("%s must be %s, got %s", field, typ.Type, typ.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}
