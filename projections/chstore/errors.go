package chstore

import (
	"errors"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
)

// ValueError reports a value its column cannot hold (InsertColumns refuses
// it before sending). Row is the row's index in the insert's columns.
type ValueError struct {
	Table, Column string
	Row           int
	Reason        string
}

func (e *ValueError) Error() string {
	return fmt.Sprintf("insert into %s: row %d: column %s: %s", e.Table, e.Row, e.Column, e.Reason)
}

// Failure classes of a write, as Classify names them. They label
// uvr_deadletters_total: a fixed, bounded set.
const (
	// ClassTransient may pass on a retry: ClickHouse down or restarting, a
	// network error, a timeout, too many parts, a memory limit, and anything
	// not known to be permanent.
	ClassTransient = "transient"
	// ClassValue: a value the table cannot hold. Retrying the same rows
	// fails the same way; the rows that carry it must be set aside.
	ClassValue = "value"
	// ClassSchema: the statement does not fit the table (a missing column, a
	// type mismatch). Retrying fails the same way until the schema changes.
	ClassSchema = "schema"
)

// Exception codes of ClickHouse (src/Common/ErrorCodes.cpp) that no retry
// of the same insert can cure. Every other code is transient: among them
// 3 UNEXPECTED_END_OF_FILE, 159 TIMEOUT_EXCEEDED, 202
// TOO_MANY_SIMULTANEOUS_QUERIES, 209 SOCKET_TIMEOUT, 210 NETWORK_ERROR, 241
// MEMORY_LIMIT_EXCEEDED, 242 TABLE_IS_READ_ONLY and 252 TOO_MANY_PARTS
// (which is also the code of "too many partitions for single INSERT block":
// InsertColumns never sends one).
var (
	valueCodes = map[int32]string{
		6:   "CANNOT_PARSE_TEXT",
		27:  "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
		38:  "CANNOT_PARSE_DATE",
		41:  "CANNOT_PARSE_DATETIME",
		69:  "ARGUMENT_OUT_OF_BOUND",
		70:  "CANNOT_CONVERT_TYPE",
		72:  "CANNOT_PARSE_NUMBER",
		117: "INCORRECT_DATA",
		131: "TOO_LARGE_STRING_SIZE",
		321: "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
		349: "CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN",
		407: "DECIMAL_OVERFLOW",
		469: "VIOLATED_CONSTRAINT",
	}
	schemaCodes = map[int32]string{
		8:  "THERE_IS_NO_COLUMN",
		10: "NOT_FOUND_COLUMN_IN_BLOCK",
		16: "NO_SUCH_COLUMN_IN_TABLE",
		20: "NUMBER_OF_COLUMNS_DOESNT_MATCH",
		43: "ILLEGAL_TYPE_OF_ARGUMENT",
		44: "ILLEGAL_COLUMN",
		47: "UNKNOWN_IDENTIFIER",
		50: "UNKNOWN_TYPE",
		53: "TYPE_MISMATCH",
		60: "UNKNOWN_TABLE",
		62: "SYNTAX_ERROR",
		81: "UNKNOWN_DATABASE",
	}
)

// Classify names the class of a write's error: ClassValue or ClassSchema
// when retrying the same rows cannot succeed, ClassTransient otherwise
// (nil included). It reads a *ValueError, the driver's refusals of a Go
// value (*column.DateOverflowError and its conversion errors) and the code
// of a *clickhouse.Exception, through any wrapping.
func Classify(err error) string {
	var (
		value     *ValueError
		overflow  *column.DateOverflowError
		converter *column.ColumnConverterError
		colType   *column.UnsupportedColumnTypeError
		exception *clickhouse.Exception
	)
	switch {
	case err == nil:
		return ClassTransient
	case errors.As(err, &value), errors.As(err, &overflow):
		return ClassValue
	case errors.As(err, &converter), errors.As(err, &colType):
		return ClassSchema
	case errors.As(err, &exception):
		if _, ok := valueCodes[exception.Code]; ok {
			return ClassValue
		}
		if _, ok := schemaCodes[exception.Code]; ok {
			return ClassSchema
		}
	}
	return ClassTransient
}

// IsPermanent reports whether retrying the write that failed with err
// cannot succeed (Classify is not ClassTransient).
func IsPermanent(err error) bool { return Classify(err) != ClassTransient }
