// Package customers is uvr's identity resolution: every source's reference to
// a customer (a Stripe cus_…, an OpenAI project, an AWS tag value, …) maps to
// exactly one canonical customer.
//
// The rules are pure code (Resolve, and the Plan* functions that turn a
// manual operation into the records it writes); the Directory keeps their
// inputs, observations and decisions, as records of a compacted Kafka topic
// and resolves at read time. Nothing is stored per event: a link, unlink,
// merge or split changes Snapshot, and every consumer that resolves through
// it (the daily aggregates) reflects the change over all of history.
//
// Precedence, strongest first, for one reference:
//
//  1. the literal "unmapped" external id (source.UnmappedCustomer) is always
//     the unmapped customer, id "unmapped";
//  2. a manual decision (link, unlink, split) pins the reference;
//  3. a mapping entry (mapping file) names its customer;
//  4. uvr_customer_id in the metadata of the reference's customer event;
//  5. the same email (case-insensitive) as another reference: the group joins
//     the customer of the earliest seen reference of rules 2–4 with that email
//     (an unlinked reference excepted), else the customer of the earliest
//     seen reference of the group;
//  6. otherwise the reference is its own customer.
//
// The customer id found is then followed through merge aliases, so the id of
// a merged customer keeps resolving to the customer it was merged into.
package customers

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
)

// UnmappedID is the id of the customer every "unmapped" reference resolves
// to: usage or revenue whose source named no customer, kept and listed.
const UnmappedID = "unmapped"

// unmappedExternalID is connectors/source.UnmappedCustomer (not imported:
// projections do not depend on connectors).
const unmappedExternalID = "unmapped"

// MetadataIDKey is the metadata key of a customer event that names the
// canonical customer explicitly (Stripe customer metadata, for instance).
const MetadataIDKey = "uvr_customer_id"

// Ref is one source's reference to a customer.
type Ref struct {
	Source     string `json:"source" yaml:"source"`
	ExternalID string `json:"external_id" yaml:"external_id"`
}

func (r Ref) String() string { return r.Source + "/" + r.ExternalID }

// IsUnmapped reports whether r is the literal unmapped reference.
func (r Ref) IsUnmapped() bool { return r.ExternalID == unmappedExternalID }

func (r Ref) less(o Ref) bool {
	if r.Source != o.Source {
		return r.Source < o.Source
	}
	return r.ExternalID < o.ExternalID
}

// SelfID is the canonical id of the customer a reference is on its own: a
// hash of the reference, so every instance and every replay derives the same
// id, and any external id (slashes, spaces) gives a URL-safe one.
func SelfID(r Ref) string {
	if r.IsUnmapped() {
		return UnmappedID
	}
	sum := sha256.Sum256([]byte(r.Source + "\x00" + r.ExternalID))
	return "cust_" + hex.EncodeToString(sum[:10])
}

// NameID is the id of the customer a mapping entry names by name only, so
// every reference mapped to the same name lands on the same customer.
func NameID(name string) string {
	sum := sha256.Sum256([]byte("name\x00" + strings.ToLower(strings.TrimSpace(name))))
	return "cust_" + hex.EncodeToString(sum[:10])
}

// Rule says why a reference resolves to its customer.
type Rule string

// Rules, in precedence order.
const (
	RuleUnmapped Rule = "unmapped"
	RuleManual   Rule = "manual"   // linked or split by an operator
	RuleUnlinked Rule = "unlinked" // unlinked by an operator: its own customer
	RuleMapping  Rule = "mapping"
	RuleMetadata Rule = "metadata"
	RuleEmail    Rule = "email"
	RuleSelf     Rule = "self"
)

// Observation is what the customer events and the usage/revenue events of one
// reference said about it.
type Observation struct {
	Email       string
	Name        string
	Plan        string
	Environment string
	Metadata    map[string]string
	FirstSeen   time.Time // when this uvr first saw the reference
	UpdatedAt   time.Time // event time of the customer event applied last
}

// MetadataID is the explicit canonical id of the observation, if any.
// The unmapped customer's id is no explicit id: it is a bucket, not a
// customer a source can name.
func (o Observation) MetadataID() string {
	id := strings.TrimSpace(o.Metadata[MetadataIDKey])
	if id == UnmappedID {
		return ""
	}
	return id
}

