package stripe_test

import (
	"testing"

	"github.com/uvrhq/uvr/connectors/source/sourcetest"
	"github.com/uvrhq/uvr/connectors/stripe"
)

// FuzzMapper feeds the Stripe mapper any record under any stream, seeded
// with Airbyte's recorded source-stripe records and stripe-mock's fixtures.
func FuzzMapper(f *testing.F) {
	sourcetest.AddRecordFile(f, sourcetest.Samples(f, "airbyte-stripe", "expected_records.jsonl"))
	for stream, resource := range map[string]string{stripe.StreamCustomers: "customer", stripe.StreamInvoices: "invoice",
		stripe.StreamCharges: "charge", stripe.StreamRefunds: "refund", stripe.StreamCreditNotes: "credit_note",
		stripe.StreamDisputes: "dispute", stripe.StreamSubscriptions: "subscription"} {
		f.Add(stream, []byte(stripeMockResource(f, resource)))
	}
	sourcetest.AddRecords(f, []string{stripe.StreamInvoices, stripe.StreamCharges, stripe.StreamSubscriptions}, sourcetest.EdgeRecords...)
	f.Fuzz(func(t *testing.T, stream string, record []byte) {
		sourcetest.RequireMapperContract(t, stripe.Mapper{}, stream, record)
	})
}
