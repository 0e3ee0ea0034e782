package customers_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/projections/customers"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func ref(source, id string) customers.Ref { return customers.Ref{Source: source, ExternalID: id} }

// seen is an observation first seen at minute n.
func seen(n int, email string, meta ...string) customers.Observation {
	o := customers.Observation{Email: email, FirstSeen: t0.Add(time.Duration(n) * time.Minute)}
	if len(meta) > 0 {
		o.Metadata = map[string]string{customers.MetadataIDKey: meta[0]}
	}
	return o
}

var (
	cus1  = ref("stripe", "cus_1")
	cus2  = ref("stripe", "cus_2")
	proj1 = ref("openai", "proj_1")
	user1 = ref("openai", "user_1")
	ws1   = ref("anthropic", "ws_1")
)

func TestResolveRules(t *testing.T) {
	type want struct {
		id   string
		rule customers.Rule
	}
	cases := []struct {
		name  string
		state customers.State
		want  map[customers.Ref]want
	}{
		{
			name:  "a reference with no customer event is its own customer",
			state: customers.State{Observations: map[customers.Ref]customers.Observation{proj1: seen(0, "")}},
			want:  map[customers.Ref]want{proj1: {customers.SelfID(proj1), customers.RuleSelf}},
		},
		{
			name: "the unmapped reference of every source is the unmapped customer",
			state: customers.State{Observations: map[customers.Ref]customers.Observation{
				ref("stripe", "unmapped"): seen(0, ""), ref("aws", "unmapped"): seen(1, ""),
			}},
			want: map[customers.Ref]want{
				ref("stripe", "unmapped"): {customers.UnmappedID, customers.RuleUnmapped},
				ref("aws", "unmapped"):    {customers.UnmappedID, customers.RuleUnmapped},
			},
		},
		{
			name: "same email across sources, case-insensitive: the earliest seen anchors",
			state: customers.State{Observations: map[customers.Ref]customers.Observation{
				user1: seen(2, " Ann@Example.com"), cus1: seen(1, "ann@example.COM"), cus2: seen(0, "bob@example.com"),
			}},
			want: map[customers.Ref]want{
				cus1:  {customers.SelfID(cus1), customers.RuleSelf},
				user1: {customers.SelfID(cus1), customers.RuleEmail},
				cus2:  {customers.SelfID(cus2), customers.RuleSelf},
			},
		},
		{
			name: "an explicit metadata id wins over email, and the email group follows it",
			state: customers.State{Observations: map[customers.Ref]customers.Observation{
				user1: seen(0, "ann@example.com"), cus1: seen(5, "ann@example.com", "acme"),
			}},
			want: map[customers.Ref]want{
				cus1:  {"acme", customers.RuleMetadata},
				user1: {"acme", customers.RuleEmail},
			},
		},
		{
			name: "two metadata ids with one email: each keeps its own, followers join the earliest",
			state: customers.State{Observations: map[customers.Ref]customers.Observation{
				cus1: seen(0, "a@x.io", "acme"), cus2: seen(1, "a@x.io", "acme-eu"), user1: seen(2, "a@x.io"),
			}},
			want: map[customers.Ref]want{
				cus1: {"acme", customers.RuleMetadata}, cus2: {"acme-eu", customers.RuleMetadata}, user1: {"acme", customers.RuleEmail},
			},
		},
		{
			name: "a mapping entry maps a usage key, before or after it is seen",
			state: customers.State{
				Observations: map[customers.Ref]customers.Observation{proj1: seen(0, "")},
				Mappings:     map[customers.Ref]customers.Mapping{proj1: {CustomerID: "acme"}, ws1: {CustomerID: "acme"}},
			},
			want: map[customers.Ref]want{proj1: {"acme", customers.RuleMapping}, ws1: {"acme", customers.RuleMapping}},
		},
		{
			name: "a manual pin beats mapping, metadata and email",
			state: customers.State{
				Observations: map[customers.Ref]customers.Observation{cus1: seen(0, "a@x.io", "acme"), user1: seen(1, "a@x.io")},
				Mappings:     map[customers.Ref]customers.Mapping{cus1: {CustomerID: "mapped"}},
				Pins:         map[customers.Ref]customers.Pin{cus1: {CustomerID: "manual"}, user1: {CustomerID: "solo", Unlinked: true}},
			},
			want: map[customers.Ref]want{cus1: {"manual", customers.RuleManual}, user1: {"solo", customers.RuleUnlinked}},
		},
		{
			name: "an unlinked reference neither joins nor anchors its email group",
			state: customers.State{
				Observations: map[customers.Ref]customers.Observation{cus1: seen(0, "a@x.io"), user1: seen(1, "a@x.io"), ws1: seen(2, "a@x.io")},
				Pins:         map[customers.Ref]customers.Pin{cus1: {CustomerID: customers.SelfID(cus1), Unlinked: true}},
			},
			want: map[customers.Ref]want{
				cus1:  {customers.SelfID(cus1), customers.RuleUnlinked},
				user1: {customers.SelfID(user1), customers.RuleSelf},
				ws1:   {customers.SelfID(user1), customers.RuleEmail},
			},
		},
		{
			name: "merge aliases are followed, through chains",
			state: customers.State{
				Observations: map[customers.Ref]customers.Observation{cus1: seen(0, ""), cus2: seen(1, ""), proj1: seen(2, "")},
				Aliases: map[string]customers.Alias{
					customers.SelfID(cus1): {Into: customers.SelfID(cus2)}, customers.SelfID(cus2): {Into: customers.SelfID(proj1)},
				},
			},
			want: map[customers.Ref]want{
				cus1:  {customers.SelfID(proj1), customers.RuleSelf},
				cus2:  {customers.SelfID(proj1), customers.RuleSelf},
				proj1: {customers.SelfID(proj1), customers.RuleSelf},
			},
		},
		{
			name: "an alias cycle (corrupt data) stops instead of looping",
			state: customers.State{
				Observations: map[customers.Ref]customers.Observation{proj1: seen(0, "", "a")},
				Aliases:      map[string]customers.Alias{"a": {Into: "b"}, "b": {Into: "a"}},
			},
			want: map[customers.Ref]want{proj1: {"a", customers.RuleMetadata}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := customers.Resolve(tc.state)
			got := map[customers.Ref]want{}
			for r, l := range res.Links {
				got[r] = want{l.CustomerID, l.Rule}
			}
			assert.Equal(t, tc.want, got)
			for r, l := range res.Links {
				c, ok := res.Customers[l.CustomerID]
				require.True(t, ok, "customer of %s exists", r)
				assert.Contains(t, c.References, r)
			}
		})
	}
}

