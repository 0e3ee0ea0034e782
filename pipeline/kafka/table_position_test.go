package kafka_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Position is where a key's current value was written, the same on every
// instance: the order api/access picks its signing secret by.
func TestTablePosition(t *testing.T) {
	brokers := kafkaBrokers(t)
	topic := uniqueTopic(t)
	a := newTable(t, brokers, topic, 1)
	ctx := tableCtx(t)
	require.NoError(t, a.Put(ctx, "first", []byte("1")))
	require.NoError(t, a.Put(ctx, "second", []byte("2")))
	p1, off1, ok := a.Position("first")
	require.True(t, ok)
	p2, off2, ok := a.Position("second")
	require.True(t, ok)
	assert.Equal(t, p1, p2)
	assert.Less(t, off1, off2, "written first, lower offset")

	b := newTable(t, brokers, topic, 1)
	require.NoError(t, b.Sync(ctx))
	bp, boff, ok := b.Position("second")
	require.True(t, ok)
	assert.Equal(t, [2]int64{int64(p2), off2}, [2]int64{int64(bp), boff}, "another instance reads the same position")

	require.NoError(t, a.Put(ctx, "first", []byte("again")))
	_, off3, _ := a.Position("first")
	assert.Greater(t, off3, off2, "a rewrite moves the key")
	require.NoError(t, a.Delete(ctx, "first"))
	_, _, ok = a.Position("first")
	assert.False(t, ok, "a deleted key has no position")
}
