// Package catalog lists the service types uvr can connect to, the credential
// fields each needs, and how to build its Source. It imports no connector:
// cmd/uvr hands the connectors' constructors to Default.
package catalog

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/uvrhq/uvr/connectors/source"
)

// Category says what a service's events are.
type Category string

// Categories.
const (
	Usage   Category = "usage"   // costs of running the product (OpenAI, AWS, …)
	Revenue Category = "revenue" // what customers pay (Stripe, Chargebee, …)
)

// Valid reports whether c is a known category.
func (c Category) Valid() bool { return c == Usage || c == Revenue }

// Factory builds the Source of one configured service from its credentials
// (the fields of its Type) and env (a logger, and the egress policy every
// address it calls must pass: a base_url refused by it is an error naming
// the field). It must not call the service: Source.Check does. Its errors
// must not quote a credential value.
type Factory func(creds map[string]string, env source.Env) (source.Source, error)

// FactoryOf adapts a connector's constructor that returns its own concrete
// type (e.g. stripe.FromCredentials returning *stripe.Source) to a Factory.
// On error it returns a nil Source, never an interface holding a nil pointer.
func FactoryOf[S source.Source](from func(creds map[string]string, env source.Env) (S, error)) Factory {
	return func(creds map[string]string, env source.Env) (source.Source, error) {
		s, err := from(creds, env)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}

// Type is one kind of service.
type Type struct {
	Name     string   // e.g. "stripe"; the service_type of the API
	Category Category // usage or revenue
	Required []string // credential fields that must be present and non-blank
	Optional []string // credential fields that may be present
	// Help says what uvr does with each field (GET /api/service-types
	// serves it): where the vendor gives a field a meaning, uvr uses it;
	// where it has none for the API uvr reads, Help says so.
	Help map[string]string
	New  Factory // nil: no native connector (yet)
}

// Fields returns the required then the optional fields.
func (t Type) Fields() []string {
	return append(slices.Clone(t.Required), t.Optional...)
}

// ErrUnknownType is wrapped by Lookup and Validate for a type not in the catalog.
var ErrUnknownType = errors.New("unknown service type")

// ErrInvalid is wrapped by Validate for credentials or a category that do not fit the type.
var ErrInvalid = errors.New("invalid service configuration")

// Catalog is an immutable set of types. Safe for concurrent use.
type Catalog struct {
	types map[string]Type
	names []string // sorted
}

// New builds a catalog. Every type needs a name, a valid category and
// distinct field names; names must be unique.
func New(types ...Type) (*Catalog, error) {
	c := &Catalog{types: make(map[string]Type, len(types))}
	var errs []error
	for _, t := range types {
		if t.Name == "" {
			errs = append(errs, errors.New("catalog: a type has no name"))
			continue
		}
		if _, dup := c.types[t.Name]; dup {
			errs = append(errs, fmt.Errorf("catalog: type %q is listed twice", t.Name))
			continue
		}
		if !t.Category.Valid() {
			errs = append(errs, fmt.Errorf("catalog: type %q: category %q is neither %q nor %q", t.Name, t.Category, Usage, Revenue))
		}
		seen := map[string]bool{}
		for _, f := range t.Fields() {
			if f == "" || seen[f] {
				errs = append(errs, fmt.Errorf("catalog: type %q: field %q is empty or listed twice", t.Name, f))
			}
			seen[f] = true
		}
		for _, f := range slices.Sorted(maps.Keys(t.Help)) {
			if !seen[f] {
				errs = append(errs, fmt.Errorf("catalog: type %q: help for %q, which is not one of its fields", t.Name, f))
			}
		}
		t.Required, t.Optional, t.Help = slices.Clone(t.Required), slices.Clone(t.Optional), maps.Clone(t.Help)
		c.types[t.Name] = t
		c.names = append(c.names, t.Name)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.Strings(c.names)
	return c, nil
}

// Optional settings beside the credentials. base_url points a connector at
// a sandbox or a self-hosted endpoint (Paddle sandbox, stripe-mock); the
// custom pull sources take their pagination and field mapping (see
// docs/connectors/custom.md).
var (
	baseURL       = []string{"base_url"}
	customOptions = []string{"account_id", "mapping", "mapping_file", "auth_header", "path", "records_path", "stream",
		"pagination", "cursor_param", "next_cursor_path", "has_more_path", "page_param", "offset_param",
		"limit_param", "page_size", "next_url_path", "since_param"}
)

// Help shared by several types.
const (
	helpBaseURL   = "overrides the vendor's API address (a sandbox, a proxy, a local mock)"
	helpCustomKey = "sent as \"Authorization: Bearer <key>\" (or in the header auth_header names)"
	helpCustomURL = "the API's address; path is appended to it"
	helpAccount   = "sent as the query parameter account_id of every call (a tenant or account of the API)"
)

// Builtin returns the service types uvr knows, without factories. The
// fields are those the original product's service forms send (and the
// custom sources' settings); Help says what each does.
func Builtin() []Type {
	return []Type{
		// Usage: what the product costs to run.
		{Name: "openai", Category: Usage, Required: []string{"api_key"}, Optional: []string{"org_id", "base_url"}, Help: map[string]string{
			"api_key":  "an admin key (sk-admin-…): the Usage and Costs APIs need one",
			"org_id":   "sent as the OpenAI-Organization header, for a key of several organizations; empty: the key's default one",
			"base_url": helpBaseURL,
		}},
		{Name: "anthropic", Category: Usage, Required: []string{"api_key"}, Optional: baseURL, Help: map[string]string{
			"api_key": "an Admin API key (sk-ant-admin…): the usage and cost reports need one", "base_url": helpBaseURL,
		}},
		{Name: "aws", Category: Usage, Required: []string{"access_key_id", "secret_access_key", "region"}, Optional: baseURL, Help: map[string]string{
			"access_key_id": "signs the Cost Explorer and CloudWatch calls (SigV4) with secret_access_key", "secret_access_key": "the key's secret",
			"region": "the region of the CloudWatch metrics (Cost Explorer is global)", "base_url": helpBaseURL,
		}},
		{Name: "datadog", Category: Usage, Required: []string{"api_key", "app_key"}, Optional: []string{"site", "base_url"}, Help: map[string]string{
			"api_key": "sent as DD-API-KEY", "app_key": "sent as DD-APPLICATION-KEY (usage metering needs one)",
			"site":     "your Datadog site (datadoghq.com, datadoghq.eu, us3.datadoghq.com, …): the API is https://api.<site>; default datadoghq.com",
			"base_url": helpBaseURL + "; wins over site",
		}},
		{Name: "custom-usage", Category: Usage, Required: []string{"api_key", "base_url"}, Optional: customOptions, Help: map[string]string{
			"api_key": helpCustomKey, "base_url": helpCustomURL, "account_id": helpAccount,
		}},
		// Revenue: what customers pay.
		{Name: "stripe", Category: Revenue, Required: []string{"api_key"}, Optional: []string{"account_id", "base_url"}, Help: map[string]string{
			"api_key":    "a secret (sk_…) or restricted read key (rk_…)",
			"account_id": "a connected account (acct_…) to read with the platform's key, sent as the Stripe-Account header; empty: the key's own account",
			"base_url":   helpBaseURL,
		}},
		{Name: "chargebee", Category: Revenue, Required: []string{"api_key", "site"}, Optional: baseURL, Help: map[string]string{
			"api_key": "a read-only API key (HTTP basic auth)", "site": "the site name: acme reads https://acme.chargebee.com",
			"base_url": helpBaseURL + "; wins over site",
		}},
		{Name: "paddle", Category: Revenue, Required: []string{"api_key", "vendor_id"}, Optional: baseURL, Help: map[string]string{
			"api_key":   "a Paddle Billing API key (sent as a bearer token to api.paddle.com); it selects the account",
			"vendor_id": "your Paddle seller (Classic vendor) id: the Billing API uvr reads takes none, so it only names the account in logs and checks nothing",
			"base_url":  helpBaseURL + " (https://sandbox-api.paddle.com for the sandbox)",
		}},
		{Name: "recurly", Category: Revenue, Required: []string{"api_key", "subdomain"}, Optional: baseURL, Help: map[string]string{
			"api_key":   "a private API key (HTTP basic auth); it selects the site",
			"subdomain": "your site's subdomain (acme for acme.recurly.com): API v3 has one address for every site (https://v3.recurly.com), so it only names the site in logs",
			"base_url":  helpBaseURL + " (https://v3.eu.recurly.com for a site hosted in the EU)",
		}},
		{Name: "braintree", Category: Revenue, Required: []string{"merchant_id", "public_key", "private_key"}, Optional: baseURL, Help: map[string]string{
			"merchant_id": "your merchant id: the GraphQL API selects the merchant by the keys, so it names the merchant in logs",
			"public_key":  "with private_key, the HTTP basic auth of the GraphQL API", "private_key": "the key pair's secret half",
			"base_url": helpBaseURL + " (https://payments.sandbox.braintree-api.com for the sandbox)",
		}},
		{Name: "custom-revenue", Category: Revenue, Required: []string{"api_key", "base_url"}, Optional: customOptions, Help: map[string]string{
			"api_key": helpCustomKey, "base_url": helpCustomURL, "account_id": helpAccount,
		}},
	}
}

// Default is the built-in catalog with factories[name] as each type's
// constructor. A factory for a name the catalog lacks is an error (a typo
// would otherwise leave a connector silently unused); a type without a
// factory stays listed, with a nil New.
func Default(factories map[string]Factory) (*Catalog, error) {
	types := Builtin()
	known := map[string]bool{}
	for i := range types {
		known[types[i].Name] = true
		types[i].New = factories[types[i].Name]
	}
	var errs []error
	for name := range factories {
		if !known[name] {
			errs = append(errs, fmt.Errorf("catalog: factory for unknown service type %q", name))
		}
	}
	if len(errs) > 0 {
		sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
		return nil, errors.Join(errs...)
	}
	return New(types...)
}

// Lookup returns the type called name.
func (c *Catalog) Lookup(name string) (Type, bool) {
	t, ok := c.types[name]
	if !ok {
		return Type{}, false
	}
	t.Required, t.Optional, t.Help = slices.Clone(t.Required), slices.Clone(t.Optional), maps.Clone(t.Help)
	return t, true
}

// Types returns every type, sorted by name.
func (c *Catalog) Types() []Type {
	out := make([]Type, 0, len(c.names))
	for _, n := range c.names {
		t, _ := c.Lookup(n)
		out = append(out, t)
	}
	return out
}

// Validate checks a service configuration: the type exists, category (when
// not empty) is the type's own, every required field is present and not blank,
// and no field is unknown. The error names every problem at once, with field
// names only, never a value.
func (c *Catalog) Validate(typeName string, category Category, creds map[string]string) error {
	t, ok := c.types[typeName]
	if !ok {
		return fmt.Errorf("%w %q; known types: %s", ErrUnknownType, typeName, strings.Join(c.names, ", "))
	}
	var problems []string
	if category != "" && category != t.Category {
		problems = append(problems, fmt.Sprintf("service type %s is a %s service, not %q", t.Name, t.Category, category))
	}
	var missing, unknown []string
	for _, f := range t.Required {
		if strings.TrimSpace(creds[f]) == "" {
			missing = append(missing, f)
		}
	}
	allowed := map[string]bool{}
	for _, f := range t.Fields() {
		allowed[f] = true
	}
	for f := range creds {
		if !allowed[f] {
			unknown = append(unknown, f)
		}
	}
	sort.Strings(unknown)
	if len(missing) > 0 {
		problems = append(problems, "missing credential fields: "+strings.Join(missing, ", "))
	}
	if len(unknown) > 0 {
		problems = append(problems, fmt.Sprintf("unknown credential fields: %s (%s takes %s)",
			strings.Join(unknown, ", "), t.Name, strings.Join(t.Fields(), ", ")))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, t.Name, strings.Join(problems, "; "))
	}
	return nil
}
