// Package catalog lists the service types uvr can connect to, the credential
// fields each needs, and how to build its Source. It imports no connector:
// cmd/uvr hands the connectors' constructors to Default.
package catalog

import (
	"errors"
	"fmt"
	"log/slog"
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
// (the fields of its Type). It must not call the service: Source.Check does.
// Its errors must not quote a credential value.
type Factory func(creds map[string]string, logger *slog.Logger) (source.Source, error)

// FactoryOf adapts a connector's constructor that returns its own concrete
// type (e.g. stripe.FromCredentials returning *stripe.Source) to a Factory.
// On error it returns a nil Source, never an interface holding a nil pointer.
func FactoryOf[S source.Source](from func(creds map[string]string, logger *slog.Logger) (S, error)) Factory {
	return func(creds map[string]string, logger *slog.Logger) (source.Source, error) {
		s, err := from(creds, logger)
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
	New      Factory  // nil: no native connector (yet)
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
		t.Required, t.Optional = slices.Clone(t.Required), slices.Clone(t.Optional)
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

// Builtin returns the service types uvr knows, without factories.
func Builtin() []Type {
	return []Type{
		// Usage: what the product costs to run.
		{Name: "openai", Category: Usage, Required: []string{"api_key"}, Optional: baseURL},
		{Name: "anthropic", Category: Usage, Required: []string{"api_key"}, Optional: baseURL},
		{Name: "aws", Category: Usage, Required: []string{"access_key_id", "secret_access_key", "region"}, Optional: baseURL},
		{Name: "datadog", Category: Usage, Required: []string{"api_key", "app_key"}, Optional: []string{"site", "base_url"}},
		{Name: "custom-usage", Category: Usage, Required: []string{"api_key", "base_url"}, Optional: customOptions},
		// Revenue: what customers pay.
		{Name: "stripe", Category: Revenue, Required: []string{"api_key"}, Optional: baseURL},
		{Name: "chargebee", Category: Revenue, Required: []string{"api_key", "site"}, Optional: baseURL},
		{Name: "paddle", Category: Revenue, Required: []string{"api_key", "vendor_id"}, Optional: baseURL},
		{Name: "recurly", Category: Revenue, Required: []string{"api_key", "subdomain"}, Optional: baseURL},
		{Name: "braintree", Category: Revenue, Required: []string{"merchant_id", "public_key", "private_key"}, Optional: baseURL},
		{Name: "custom-revenue", Category: Revenue, Required: []string{"api_key", "base_url"}, Optional: customOptions},
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
	t.Required, t.Optional = slices.Clone(t.Required), slices.Clone(t.Optional)
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
