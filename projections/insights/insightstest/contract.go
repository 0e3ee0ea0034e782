package insightstest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/projections/insights"
)

// FlagStore is a Store that also reads one flag (the API's acknowledge and
// resolve).
type FlagStore interface {
	insights.Store
	Get(ctx context.Context, id string) (insights.Flag, bool, error)
}

// StoreContract is the one suite of insights.Store: run it on every
// implementation, each time on a new, empty store.
func StoreContract(t *testing.T, ctx context.Context, s FlagStore) {
	flags, err := s.Load(ctx)
	require.NoError(t, err)
	assert.Empty(t, flags)

	now := time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)
	f := insights.Flag{
		ID: insights.FlagID("k"), Key: "k", Kind: insights.KindUnprofitableCustomer, Severity: insights.SeverityWarning,
		CustomerID: "cust_1", CustomerName: "Acme", Window: insights.LastDays(now, 30), Evidence: map[string]string{"cost": "12.5"},
		Title: "t", Description: "d", Status: insights.StatusOpen, FirstSeen: now, LastSeen: now, Version: 1,
	}
	other := f
	other.ID, other.Key, other.Evidence = insights.FlagID("o"), "o", map[string]string{"cost": "1"}
	require.NoError(t, s.Save(ctx, []insights.Flag{f, other}))
	acked := f
	require.NoError(t, acked.Acknowledge(now.Add(time.Hour)))
	require.NoError(t, s.Save(ctx, []insights.Flag{acked}))
	require.NoError(t, s.Save(ctx, []insights.Flag{f})) // an older version never wins

	flags, err = s.Load(ctx)
	require.NoError(t, err)
	require.Len(t, flags, 2)
	byID := map[string]insights.Flag{flags[0].ID: flags[0], flags[1].ID: flags[1]}
	got := byID[f.ID]
	assert.Equal(t, insights.StatusAcknowledged, got.Status)
	assert.Equal(t, uint64(2), got.Version)
	assert.Equal(t, f.Window, got.Window)
	assert.Equal(t, f.Evidence, got.Evidence)
	assert.Equal(t, "Acme", got.CustomerName)
	assert.True(t, got.FirstSeen.Equal(now))
	assert.True(t, got.AcknowledgedAt.Equal(now.Add(time.Hour)))

	one, ok, err := s.Get(ctx, f.ID)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, insights.StatusAcknowledged, one.Status)
	_, ok, err = s.Get(ctx, "flg_unknown")
	require.NoError(t, err)
	assert.False(t, ok)
}

// DeliveryLogContract is the one suite of insights.DeliveryLog, on a new,
// empty log.
func DeliveryLogContract(t *testing.T, ctx context.Context, s insights.DeliveryLog) {
	now := time.Now()
	got, err := s.Delivered(ctx, "ops", []string{"a", "b"})
	require.NoError(t, err)
	assert.Empty(t, got)

	require.NoError(t, s.MarkDelivered(ctx, "ops", "a", insights.SeverityWarning, now))
	require.NoError(t, s.MarkDelivered(ctx, "ops", "a", insights.SeverityCritical, now))
	require.NoError(t, s.MarkDelivered(ctx, "ops", "a", insights.SeverityInfo, now))
	require.NoError(t, s.MarkDelivered(ctx, "slack", "b", insights.SeverityInfo, now))
	require.NoError(t, s.MarkDelivered(ctx, "ops", "c", insights.SeverityInfo, now))

	got, err = s.Delivered(ctx, "ops", []string{"a", "b"})
	require.NoError(t, err)
	assert.Equal(t, map[string]insights.Severity{"a": insights.SeverityCritical}, got)
}
