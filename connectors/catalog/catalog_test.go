package catalog_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/catalog"
	"github.com/uvrhq/uvr/connectors/source"
)

// The catalog is the product's contract with the UI and API clients: these are exactly the
// fields each service type takes.
func TestBuiltinTypes(t *testing.T) {
	base := []string{"base_url"}
	custom := []string{"account_id", "mapping", "mapping_file", "auth_header", "path", "records_path", "stream",
		"pagination", "cursor_param", "next_cursor_path", "has_more_path", "page_param", "offset_param",
		"limit_param", "page_size", "next_url_path", "since_param"}
	want := map[string]struct {
		category           catalog.Category
		required, optional []string
	}{
		"openai":         {catalog.Usage, []string{"api_key"}, []string{"org_id", "base_url"}},
		"anthropic":      {catalog.Usage, []string{"api_key"}, base},
		"aws":            {catalog.Usage, []string{"access_key_id", "secret_access_key", "region"}, base},
		"datadog":        {catalog.Usage, []string{"api_key", "app_key"}, []string{"site", "base_url"}},
		"custom-usage":   {catalog.Usage, []string{"api_key", "base_url"}, custom},
		"stripe":         {catalog.Revenue, []string{"api_key"}, []string{"account_id", "base_url"}},
		"chargebee":      {catalog.Revenue, []string{"api_key", "site"}, base},
		"paddle":         {catalog.Revenue, []string{"api_key", "vendor_id"}, base},
		"recurly":        {catalog.Revenue, []string{"api_key", "subdomain"}, base},
		"braintree":      {catalog.Revenue, []string{"merchant_id", "public_key", "private_key"}, base},
		"custom-revenue": {catalog.Revenue, []string{"api_key", "base_url"}, custom},
	}
	c, err := catalog.Default(nil)
	require.NoError(t, err)
	require.Len(t, c.Types(), len(want))
	for name, w := range want {
		typ, ok := c.Lookup(name)
		require.True(t, ok, name)
		assert.Equal(t, w.category, typ.Category, name)
		assert.Equal(t, w.required, typ.Required, name)
		assert.Equal(t, w.optional, typ.Optional, name)
		assert.Nil(t, typ.New, "no factory given for %s", name)
	}
	_, ok := c.Lookup("mailchimp")
	assert.False(t, ok)
}

// Every field the original product's service forms send is accepted by its
// type, and every field of every type says what uvr does with it.
func TestOriginalClientFieldsAreAcceptedAndDocumented(t *testing.T) {
	sent := map[string]map[string]string{
		"openai":         {"api_key": "k", "org_id": "org-1"},
		"anthropic":      {"api_key": "k"},
		"aws":            {"access_key_id": "AKIA", "secret_access_key": "s", "region": "us-east-1"},
		"datadog":        {"api_key": "k", "app_key": "a", "site": "datadoghq.eu"},
		"custom-usage":   {"api_key": "k", "base_url": "https://api.example.com", "account_id": "t1"},
		"stripe":         {"api_key": "sk_test_1", "account_id": "acct_1"},
		"chargebee":      {"api_key": "k", "site": "acme"},
		"paddle":         {"api_key": "k", "vendor_id": "1234"},
		"recurly":        {"api_key": "k", "subdomain": "acme"},
		"braintree":      {"merchant_id": "m", "public_key": "p", "private_key": "s"},
		"custom-revenue": {"api_key": "k", "base_url": "https://api.example.com", "account_id": "t1"},
	}
	c, err := catalog.Default(nil)
	require.NoError(t, err)
	for name, creds := range sent {
		assert.NoError(t, c.Validate(name, "", creds), name)
		// The forms send the optional fields left blank as "": accepted too.
		typ, _ := c.Lookup(name)
		blank := map[string]string{}
		for k, v := range creds {
			blank[k] = v
		}
		for _, f := range typ.Optional {
			if _, ok := blank[f]; !ok && (f == "org_id" || f == "account_id" || f == "site") {
				blank[f] = ""
			}
		}
		assert.NoError(t, c.Validate(name, "", blank), "%s with blank optional fields", name)
	}
	for _, typ := range c.Types() {
		for _, f := range []string{"api_key", "org_id", "site", "account_id", "vendor_id", "subdomain", "merchant_id", "public_key", "private_key", "base_url", "access_key_id", "secret_access_key", "region", "app_key"} {
			if slices.Contains(typ.Fields(), f) {
				assert.NotEmpty(t, typ.Help[f], "%s.%s says what it does", typ.Name, f)
			}
		}
	}
	_, err = catalog.New(catalog.Type{Name: "x", Category: catalog.Usage, Required: []string{"k"}, Help: map[string]string{"kk": "typo"}})
	assert.ErrorContains(t, err, `help for "kk", which is not one of its fields`)
}

