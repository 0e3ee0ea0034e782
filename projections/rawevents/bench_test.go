package rawevents

import (
	"testing"
	"time"
)

// BenchmarkInsertBatch measures the columnar insert of DefaultBatchSize usage
// rows per operation on the real ClickHouse (client and server on this host).
func BenchmarkInsertBatch(b *testing.B) {
	store, _ := newStore(b)
	ctx := testCtx(b)
	rows := manyUsageRows(DefaultBatchSize, "bench")
	for i := range rows {
		rows[i].Event.Data.Attributes = map[string]string{"model": "gpt-4o", "region": "eu"}
	}
	start := time.Now()
	for b.Loop() {
		if err := store.InsertBatch(ctx, rows); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(rows))/time.Since(start).Seconds(), "rows/s")
}