// Pin is a manual decision about one reference: it resolves to CustomerID.
// Unlinked marks the pin an unlink (the reference is its own customer).
type Pin struct {
	CustomerID string
	Unlinked   bool
	At         time.Time
}

// Mapping is a mapping-file entry: the reference belongs to CustomerID.
type Mapping struct {
	CustomerID string
	At         time.Time
}

// Record is a customer that exists by decision rather than by observation (a
// split's new customer, a mapping's named customer), and a name that
// overrides the observed ones.
type Record struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// Alias records a merge: ID now resolves to Into.
type Alias struct {
	Into string
	At   time.Time
}

// State is every input of resolution. The zero value is empty and usable.
type State struct {
	Observations map[Ref]Observation
	Pins         map[Ref]Pin
	Mappings     map[Ref]Mapping
	Records      map[string]Record
	Aliases      map[string]Alias
}

// Clone returns a State whose maps can be changed without touching s.
func (s State) Clone() State {
	return State{
		Observations: maps.Clone(s.Observations),
		Pins:         maps.Clone(s.Pins),
		Mappings:     maps.Clone(s.Mappings),
		Records:      maps.Clone(s.Records),
		Aliases:      maps.Clone(s.Aliases),
	}
}

// Link is the resolution of one reference.
type Link struct {
	CustomerID string // canonical (aliases followed)
	Rule       Rule
}

