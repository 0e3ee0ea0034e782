package customers

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// MappingEntry maps one reference (typically a usage key: an OpenAI project,
// an Anthropic workspace, an AWS tag value) to a customer, by id or by name.
type MappingEntry struct {
	Source       string `json:"source" yaml:"source"`
	ExternalID   string `json:"external_id" yaml:"external_id"`
	CustomerID   string `json:"customer_id,omitempty" yaml:"customer_id"`
	CustomerName string `json:"customer_name,omitempty" yaml:"customer_name"`
}

// mappingFile is the file's shape (YAML, or JSON, which YAML reads):
//
//	mappings:
//	  - {source: openai, external_id: proj_1, customer_id: acme, customer_name: Acme Inc}
//	  - {source: anthropic, external_id: wrkspc_9, customer_name: Acme Inc}
type mappingFile struct {
	Mappings []MappingEntry `json:"mappings" yaml:"mappings"`
}

// ParseMapping reads a mapping file and checks every entry, reporting every
// problem at once with its position.
func ParseMapping(data []byte) ([]MappingEntry, error) {
	var f mappingFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, newError(KindInvalid, "mapping file is not valid YAML/JSON of the form {mappings: [{source, external_id, customer_id | customer_name}]}", err)
	}
	var errs []string
	seen := map[Ref]int{}
	for i, e := range f.Mappings {
		field := fmt.Sprintf("mappings[%d].", i)
		r := Ref{Source: e.Source, ExternalID: e.ExternalID}
		if err := ValidateRef(r, field); err != nil {
			errs = append(errs, err.Error())
		}
		if strings.TrimSpace(e.CustomerID) == "" && strings.TrimSpace(e.CustomerName) == "" {
			errs = append(errs, field+"customer_id or "+field+"customer_name is required")
		}
		if j, dup := seen[r]; dup {
			errs = append(errs, fmt.Sprintf("%s: %s is already mapped by mappings[%d]", field[:len(field)-1], r, j))
		}
		seen[r] = i
	}
	if len(errs) > 0 {
		return nil, newError(KindInvalid, strings.Join(errs, "; "), nil)
	}
	return f.Mappings, nil
}

// PlanMapping turns mapping entries into mapping records, and a customer
// record for each customer an entry names (by id with a name, or by name
// only: NameID(name)).
func PlanMapping(entries []MappingEntry, now time.Time) Change {
	ch := Change{Mappings: map[Ref]Mapping{}, Records: map[string]Record{}}
	for _, e := range entries {
		id := strings.TrimSpace(e.CustomerID)
		name := strings.TrimSpace(e.CustomerName)
		if id == "" {
			id = NameID(name)
		}
		ch.Mappings[Ref{Source: e.Source, ExternalID: e.ExternalID}] = Mapping{CustomerID: id, At: now}
		if rec, ok := ch.Records[id]; !ok || (rec.Name == "" && name != "") {
			ch.Records[id] = Record{ID: id, Name: name, CreatedAt: now}
		}
	}
	return ch
}
