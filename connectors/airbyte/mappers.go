package airbyte

import (
	"fmt"
	"slices"
	"strings"

	"github.com/uvrhq/uvr/connectors/braintree"
	"github.com/uvrhq/uvr/connectors/chargebee"
	"github.com/uvrhq/uvr/connectors/mapping"
	"github.com/uvrhq/uvr/connectors/paddle"
	"github.com/uvrhq/uvr/connectors/recurly"
	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/connectors/stripe"
)

// vendorMappers is the one table of vendors whose records `--source NAME`
// maps: the same Mapper the vendor's native connector uses, so an Airbyte
// import and a native sync of one account give the same events (same ids:
// importing both counts each object once).
var vendorMappers = map[string]func() source.Mapper{
	"stripe":    func() source.Mapper { return stripe.Mapper{} },
	"chargebee": func() source.Mapper { return chargebee.Mapper{} },
	"braintree": func() source.Mapper { return braintree.Mapper{} },
	"recurly":   func() source.Mapper { return recurly.Mapper{} },
	"paddle":    func() source.Mapper { return paddle.Mapper{} },
}

// Vendors lists the names --source accepts, sorted.
func Vendors() []string {
	names := make([]string, 0, len(vendorMappers))
	for name := range vendorMappers {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// VendorMapper returns the Mapper of a vendor named in Vendors.
func VendorMapper(vendor string) (source.Mapper, error) {
	newMapper, ok := vendorMappers[strings.ToLower(vendor)]
	if !ok {
		return nil, fmt.Errorf("no mapper for source %q (known: %s; or give a mapping file with --mapping)", vendor, strings.Join(Vendors(), ", "))
	}
	return newMapper(), nil
}

// LoadMapping reads a declarative mapping file (connectors/mapping format).
func LoadMapping(path string) (source.Mapper, error) {
	m, err := mapping.Load(path)
	if err != nil {
		return nil, err
	}
	return m, nil
}
