package customers_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/demo"
	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/connectors/source/sourcetest"
	"github.com/uvrhq/uvr/connectors/stripe"
	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/projections/customers"
)

// directory is a Directory on the real Kafka, on topic.
func directory(t *testing.T, topic string) *customers.Directory {
	t.Helper()
	table, err := kafka.NewTable(kafka.TableConfig{Brokers: servicetest.KafkaBrokers(t), Topic: topic})
	require.NoError(t, err)
	t.Cleanup(func() { _ = table.Close() })
	d, err := customers.New(customers.Config{Table: table})
	require.NoError(t, err)
	return d
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func observeAll(t *testing.T, d *customers.Directory, evs []event.Event) {
	t.Helper()
	ctx := testCtx(t)
	for _, ev := range evs {
		require.NoError(t, d.Observe(ctx, ev), ev.ID)
	}
}

// The Airbyte Stripe sample through stripe.Mapper: each customers record is
// a canonical customer with its name, email and environment; every reference
// the revenue streams carry resolves; the records without a customer land on
// the unmapped customer, which is listed.
func TestDirectoryStripeSamples(t *testing.T) {
	records := sourcetest.ReadRecords(t, sourcetest.Samples(t, "airbyte-stripe", "expected_records.jsonl"))
	var evs []event.Event
	type raw struct {
		ID, Email, Name string
		Livemode        bool
	}
	want := map[string]raw{}
	for _, r := range records {
		got, err := stripe.Mapper{}.Map(r.Stream, r.Data)
		require.NoError(t, err)
		evs = append(evs, got...)
		if r.Stream == "customers" {
			var c raw
			require.NoError(t, json.Unmarshal(r.Data, &c))
			want[c.ID] = c
		}
	}
	require.Len(t, want, 3)

	d := directory(t, servicetest.Topic("test.customers.stripe"))
	observeAll(t, d, evs)
	ctx := testCtx(t)
	for id, c := range want {
		ref := customers.Ref{Source: "stripe", ExternalID: id}
		got, err := d.Get(ctx, d.Resolve(ref))
		require.NoError(t, err, id)
		assert.Equal(t, customers.SelfID(ref), got.ID)
		assert.Equal(t, c.Name, got.Name)
		assert.Equal(t, []string{c.Email}, got.Emails)
		assert.Equal(t, "test", got.Environment, "livemode false")
		assert.Equal(t, []customers.Ref{ref}, got.References)
	}
	snap := d.Snapshot()
	unmapped := 0
	for _, ev := range evs {
		ref := customers.Ref{Source: ev.Data.Customer.Source, ExternalID: ev.Data.Customer.ExternalID}
		require.Contains(t, snap, ref, "every reference seen is in the snapshot")
		if ref.ExternalID == source.UnmappedCustomer {
			unmapped++
			assert.Equal(t, customers.UnmappedID, snap[ref])
		}
	}
	require.Positive(t, unmapped, "the sample has revenue without a customer")
	list, total, err := d.List(ctx, "", 0, 0)
	require.NoError(t, err)
	assert.Equal(t, len(list), total)
	ids := map[string]bool{}
	for _, c := range list {
		ids[c.ID] = true
	}
	assert.True(t, ids[customers.UnmappedID], "the unmapped customer is listed")
	un, err := d.Unmapped(ctx)
	require.NoError(t, err)
	assert.Contains(t, un, customers.Reference{
		Ref: customers.Ref{Source: "stripe", ExternalID: "unmapped"}, CustomerID: customers.UnmappedID,
		CustomerName: "Unmapped", Rule: customers.RuleUnmapped,
	})

	// Observing the same events again writes nothing new and changes nothing.
	before := d.Snapshot()
	observeAll(t, d, evs)
	assert.Equal(t, before, d.Snapshot())
}

// The demo data set (Seed 1, 3 customers): three canonical customers with
// the name, plan, environment and metadata of their customer events, and
// every usage and revenue event resolving to its customer.
func TestDirectoryDemo(t *testing.T) {
	var evs []event.Event
	cfg := demo.Config{Seed: 1, Customers: 3, Days: 3, Now: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	require.NoError(t, demo.Generate(testCtx(t), cfg, func(ev event.Event) error { evs = append(evs, ev); return nil }))

	d := directory(t, servicetest.Topic("test.customers.demo"))
	observeAll(t, d, evs)
	ctx := testCtx(t)
	list, total, err := d.List(ctx, "", 0, 0)
	require.NoError(t, err)
	require.Equal(t, 3, total)
	byID := map[string]customers.Customer{}
	for _, c := range list {
		byID[c.ID] = c
	}
	n := 0
	for _, ev := range evs {
		ref := customers.Ref{Source: ev.Data.Customer.Source, ExternalID: ev.Data.Customer.ExternalID}
		c, ok := byID[d.Resolve(ref)]
		require.True(t, ok, "%s resolves to a listed customer", ref)
		assert.Equal(t, customers.SelfID(ref), c.ID)
		if ev.Type != event.TypeCustomer {
			continue
		}
		n++
		assert.Equal(t, ev.Data.Customer.Name, c.Name)
		assert.Equal(t, []string{ev.Data.Customer.Email}, c.Emails)
		assert.Equal(t, ev.Data.Plan, c.Plan)
		assert.Equal(t, "production", c.Environment)
		assert.Equal(t, ev.Data.Metadata, c.Metadata)
	}
	assert.Equal(t, 3, n)

	found, total, err := d.List(ctx, list[1].Emails[0], 10, 0)
	require.NoError(t, err)
	assert.Equal(t, 1, total)
	assert.Equal(t, list[1].ID, found[0].ID)
	page, total, err := d.List(ctx, "", 1, 2)
	require.NoError(t, err)
	assert.Equal(t, 3, total)
	assert.Equal(t, []customers.Customer{list[2]}, page)
}

func customerEvent(source, id, email string, version uint32, meta map[string]string) event.Event {
	return event.Event{
		SpecVersion: event.SpecVersion, ID: id, Source: source, Type: event.TypeCustomer,
		Time: time.Date(2026, 1, 1, 0, 0, int(version), 0, time.UTC),
		Data: event.Data{
			Customer: event.Customer{Source: source, ExternalID: id, Email: email, Name: "Name of " + id},
			Version:  version, Metadata: meta, Plan: "pro", Environment: "production",
		},
	}
}

func usageEvent(source, id string) event.Event {
	return event.Event{
		SpecVersion: event.SpecVersion, ID: "u-" + id, Source: source, Type: event.TypeUsage, Time: t0,
		Data: event.Data{Customer: event.Customer{Source: source, ExternalID: id}, Version: 1, Feature: "chat"},
	}
}

// Email linking, metadata ids, mapping files and every manual operation on
// the real Kafka, and a second Directory on the same topic that converges.
func TestDirectoryManualOperations(t *testing.T) {
	topic := servicetest.Topic("test.customers.ops")
	d := directory(t, topic)
	ctx := testCtx(t)
	stripeAnn := customers.Ref{Source: "stripe", ExternalID: "cus_ann"}
	chargebeeAnn := customers.Ref{Source: "chargebee", ExternalID: "ann-1"}
	stripeBob := customers.Ref{Source: "stripe", ExternalID: "cus_bob"}
	braintreeBob := customers.Ref{Source: "braintree", ExternalID: "bob-1"}
	proj := customers.Ref{Source: "openai", ExternalID: "proj_1"}

	observeAll(t, d, []event.Event{
		customerEvent("stripe", "cus_ann", "ann@example.com", 1, nil),
		customerEvent("chargebee", "ann-1", "ANN@example.com", 1, nil),
		customerEvent("braintree", "bob-1", "bob@example.com", 1, nil),
		customerEvent("stripe", "cus_bob", "bob@example.com", 1, map[string]string{customers.MetadataIDKey: "bob-corp"}),
		usageEvent("openai", "proj_1"),
	})

	// Same email across two sources: one customer.
	ann := d.Resolve(stripeAnn)
	assert.Equal(t, customers.SelfID(stripeAnn), ann)
	assert.Equal(t, ann, d.Resolve(chargebeeAnn))
	// The metadata id wins over email, and takes the email group with it.
	assert.Equal(t, "bob-corp", d.Resolve(stripeBob))
	assert.Equal(t, "bob-corp", d.Resolve(braintreeBob))
	// A usage key alone is its own, unmapped customer, until a mapping file names it.
	un, err := d.Unmapped(ctx)
	require.NoError(t, err)
	require.Len(t, un, 1)
	assert.Equal(t, proj, un[0].Ref)
	file := filepath.Join(t.TempDir(), "mapping.yaml")
	require.NoError(t, os.WriteFile(file, []byte("mappings:\n  - {source: openai, external_id: proj_1, customer_id: bob-corp}\n"), 0o600))
	n, err := d.LoadMapping(ctx, file)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, "bob-corp", d.Resolve(proj))

	// Manual unlink survives a later email match.
	c, err := d.Unlink(ctx, chargebeeAnn)
	require.NoError(t, err)
	assert.Equal(t, []customers.Ref{chargebeeAnn}, c.References)
	annSolo := c.ID
	observeAll(t, d, []event.Event{customerEvent("chargebee", "ann-1", "ann@example.com", 2, nil)})
	assert.Equal(t, annSolo, d.Resolve(chargebeeAnn))
	assert.Equal(t, ann, d.Resolve(stripeAnn))

	// Link it back by hand.
	c, err = d.Link(ctx, chargebeeAnn, ann)
	require.NoError(t, err)
	assert.Equal(t, ann, c.ID)
	assert.ElementsMatch(t, []customers.Ref{stripeAnn, chargebeeAnn}, c.References)

	// Merge: one id survives, the other is an alias; old references still resolve.
	c, err = d.Merge(ctx, ann, "bob-corp")
	require.NoError(t, err)
	assert.Equal(t, "bob-corp", c.ID)
	assert.Equal(t, []string{ann}, c.Aliases)
	for _, r := range []customers.Ref{stripeAnn, chargebeeAnn, stripeBob, braintreeBob, proj} {
		assert.Equal(t, "bob-corp", d.Resolve(r), r.String())
	}
	old, err := d.Get(ctx, ann)
	require.NoError(t, err)
	assert.Equal(t, "bob-corp", old.ID, "the merged id resolves to the survivor")

	// Split the Ann references back out.
	left, created, err := d.Split(ctx, "bob-corp", []customers.Ref{stripeAnn, chargebeeAnn})
	require.NoError(t, err)
	assert.Equal(t, "bob-corp", left.ID)
	assert.ElementsMatch(t, []customers.Ref{stripeBob, braintreeBob, proj}, left.References)
	assert.ElementsMatch(t, []customers.Ref{stripeAnn, chargebeeAnn}, created.References)
	assert.Equal(t, created.ID, d.Resolve(stripeAnn))

	// Errors carry their kind.
	_, err = d.Get(ctx, "nobody")
	assert.True(t, customers.IsKind(err, customers.KindNotFound), "%v", err)
	_, err = d.Merge(ctx, "bob-corp", "bob-corp")
	assert.True(t, customers.IsKind(err, customers.KindInvalid), "%v", err)

	// A second Directory on the same topic converges after Sync.
	d2 := directory(t, topic)
	require.NoError(t, d2.Sync(ctx))
	assert.Equal(t, d.Snapshot(), d2.Snapshot())
	l1, _, err := d.List(ctx, "", 0, 0)
	require.NoError(t, err)
	l2, _, err := d2.List(ctx, "", 0, 0)
	require.NoError(t, err)
	assert.Equal(t, l1, l2)
	// …and a change made there shows here after Sync.
	_, err = d2.Unlink(ctx, proj)
	require.NoError(t, err)
	require.NoError(t, d.Sync(ctx))
	assert.Equal(t, d2.Snapshot(), d.Snapshot())
	assert.NotEqual(t, "bob-corp", d.Resolve(proj))
}
