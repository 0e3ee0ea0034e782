package revsettings

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/projections/pricing"
)

func TestValidateMapping(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []PlanFeature
		want []string // field of each problem
	}{
		{"ok", []PlanFeature{{"a", "x"}, {"b", "x"}}, nil},
		{"empty", nil, nil},
		{"no plan", []PlanFeature{{"", "x"}}, []string{"plan"}},
		{"no feature", []PlanFeature{{"a", " "}}, []string{"feature"}},
		{"twice", []PlanFeature{{"a", "x"}, {"a", "y"}}, []string{"plan"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateMapping(tc.in)
			if tc.want == nil {
				assert.NoError(t, err)
				return
			}
			var merr *MappingError
			require.True(t, errors.As(err, &merr))
			var fields []string
			for _, p := range merr.Problems {
				fields = append(fields, p.Field)
			}
			assert.Equal(t, tc.want, fields)
		})
	}
	_, err := ParseMapping("m.json", []byte(`{"mapping":[]}`))
	assert.ErrorContains(t, err, "m.json")
	m, err := ParseMapping("m.json", []byte(`{"mappings":[{"plan":"p","feature":"f"}]}`))
	require.NoError(t, err)
	assert.Equal(t, []PlanFeature{{"p", "f"}}, m)
}

// On the real Kafka: the file is in force until a PUT, which every
// instance reading the topic then sees, an empty mapping included.
func TestStoreOnKafka(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	brokers := servicetest.KafkaBrokers(t)
	open := func(topic string) *kafka.Table {
		tb, err := kafka.NewTable(kafka.TableConfig{Brokers: brokers, Topic: topic})
		require.NoError(t, err)
		t.Cleanup(func() { _ = tb.Close() })
		require.NoError(t, tb.Sync(ctx))
		return tb
	}
	fxTopic, mapTopic := servicetest.Topic("test.revsettings.fx"), servicetest.Topic("test.revsettings.mapping")
	file, err := pricing.ParseFX("fx.csv", []byte("date,base,quote,rate\n2026-03-01,EUR,USD,1.1\n"), "USD")
	require.NoError(t, err)
	s, err := New(Config{Reporting: "USD", FXTable: open(fxTopic), MappingTable: open(mapTopic), FileFX: file,
		FileMapping: []PlanFeature{{"p", "f"}}})
	require.NoError(t, err)

	rates, source, err := s.Rates()
	require.NoError(t, err)
	assert.Equal(t, SourceFile, source)
	require.Len(t, rates, 1)
	day := time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC)
	require.NoError(t, s.PutFX(ctx, []pricing.FXRate{{Day: day, Base: "GBP", Quote: "USD", Rate: decimal.RequireFromString("1.25")}}))
	require.NoError(t, s.PutMapping(ctx, []PlanFeature{}))

	// Another instance on the same topics.
	other, err := New(Config{Reporting: "USD", FXTable: open(fxTopic), MappingTable: open(mapTopic), FileFX: file})
	require.NoError(t, err)
	fx, err := other.FX(ctx)
	require.NoError(t, err)
	got, err := fx.Convert(decimal.NewFromInt(2), "GBP", "USD", day)
	require.NoError(t, err)
	assert.Equal(t, "2.5", got.String())
	_, err = fx.Convert(decimal.NewFromInt(2), "EUR", "USD", day)
	assert.ErrorIs(t, err, pricing.ErrNoRate, "the stored table replaced the file")
	m, source, err := other.Mapping()
	require.NoError(t, err)
	assert.Equal(t, SourceAPI, source)
	assert.Empty(t, m)

	var verr *pricing.ValidationError
	assert.True(t, errors.As(s.PutFX(ctx, []pricing.FXRate{{Day: day, Base: "GBP", Quote: "GBP", Rate: decimal.NewFromInt(1)}}), &verr))
}