func TestResolveBuildsCustomer(t *testing.T) {
	st := customers.State{Observations: map[customers.Ref]customers.Observation{
		cus1: {Email: "Ann@Example.com", Name: "Ann (old)", Plan: "starter", Environment: "live",
			Metadata: map[string]string{"region": "eu", "tier": "a"}, FirstSeen: t0, UpdatedAt: t0},
		user1: {Email: "ann@example.com", Name: "Ann Corp", Plan: "pro", Metadata: map[string]string{"tier": "b"},
			FirstSeen: t0.Add(time.Hour), UpdatedAt: t0.Add(2 * time.Hour)},
		proj1: {FirstSeen: t0.Add(-time.Hour)},
	}}
	res := customers.Resolve(st)
	c := res.Customers[customers.SelfID(cus1)]
	require.NotNil(t, c)
	assert.Equal(t, "Ann Corp", c.Name, "the customer event applied last names it")
	assert.Equal(t, "pro", c.Plan)
	assert.Equal(t, "live", c.Environment, "the last non-empty value")
	assert.Equal(t, map[string]string{"region": "eu", "tier": "b"}, c.Metadata)
	assert.Equal(t, []string{"ann@example.com"}, c.Emails)
	assert.Equal(t, []customers.Ref{user1, cus1}, c.References, "by source, then external id")
	assert.Equal(t, t0, c.CreatedAt)
	assert.Equal(t, t0.Add(2*time.Hour), c.UpdatedAt)
	assert.Equal(t, "proj_1", res.Customers[customers.SelfID(proj1)].Name, "no name: the external id")
}

func idSeq() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("new_%d", n) }
}

func TestPlanLink(t *testing.T) {
	st := customers.State{Observations: map[customers.Ref]customers.Observation{
		cus1: seen(0, "a@x.io", "acme"), proj1: seen(1, ""), ref("stripe", "unmapped"): seen(2, ""),
	}}
	ch, err := customers.PlanLink(st, proj1, "acme", t0)
	require.NoError(t, err)
	assert.Equal(t, "acme", customers.Resolve(ch.Apply(st)).Links[proj1].CustomerID)

	// A reference not seen yet can be mapped ahead of its first event.
	ch, err = customers.PlanLink(st, ws1, "acme", t0)
	require.NoError(t, err)
	assert.Equal(t, customers.Link{CustomerID: "acme", Rule: customers.RuleManual}, customers.Resolve(ch.Apply(st)).Links[ws1])

	for _, tc := range []struct {
		ref  customers.Ref
		id   string
		kind customers.Kind
		msg  string
	}{
		{proj1, "nobody", customers.KindNotFound, "customer nobody not found"},
		{proj1, "", customers.KindInvalid, "customer_id is required"},
		{ref("", "x"), "acme", customers.KindInvalid, "source is required"},
		{ref("stripe", "unmapped"), "acme", customers.KindInvalid, "unmapped bucket"},
		{proj1, customers.UnmappedID, customers.KindInvalid, "unmapped customer"},
	} {
		_, err := customers.PlanLink(st, tc.ref, tc.id, t0)
		assert.True(t, customers.IsKind(err, tc.kind), "%v: %v", tc, err)
		assert.ErrorContains(t, err, tc.msg)
	}
}

