package custom

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/mapping"
	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/connectors/source/sourcetest"
	"github.com/uvrhq/uvr/pipeline/event"
)

// pageMapper is one page of a custom API as a source.Mapper: its records,
// found at RecordsPath, through the configured mapping (records it cannot
// map are skipped by name, as Read does).
type pageMapper struct{ s *Source }

func (m pageMapper) Map(_ string, body json.RawMessage) ([]event.Event, error) {
	records, err := m.s.records(body)
	if err != nil {
		return nil, err
	}
	var evs []event.Event
	for _, rec := range records {
		got, err := m.s.cfg.Mapping.Map(m.s.cfg.Stream, json.RawMessage(rec.Raw))
		if err == nil {
			evs = append(evs, got...)
		}
	}
	return evs, source.ValidateEvents(m.s.cfg.Stream, evs)
}

// FuzzPage: the body of one page of a custom usage API, mapped by the faker
// example mapping, seeded with source-faker's recorded purchases as a page.
func FuzzPage(f *testing.F) {
	m, err := mapping.Load("../mapping/examples/faker.yaml")
	require.NoError(f, err)
	s, err := New(Config{BaseURL: "https://billing.example.com", APIKey: "k", Mapping: m, Stream: "purchases", RecordsPath: "data"})
	require.NoError(f, err)
	var page [][]byte
	for _, r := range sourcetest.ReadRecords(f, "../mapping/testdata/faker-records.jsonl") {
		if r.Stream == "purchases" {
			page = append(page, r.Data)
		}
	}
	require.NotEmpty(f, page)
	f.Add("", []byte(`{"data":[`+string(bytes.Join(page, []byte(",")))+`]}`))
	f.Add("", []byte(`{"data":[`+string(page[0])+`],"next_cursor":"c"}`))
	sourcetest.AddRecords(f, []string{""}, sourcetest.EdgeRecords...)
	f.Add("", []byte(`{"data":{"0":1}}`))
	f.Add("", []byte(`{"data":[1,"x",null,[],{}]}`))
	f.Fuzz(func(t *testing.T, stream string, body []byte) {
		sourcetest.RequireMapperContract(t, pageMapper{s}, stream, body)
	})
}
