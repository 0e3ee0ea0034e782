package api

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/gin-gonic/gin"
	"gopkg.in/yaml.v3"
)

// openapiYAML is the OpenAPI 3 document of every route New registers
// (api/openapi_test.go keeps the two in step).
//
//go:embed openapi.yaml
var openapiYAML []byte

// OpenAPIYAML returns the embedded OpenAPI document as written.
func OpenAPIYAML() []byte { return append([]byte(nil), openapiYAML...) }

// openapiDoc is the document as JSON and as the rendered docs page, built once.
var openapiDoc = sync.OnceValues(func() (openapiRendered, error) {
	js, err := yamlToJSON(openapiYAML)
	if err != nil {
		return openapiRendered{}, fmt.Errorf("openapi.yaml: %w", err)
	}
	page, err := renderDocs(openapiYAML)
	if err != nil {
		return openapiRendered{}, fmt.Errorf("openapi.yaml: render docs: %w", err)
	}
	return openapiRendered{json: js, html: page}, nil
})

type openapiRendered struct {
	json []byte
	html []byte
}

// OpenAPIJSON returns the embedded OpenAPI document converted to JSON, as
// GET /api/openapi.json serves it.
func OpenAPIJSON() ([]byte, error) {
	d, err := openapiDoc()
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), d.json...), nil
}

// yamlToJSON converts a YAML document to JSON. Mapping keys must be strings
// (quote status codes such as '200').
func yamlToJSON(src []byte) ([]byte, error) {
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		return nil, err
	}
	v, err := jsonValue(v, "")
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

func jsonValue(v any, path string) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			c, err := jsonValue(e, path+"/"+k)
			if err != nil {
				return nil, err
			}
			v[k] = c
		}
		return v, nil
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("%s: key %v is not a string: quote it", path, k)
			}
			c, err := jsonValue(e, path+"/"+ks)
			if err != nil {
				return nil, err
			}
			m[ks] = c
		}
		return m, nil
	case []any:
		for i, e := range v {
			c, err := jsonValue(e, fmt.Sprintf("%s/%d", path, i))
			if err != nil {
				return nil, err
			}
			v[i] = c
		}
		return v, nil
	default:
		return v, nil
	}
}

// openapiTimeZones is the set of the document's TimeZone enum: the names the
// tz parameter takes (loadZone). The list is read from the document so that
// what clients are told and what the server accepts are one list.
var openapiTimeZones = sync.OnceValues(func() (map[string]bool, error) {
	var doc struct {
		Components struct {
			Schemas struct {
				TimeZone struct {
					Enum []string `yaml:"enum"`
				} `yaml:"TimeZone"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(openapiYAML, &doc); err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	zones := make(map[string]bool, len(doc.Components.Schemas.TimeZone.Enum))
	for _, z := range doc.Components.Schemas.TimeZone.Enum {
		zones[z] = true
	}
	if len(zones) == 0 || zones["Local"] {
		return nil, errors.New("openapi.yaml: components.schemas.TimeZone.enum is empty or lists Local")
	}
	return zones, nil
})

// openapiJSON serves GET /api/openapi.json.
func (s *Server) openapiJSON(c *gin.Context) {
	d, err := openapiDoc()
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", d.json)
}

// docs serves GET /api/docs: the document rendered as one HTML page.
func (s *Server) docs(c *gin.Context) {
	d, err := openapiDoc()
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.Data(http.StatusOK, "text/html; charset=utf-8", d.html)
}