func TestPlanUnlinkSurvivesLaterEmailMatch(t *testing.T) {
	st := customers.State{Observations: map[customers.Ref]customers.Observation{
		cus1: seen(0, "a@x.io"), user1: seen(1, "a@x.io"), ws1: seen(2, "a@x.io"),
	}}
	group := customers.SelfID(cus1)

	// Unlinking the anchor: the rest keep the customer id, the anchor gets a new one.
	ch, err := customers.PlanUnlink(st, cus1, t0, idSeq())
	require.NoError(t, err)
	st = ch.Apply(st)
	res := customers.Resolve(st)
	assert.Equal(t, customers.Link{CustomerID: "new_1", Rule: customers.RuleUnlinked}, res.Links[cus1])
	assert.Equal(t, group, res.Links[user1].CustomerID)
	assert.Equal(t, group, res.Links[ws1].CustomerID)

	// Unlinking a follower: it gets its own id back.
	ch, err = customers.PlanUnlink(st, ws1, t0, idSeq())
	require.NoError(t, err)
	st = ch.Apply(st)
	assert.Equal(t, customers.SelfID(ws1), customers.Resolve(st).Links[ws1].CustomerID)

	// Unlinking again changes nothing; unlinking the old anchor again keeps its new id
	// (its own id is the group's).
	for _, r := range []customers.Ref{cus1, ws1} {
		ch, err = customers.PlanUnlink(st, r, t0.Add(time.Hour), idSeq())
		require.NoError(t, err)
		assert.Equal(t, customers.Resolve(st).Links, customers.Resolve(ch.Apply(st)).Links, r.String())
	}

	// A later email match (a new customer event, a new reference) does not undo either unlink.
	st.Observations[ws1] = customers.Observation{Email: "A@X.IO", Name: "again", FirstSeen: seen(2, "").FirstSeen}
	st.Observations[proj1] = seen(3, "a@x.io")
	res = customers.Resolve(st)
	assert.Equal(t, "new_1", res.Links[cus1].CustomerID)
	assert.Equal(t, customers.SelfID(ws1), res.Links[ws1].CustomerID)
	assert.Equal(t, group, res.Links[proj1].CustomerID, "the new reference joins the group that remains")

	_, err = customers.PlanUnlink(st, ref("x", "never"), t0, idSeq())
	assert.True(t, customers.IsKind(err, customers.KindNotFound), "%v", err)
}

func TestPlanMerge(t *testing.T) {
	st := customers.State{Observations: map[customers.Ref]customers.Observation{
		cus1: seen(0, "", "acme"), cus2: seen(1, "", "acme-old"), proj1: seen(2, ""), ref("aws", "unmapped"): seen(3, ""),
	}}
	ch, err := customers.PlanMerge(st, "acme-old", "acme", t0)
	require.NoError(t, err)
	st = ch.Apply(st)
	res := customers.Resolve(st)
	assert.Equal(t, "acme", res.Links[cus2].CustomerID, "the old reference resolves to the survivor")
	c, ok := res.Lookup("acme-old")
	require.True(t, ok, "the merged id still resolves")
	assert.Equal(t, "acme", c.ID)
	assert.Equal(t, []string{"acme-old"}, c.Aliases)
	assert.Len(t, res.Customers, 3, "acme, proj_1, unmapped")

	// Merging the survivor back is a no-op that would make a cycle: refused.
	_, err = customers.PlanMerge(st, "acme", "acme-old", t0)
	assert.True(t, customers.IsKind(err, customers.KindInvalid), "%v", err)
	// Merging through an old id merges the survivor.
	ch, err = customers.PlanMerge(st, customers.SelfID(proj1), "acme-old", t0)
	require.NoError(t, err)
	assert.Equal(t, "acme", ch.Aliases[customers.SelfID(proj1)].Into)

	// Unlinking a reference whose own id was merged away gives it a new id:
	// the merged id keeps resolving to the survivor.
	merged := ch.Apply(st)
	ch, err = customers.PlanUnlink(merged, proj1, t0, idSeq())
	require.NoError(t, err)
	res = customers.Resolve(ch.Apply(merged))
	assert.Equal(t, "new_1", res.Links[proj1].CustomerID)
	assert.Equal(t, "acme", res.Canonical(customers.SelfID(proj1)))
	assert.Equal(t, "acme", res.Links[cus2].CustomerID)

	for _, tc := range []struct {
		id, into string
		kind     customers.Kind
	}{
		{"nobody", "acme", customers.KindNotFound},
		{"acme", "nobody", customers.KindNotFound},
		{"", "acme", customers.KindInvalid},
		{"acme", "", customers.KindInvalid},
		{customers.UnmappedID, "acme", customers.KindInvalid},
		{"acme", customers.UnmappedID, customers.KindInvalid},
	} {
		_, err := customers.PlanMerge(st, tc.id, tc.into, t0)
		assert.True(t, customers.IsKind(err, tc.kind), "%v: %v", tc, err)
	}
}