func TestValidate(t *testing.T) {
	c, err := catalog.Default(nil)
	require.NoError(t, err)
	const secret = "sk_live_PLANTED_secret"
	tests := []struct {
		name     string
		typ      string
		category catalog.Category
		creds    map[string]string
		kind     error    // nil: valid
		want     []string // substrings of the error
	}{
		{"stripe ok", "stripe", "", map[string]string{"api_key": secret}, nil, nil},
		{"stripe with its category", "stripe", catalog.Revenue, map[string]string{"api_key": secret}, nil, nil},
		{"datadog with optional site", "datadog", catalog.Usage, map[string]string{"api_key": secret, "app_key": secret, "site": "datadoghq.eu"}, nil, nil},
		{"custom usage without optional", "custom-usage", "", map[string]string{"api_key": secret, "base_url": "https://x.example"}, nil, nil},
		{"aws missing two", "aws", "", map[string]string{"access_key_id": "AKIA"}, catalog.ErrInvalid,
			[]string{"aws", "missing credential fields: secret_access_key, region"}},
		{"braintree nothing", "braintree", "", nil, catalog.ErrInvalid,
			[]string{"missing credential fields: merchant_id, public_key, private_key"}},
		{"blank counts as missing", "chargebee", "", map[string]string{"api_key": secret, "site": "  "}, catalog.ErrInvalid,
			[]string{"missing credential fields: site"}},
		{"category contradicts", "openai", catalog.Revenue, map[string]string{"api_key": secret}, catalog.ErrInvalid,
			[]string{`openai is a usage service, not "revenue"`}},
		{"everything wrong at once", "paddle", catalog.Usage, map[string]string{"apikey": secret}, catalog.ErrInvalid,
			[]string{"is a revenue service", "missing credential fields: api_key, vendor_id", "unknown credential fields: apikey (paddle takes api_key, vendor_id, base_url)"}},
		{"unknown type", "mailchimp", "", map[string]string{"api_key": secret}, catalog.ErrUnknownType,
			[]string{`"mailchimp"`, "known types: anthropic, aws, braintree"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Validate(tt.typ, tt.category, tt.creds)
			if tt.kind == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.kind)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), secret, "values are never quoted")
		})
	}
}

type checkOnly struct{ err error }

func (s *checkOnly) Check(context.Context) error { return s.err }
func (s *checkOnly) Read(context.Context, source.Cursor, source.Emitter) error {
	return errors.New("not used")
}

func TestDefaultAttachesFactories(t *testing.T) {
	want := errors.New("from the stripe factory")
	c, err := catalog.Default(map[string]catalog.Factory{
		"stripe": func(map[string]string, source.Env) (source.Source, error) { return &checkOnly{err: want}, nil },
	})
	require.NoError(t, err)
	typ, _ := c.Lookup("stripe")
	require.NotNil(t, typ.New)
	src, err := typ.New(map[string]string{"api_key": "k"}, source.Env{})
	require.NoError(t, err)
	assert.ErrorIs(t, src.Check(context.Background()), want)
	other, _ := c.Lookup("openai")
	assert.Nil(t, other.New)

	_, err = catalog.Default(map[string]catalog.Factory{"strpe": nil, "open-ai": nil})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"strpe"`)
	assert.Contains(t, err.Error(), `"open-ai"`)
}

func TestNewRejectsBadTypes(t *testing.T) {
	_, err := catalog.New(
		catalog.Type{Name: "a", Category: catalog.Usage, Required: []string{"k"}},
		catalog.Type{Name: "a", Category: catalog.Usage},
		catalog.Type{Name: "b", Category: "cost"},
		catalog.Type{Name: "c", Category: catalog.Revenue, Required: []string{"k"}, Optional: []string{"k"}},
		catalog.Type{Category: catalog.Revenue},
	)
	require.Error(t, err)
	for _, w := range []string{`"a" is listed twice`, `"b": category "cost"`, `"c": field "k"`, "has no name"} {
		assert.Contains(t, err.Error(), w)
	}
}

func TestLookupReturnsCopies(t *testing.T) {
	c, err := catalog.Default(nil)
	require.NoError(t, err)
	typ, _ := c.Lookup("aws")
	typ.Required[0] = "changed"
	again, _ := c.Lookup("aws")
	assert.Equal(t, "access_key_id", again.Required[0])
}

func TestFactoryOf(t *testing.T) {
	from := func(creds map[string]string, _ source.Env) (*checkOnly, error) {
		if creds["api_key"] == "" {
			return nil, errors.New("api_key is empty")
		}
		return &checkOnly{}, nil
	}
	f := catalog.FactoryOf(from)
	src, err := f(map[string]string{"api_key": "k"}, source.Env{})
	require.NoError(t, err)
	assert.NotNil(t, src)
	src, err = f(map[string]string{}, source.Env{})
	require.Error(t, err)
	assert.True(t, src == nil, "a failed constructor yields a nil interface, not a typed nil")
}
