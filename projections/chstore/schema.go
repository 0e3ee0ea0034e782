package chstore

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// tableSchema is what InsertColumns must know of a table to send only
// inserts the table can take: the column its PARTITION BY toYYYYMM(…) reads,
// and the precision of its Decimal columns (the driver wraps a value beyond
// them silently instead of refusing it).
type tableSchema struct {
	partitionColumn string // "" when the table is not partitioned
	decimals        map[string]decimalType
}

type decimalType struct{ precision, scale int32 }

func (d decimalType) String() string { return fmt.Sprintf("Decimal(%d, %d)", d.precision, d.scale) }

var (
	createTable   = regexp.MustCompile(`(?is)^CREATE TABLE(?: IF NOT EXISTS)?\s+(\w+)\s*\((.*)\)\s*ENGINE\b(.*)$`)
	partitionBy   = regexp.MustCompile(`(?is)\bPARTITION BY\s+(.+?)\s*(?:ORDER BY|PRIMARY KEY|SAMPLE BY|SETTINGS|$)`)
	monthOf       = regexp.MustCompile(`^toYYYYMM\((\w+)\)$`)
	decimalColumn = regexp.MustCompile(`(?m)^\s*(\w+)\s+Decimal\((\d+),\s*(\d+)\)`)
	addDecimal    = regexp.MustCompile(`(?is)^ALTER TABLE\s+(\w+)\s+ADD COLUMN(?: IF NOT EXISTS)?\s+(\w+)\s+Decimal\((\d+),\s*(\d+)\)`)
)

// schemas reads the tables' schema from the embedded migrations, once: they
// are the one definition of the tables (TestSchemaMatchesTheServer checks
// the reading against a migrated server).
var schemas = sync.OnceValues(func() (map[string]tableSchema, error) {
	stmts, err := Statements()
	if err != nil {
		return nil, err
	}
	return parseSchemas(stmts)
})

// parseSchemas reads CREATE TABLE and ALTER TABLE … ADD COLUMN statements. A
// PARTITION BY other than toYYYYMM(column) is an error: InsertColumns would
// not know how to keep an insert within max_partitions_per_insert_block.
func parseSchemas(stmts []string) (map[string]tableSchema, error) {
	out := map[string]tableSchema{}
	for _, stmt := range stmts {
		if m := createTable.FindStringSubmatch(stmt); m != nil {
			s := tableSchema{decimals: map[string]decimalType{}}
			for _, d := range decimalColumn.FindAllStringSubmatch(m[2], -1) {
				s.decimals[d[1]] = decimalOf(d[2], d[3])
			}
			if p := partitionBy.FindStringSubmatch(m[3]); p != nil {
				col := monthOf.FindStringSubmatch(strings.TrimSpace(p[1]))
				if col == nil {
					return nil, fmt.Errorf("table %s: PARTITION BY %s: only toYYYYMM(column) is supported by InsertColumns", m[1], p[1])
				}
				s.partitionColumn = col[1]
			}
			out[m[1]] = s
			continue
		}
		if m := addDecimal.FindStringSubmatch(stmt); m != nil {
			if s, ok := out[m[1]]; ok {
				s.decimals[m[2]] = decimalOf(m[3], m[4])
			}
		}
	}
	return out, nil
}

func decimalOf(p, s string) decimalType {
	precision, _ := strconv.Atoi(p) // the regexp matched digits
	scale, _ := strconv.Atoi(s)
	return decimalType{precision: int32(precision), scale: int32(scale)}
}