func TestPlanSplit(t *testing.T) {
	st := customers.State{Observations: map[customers.Ref]customers.Observation{
		cus1: seen(0, "a@x.io"), user1: seen(1, "a@x.io"), ws1: seen(2, "a@x.io"), proj1: seen(3, ""),
	}}
	group := customers.SelfID(cus1)
	ch, nid, err := customers.PlanSplit(st, group, []customers.Ref{cus1, ws1}, t0, idSeq())
	require.NoError(t, err)
	assert.Equal(t, "new_1", nid)
	res := customers.Resolve(ch.Apply(st))
	assert.Equal(t, "new_1", res.Links[cus1].CustomerID)
	assert.Equal(t, "new_1", res.Links[ws1].CustomerID)
	assert.Equal(t, group, res.Links[user1].CustomerID, "the reference left behind keeps the id though its anchor moved")
	assert.Equal(t, t0, res.Customers["new_1"].CreatedAt)

	for _, tc := range []struct {
		id   string
		refs []customers.Ref
		kind customers.Kind
		msg  string
	}{
		{group, []customers.Ref{cus1, user1, ws1}, customers.KindInvalid, "leave it empty"},
		{group, []customers.Ref{proj1}, customers.KindInvalid, "references[0]: openai/proj_1 does not belong"},
		{group, nil, customers.KindInvalid, "at least one"},
		{group, []customers.Ref{cus1, {Source: "stripe"}}, customers.KindInvalid, "references[1].external_id is required"},
		{"nobody", []customers.Ref{cus1}, customers.KindNotFound, "customer nobody not found"},
		{"", []customers.Ref{cus1}, customers.KindInvalid, "customer_id is required"},
	} {
		_, _, err := customers.PlanSplit(st, tc.id, tc.refs, t0, idSeq())
		assert.True(t, customers.IsKind(err, tc.kind), "%v: %v", tc, err)
		assert.ErrorContains(t, err, tc.msg)
	}
}

func TestParseMapping(t *testing.T) {
	yamlFile := []byte(`
mappings:
  - {source: openai, external_id: proj_1, customer_id: acme, customer_name: Acme Inc}
  - {source: anthropic, external_id: ws_1, customer_name: Globex}
  - source: openai
    external_id: proj_2
    customer_name: globex
`)
	entries, err := customers.ParseMapping(yamlFile)
	require.NoError(t, err)
	require.Len(t, entries, 3)
	res := customers.Resolve(customers.PlanMapping(entries, t0).Apply(customers.State{}))
	assert.Equal(t, "acme", res.Links[proj1].CustomerID)
	assert.Equal(t, "Acme Inc", res.Customers["acme"].Name)
	assert.Equal(t, customers.NameID("Globex"), res.Links[ws1].CustomerID)
	assert.Equal(t, customers.NameID("Globex"), res.Links[ref("openai", "proj_2")].CustomerID, "names match case-insensitively")

	jsonFile := []byte(`{"mappings":[{"source":"openai","external_id":"proj_1","customer_id":"acme"}]}`)
	entries, err = customers.ParseMapping(jsonFile)
	require.NoError(t, err)
	assert.Equal(t, []customers.MappingEntry{{Source: "openai", ExternalID: "proj_1", CustomerID: "acme"}}, entries)

	for name, bad := range map[string]struct{ file, msg string }{
		"no customer":   {`mappings: [{source: openai, external_id: p}]`, "mappings[0].customer_id or mappings[0].customer_name is required"},
		"no source":     {`mappings: [{external_id: p, customer_id: a}]`, "mappings[0].source is required"},
		"duplicate":     {`mappings: [{source: s, external_id: p, customer_id: a}, {source: s, external_id: p, customer_id: b}]`, "mappings[1]: s/p is already mapped by mappings[0]"},
		"unknown field": {`mappings: [{source: s, external_id: p, customer: a}]`, "not valid YAML/JSON"},
		"unmapped":      {`mappings: [{source: s, external_id: unmapped, customer_id: a}]`, "unmapped bucket"},
	} {
		_, err := customers.ParseMapping([]byte(bad.file))
		assert.True(t, customers.IsKind(err, customers.KindInvalid), name)
		assert.ErrorContains(t, err, bad.msg, name)
	}
}