// Customer is a canonical customer.
type Customer struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Plan        string            `json:"plan,omitempty"`
	Environment string            `json:"environment,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	References  []Ref             `json:"references"`
	Emails      []string          `json:"emails"`
	Aliases     []string          `json:"aliases,omitempty"` // ids merged into this one
	CreatedAt   time.Time         `json:"created_at"`
	UpdatedAt   time.Time         `json:"updated_at"`
}

// Resolution is the outcome of Resolve.
type Resolution struct {
	Links     map[Ref]Link
	Customers map[string]*Customer // by canonical id
	aliases   map[string]Alias
}

// Canonical follows merge aliases from id to the customer id that survives.
func (r Resolution) Canonical(id string) string { return follow(r.aliases, id) }

// Lookup returns the customer id names, directly or through an alias.
func (r Resolution) Lookup(id string) (*Customer, bool) {
	c, ok := r.Customers[r.Canonical(id)]
	return c, ok
}

// Resolve applies the rules (see the package comment) to every reference the
// state knows: observed, pinned or mapped.
func Resolve(s State) Resolution {
	refs := map[Ref]struct{}{}
	for r := range s.Observations {
		refs[r] = struct{}{}
	}
	for r := range s.Pins {
		refs[r] = struct{}{}
	}
	for r := range s.Mappings {
		refs[r] = struct{}{}
	}
	ordered := make([]Ref, 0, len(refs))
	for r := range refs {
		ordered = append(ordered, r)
	}
	// Earliest seen first (ties by reference): the order anchors are chosen in.
	sort.Slice(ordered, func(i, j int) bool {
		a, b := s.Observations[ordered[i]].FirstSeen, s.Observations[ordered[j]].FirstSeen
		if !a.Equal(b) {
			return a.Before(b)
		}
		return ordered[i].less(ordered[j])
	})

	raw := make(map[Ref]Link, len(ordered))
	var weak []Ref
	strong := map[string]string{} // email → raw id of its earliest strong reference
	for _, r := range ordered {
		obs := s.Observations[r]
		email := normEmail(obs.Email)
		switch pin, pinned := s.Pins[r]; {
		case r.IsUnmapped():
			raw[r] = Link{UnmappedID, RuleUnmapped}
		case pinned && pin.Unlinked:
			raw[r] = Link{pin.CustomerID, RuleUnlinked}
		case pinned:
			raw[r] = Link{pin.CustomerID, RuleManual}
			setOnce(strong, email, pin.CustomerID)
		case s.Mappings[r].CustomerID != "":
			raw[r] = Link{s.Mappings[r].CustomerID, RuleMapping}
			setOnce(strong, email, s.Mappings[r].CustomerID)
		case obs.MetadataID() != "":
			raw[r] = Link{obs.MetadataID(), RuleMetadata}
			setOnce(strong, email, obs.MetadataID())
		default:
			weak = append(weak, r)
		}
	}
	anchor := map[string]string{} // email → id of the weak group
	for _, r := range weak {
		email := normEmail(s.Observations[r].Email)
		switch {
		case email == "":
			raw[r] = Link{SelfID(r), RuleSelf}
		case strong[email] != "":
			raw[r] = Link{strong[email], RuleEmail}
		case anchor[email] != "":
			raw[r] = Link{anchor[email], RuleEmail}
		default:
			anchor[email] = SelfID(r)
			raw[r] = Link{SelfID(r), RuleSelf}
		}
	}

	res := Resolution{Links: make(map[Ref]Link, len(raw)), Customers: map[string]*Customer{}, aliases: s.Aliases}
	for r, l := range raw {
		l.CustomerID = follow(s.Aliases, l.CustomerID)
		res.Links[r] = l
	}
	// Customers that exist by decision, even with no reference (yet).
	for id, rec := range s.Records {
		if _, merged := s.Aliases[id]; merged {
			continue
		}
		res.Customers[id] = &Customer{ID: id, CreatedAt: rec.CreatedAt, UpdatedAt: rec.CreatedAt}
	}
	members := map[string][]Ref{}
	for _, r := range ordered {
		id := res.Links[r].CustomerID
		members[id] = append(members[id], r)
	}
	for id, refs := range members {
		res.Customers[id] = build(s, id, refs, res.Customers[id])
	}
	for id := range s.Aliases {
		if c, ok := res.Customers[follow(s.Aliases, id)]; ok {
			c.Aliases = append(c.Aliases, id)
		}
	}
	for _, c := range res.Customers {
		slices.Sort(c.Aliases)
		if rec, ok := s.Records[c.ID]; ok && rec.Name != "" {
			c.Name = rec.Name
		}
		if c.Name == "" {
			c.Name = defaultName(c)
		}
	}
	return res
}

// build fills a customer from its references (earliest seen first). Name,
// plan and environment come from the customer event applied last that has
// them; metadata is merged oldest first, so newer values win.
func build(s State, id string, refs []Ref, c *Customer) *Customer {
	if c == nil {
		c = &Customer{ID: id}
	}
	c.References = append([]Ref(nil), refs...)
	byUpdate := append([]Ref(nil), refs...)
	sort.SliceStable(byUpdate, func(i, j int) bool {
		return s.Observations[byUpdate[i]].UpdatedAt.Before(s.Observations[byUpdate[j]].UpdatedAt)
	})
	emails := map[string]struct{}{}
	for _, r := range byUpdate {
		o := s.Observations[r]
		if e := normEmail(o.Email); e != "" {
			emails[e] = struct{}{}
		}
		c.Name = firstNonEmpty(o.Name, c.Name)
		c.Plan = firstNonEmpty(o.Plan, c.Plan)
		c.Environment = firstNonEmpty(o.Environment, c.Environment)
		for k, v := range o.Metadata {
			if c.Metadata == nil {
				c.Metadata = map[string]string{}
			}
			c.Metadata[k] = v
		}
		c.CreatedAt = earliest(c.CreatedAt, o.FirstSeen)
		c.UpdatedAt = latest(c.UpdatedAt, o.UpdatedAt, o.FirstSeen, s.Pins[r].At, s.Mappings[r].At)
	}
	c.Emails = make([]string, 0, len(emails))
	for e := range emails {
		c.Emails = append(c.Emails, e)
	}
	slices.Sort(c.Emails)
	sort.Slice(c.References, func(i, j int) bool { return c.References[i].less(c.References[j]) })
	return c
}

func defaultName(c *Customer) string {
	switch {
	case c.ID == UnmappedID:
		return "Unmapped"
	case len(c.Emails) > 0:
		return c.Emails[0]
	case len(c.References) > 0:
		return c.References[0].ExternalID
	default:
		return c.ID
	}
}

// follow walks merge aliases; a cycle (never written by PlanMerge, but a
// topic is data) stops at the first id seen twice.
func follow(aliases map[string]Alias, id string) string {
	seen := map[string]bool{}
	for {
		a, ok := aliases[id]
		if !ok || a.Into == "" || seen[id] {
			return id
		}
		seen[id] = true
		id = a.Into
	}
}

func normEmail(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

func setOnce(m map[string]string, k, v string) {
	if k != "" && m[k] == "" {
		m[k] = v
	}
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func latest(ts ...time.Time) time.Time {
	var out time.Time
	for _, t := range ts {
		if t.After(out) {
			out = t
		}
	}
	return out
}
