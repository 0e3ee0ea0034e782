package api

import (
	"context"
	"fmt"
	"html"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// renderDocs turns the OpenAPI document into one self-contained HTML page
// (no scripts, no CDN): one section per tag with each route's method, path,
// parameters, request body and responses, then every named schema.
func renderDocs(spec []byte) ([]byte, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(spec)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, err
	}
	r := &docsRenderer{doc: doc}
	return []byte(r.page()), nil
}

type docsRenderer struct {
	doc *openapi3.T
	b   strings.Builder
}

type docsOperation struct {
	method, path string
	op           *openapi3.Operation
	item         *openapi3.PathItem
}

var methodOrder = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}

// operations lists the operations by tag (in the document's tag order, then
// any undeclared tag), each sorted by path then method.
func (r *docsRenderer) operations() ([]string, map[string][]docsOperation) {
	byTag := map[string][]docsOperation{}
	var tags []string
	for _, t := range r.doc.Tags {
		tags = append(tags, t.Name)
	}
	paths := r.doc.Paths.Keys()
	sort.Strings(paths)
	for _, p := range paths {
		item := r.doc.Paths.Value(p)
		ops := item.Operations()
		for _, m := range methodOrder {
			op := ops[m]
			if op == nil {
				continue
			}
			opTags := op.Tags
			if len(opTags) == 0 {
				opTags = []string{"Other"}
			}
			for _, t := range opTags {
				if !slices.Contains(tags, t) {
					tags = append(tags, t)
				}
				byTag[t] = append(byTag[t], docsOperation{method: m, path: p, op: op, item: item})
			}
		}
	}
	return tags, byTag
}

func (r *docsRenderer) w(format string, args ...any) { fmt.Fprintf(&r.b, format, args...) }

func esc(s string) string { return html.EscapeString(s) }

var inlineCode = regexp.MustCompile("`([^`]+)`")

// prose renders a description: paragraphs on blank lines, `code` spans.
func prose(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	var out strings.Builder
	for _, para := range regexp.MustCompile(`\n\s*\n`).Split(s, -1) {
		t := inlineCode.ReplaceAllString(esc(para), "<code>$1</code>")
		out.WriteString("<p>" + strings.ReplaceAll(t, "\n", " ") + "</p>")
	}
	return out.String()
}

func anchor(method, path string) string {
	return "op-" + strings.ToLower(method) + strings.NewReplacer("/", "-", "{", "", "}", "").Replace(path)
}

func (r *docsRenderer) page() string {
	info := r.doc.Info
	tags, byTag := r.operations()
	r.w("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
	r.w("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
	r.w("<title>%s %s</title><style>%s</style></head><body>\n", esc(info.Title), esc(info.Version), docsCSS)
	r.w("<nav><h1>%s <small>v%s</small></h1>", esc(info.Title), esc(info.Version))
	r.w("<p><a href=\"openapi.json\">openapi.json</a></p>")
	for _, t := range tags {
		r.w("<h3><a href=\"#tag-%s\">%s</a></h3><ul>", esc(t), esc(t))
		for _, o := range byTag[t] {
			r.w("<li><a href=\"#%s\"><span class=\"m m-%s\">%s</span> %s</a></li>", anchor(o.method, o.path),
				strings.ToLower(o.method), o.method, esc(o.path))
		}
		r.w("</ul>")
	}
	r.w("<h3><a href=\"#schemas\">Schemas</a></h3></nav>\n<main>")
	r.w("<header><h1>%s</h1>%s</header>\n", esc(info.Title), prose(info.Description))
	for _, t := range tags {
		r.w("<section id=\"tag-%s\"><h2>%s</h2>", esc(t), esc(t))
		if tag := r.doc.Tags.Get(t); tag != nil {
			r.w("%s", prose(tag.Description))
		}
		for _, o := range byTag[t] {
			r.operation(o)
		}
		r.w("</section>\n")
	}
	r.w("<section id=\"schemas\"><h2>Schemas</h2>")
	if r.doc.Components != nil {
		names := make([]string, 0, len(r.doc.Components.Schemas))
		for n := range r.doc.Components.Schemas {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			s := r.doc.Components.Schemas[n]
			r.w("<div class=\"schema\" id=\"schema-%s\"><h3>%s</h3>", esc(n), esc(n))
			r.schemaBody(s.Value)
			r.w("</div>\n")
		}
	}
	r.w("</section></main></body></html>\n")
	return r.b.String()
}

func (r *docsRenderer) operation(o docsOperation) {
	op := o.op
	r.w("<article class=\"op\" id=\"%s\"><h3><span class=\"m m-%s\">%s</span> <code class=\"path\">%s</code></h3>",
		anchor(o.method, o.path), strings.ToLower(o.method), o.method, esc(o.path))
	if op.Summary != "" {
		r.w("<p class=\"summary\">%s</p>", esc(op.Summary))
	}
	r.w("%s", prose(op.Description))

	params := append(openapi3.Parameters{}, o.item.Parameters...)
	params = append(params, op.Parameters...)
	if len(params) > 0 {
		r.w("<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>type</th><th>description</th></tr>")
		for _, pr := range params {
			p := pr.Value
			if p == nil {
				continue
			}
			req := ""
			if p.Required {
				req = " <span class=\"req\">required</span>"
			}
			typ := ""
			if p.Schema != nil {
				typ = r.typeOf(p.Schema)
			}
			r.w("<tr><td><code>%s</code>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>",
				esc(p.Name), req, esc(p.In), typ, prose(p.Description))
		}
		r.w("</table>")
	}

	if rb := op.RequestBody; rb != nil && rb.Value != nil {
		req := ""
		if rb.Value.Required {
			req = " <span class=\"req\">required</span>"
		}
		r.w("<h4>Request body%s</h4>%s", req, prose(rb.Value.Description))
		r.content(rb.Value.Content, true)
	}

	if op.Responses != nil {
		r.w("<h4>Responses</h4>")
		codes := op.Responses.Keys()
		sort.Strings(codes)
		for _, code := range codes {
			resp := op.Responses.Value(code)
			if resp == nil || resp.Value == nil {
				continue
			}
			desc := ""
			if resp.Value.Description != nil {
				desc = *resp.Value.Description
			}
			r.w("<div class=\"resp\"><span class=\"code c%c\">%s</span>%s", code[0], esc(code), prose(desc))
			r.content(resp.Value.Content, code[0] == '2') // errors share a schema: link only
			r.w("</div>")
		}
	}
	r.w("</article>\n")
}

// content lists a body's media types with their schema; expand also shows
// the top-level fields of a named schema.
func (r *docsRenderer) content(c openapi3.Content, expand bool) {
	types := make([]string, 0, len(c))
	for t := range c {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		mt := c[t]
		r.w("<div class=\"media\"><span class=\"ct\">%s</span> ", esc(t))
		if mt.Schema != nil {
			r.w("%s", r.typeOf(mt.Schema))
			s := mt.Schema.Value
			if s != nil && len(s.Properties) > 0 && (expand || mt.Schema.Ref == "") {
				r.properties(s, 0)
			}
		}
		r.w("</div>")
	}
}

// schemaBody describes a named schema: its type, description, enum and
// properties, or its alternatives.
func (r *docsRenderer) schemaBody(s *openapi3.Schema) {
	if s == nil {
		return
	}
	r.w("<p class=\"type\">%s</p>%s", r.typeOf(&openapi3.SchemaRef{Value: s}), prose(s.Description))
	if len(s.Properties) > 0 {
		r.properties(s, 0)
	}
}

// properties renders an object's properties as a table; inline objects nest
// (named schemas are links).
func (r *docsRenderer) properties(s *openapi3.Schema, depth int) {
	names := make([]string, 0, len(s.Properties))
	for n := range s.Properties {
		names = append(names, n)
	}
	sort.SliceStable(names, func(i, j int) bool {
		ri, rj := slices.Contains(s.Required, names[i]), slices.Contains(s.Required, names[j])
		if ri != rj {
			return ri
		}
		return names[i] < names[j]
	})
	r.w("<table class=\"props\"><tr><th>field</th><th>type</th><th>description</th></tr>")
	for _, n := range names {
		p := s.Properties[n]
		req := ""
		if slices.Contains(s.Required, n) {
			req = " <span class=\"req\">required</span>"
		}
		desc := ""
		if p.Value != nil {
			desc = p.Value.Description
		}
		r.w("<tr><td><code>%s</code>%s</td><td>%s</td><td>%s", esc(n), req, r.typeOf(p), prose(desc))
		if p.Ref == "" && p.Value != nil && len(p.Value.Properties) > 0 && depth < 4 {
			r.properties(p.Value, depth+1)
		}
		r.w("</td></tr>")
	}
	r.w("</table>")
}

// typeOf is a one-line description of a schema: a link for a named schema,
// else its type with format, item type, alternatives, enum and bounds.
func (r *docsRenderer) typeOf(ref *openapi3.SchemaRef) string {
	if ref == nil {
		return ""
	}
	if ref.Ref != "" {
		name := ref.Ref[strings.LastIndex(ref.Ref, "/")+1:]
		return fmt.Sprintf("<a class=\"ref\" href=\"#schema-%s\">%s</a>", esc(name), esc(name))
	}
	s := ref.Value
	if s == nil {
		return "any"
	}
	var parts []string
	alts := func(word string, refs openapi3.SchemaRefs) {
		var ts []string
		for _, x := range refs {
			ts = append(ts, r.typeOf(x))
		}
		parts = append(parts, word+" "+strings.Join(ts, " | "))
	}
	switch {
	case len(s.OneOf) > 0:
		alts("one of", s.OneOf)
	case len(s.AnyOf) > 0:
		alts("any of", s.AnyOf)
	case len(s.AllOf) > 0:
		alts("", s.AllOf)
	}
	if s.Type != nil && !s.Type.IsEmpty() {
		t := strings.Join(s.Type.Slice(), " | ")
		switch {
		case s.Type.Is("array") && s.Items != nil:
			t = "array of " + r.typeOf(s.Items)
		case s.Type.Is("object") && s.AdditionalProperties.Schema != nil:
			t = "map of string to " + r.typeOf(s.AdditionalProperties.Schema)
		default:
			t = esc(t)
		}
		if s.Format != "" {
			t += " <span class=\"fmt\">(" + esc(s.Format) + ")</span>"
		}
		parts = append(parts, t)
	}
	if s.Nullable {
		parts = append(parts, "or null")
	}
	if len(s.Enum) > 0 {
		var vs []string
		for _, e := range s.Enum {
			vs = append(vs, "<code>"+esc(fmt.Sprint(e))+"</code>")
		}
		parts = append(parts, "· one of "+strings.Join(vs, ", "))
	}
	var bounds []string
	if s.Min != nil {
		bounds = append(bounds, fmt.Sprintf("≥ %v", *s.Min))
	}
	if s.Max != nil {
		bounds = append(bounds, fmt.Sprintf("≤ %v", *s.Max))
	}
	if s.MinItems > 0 {
		bounds = append(bounds, fmt.Sprintf("at least %d items", s.MinItems))
	}
	if s.Pattern != "" {
		bounds = append(bounds, "pattern <code>"+esc(s.Pattern)+"</code>")
	}
	if s.Default != nil {
		bounds = append(bounds, "default <code>"+esc(fmt.Sprint(s.Default))+"</code>")
	}
	if s.Example != nil {
		bounds = append(bounds, "e.g. <code>"+esc(fmt.Sprint(s.Example))+"</code>")
	}
	if len(bounds) > 0 {
		parts = append(parts, "<span class=\"bounds\">"+strings.Join(bounds, ", ")+"</span>")
	}
	if len(parts) == 0 {
		return "any"
	}
	return strings.TrimSpace(strings.Join(parts, " "))
}

const docsCSS = `
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;display:flex}
nav{position:sticky;top:0;height:100vh;overflow:auto;width:290px;flex:none;padding:16px;background:#f6f8fa;border-right:1px solid #d0d7de;font-size:13px}
nav h1{font-size:18px;margin:0 0 8px}nav h3{margin:14px 0 4px;font-size:14px}
nav ul{list-style:none;margin:0;padding:0}nav li{margin:2px 0}
a{color:#0969da;text-decoration:none}a:hover{text-decoration:underline}
main{flex:1;min-width:0;padding:16px 32px;max-width:1100px}
h2{border-bottom:2px solid #d0d7de;padding-bottom:4px;margin-top:40px}
.op{border:1px solid #d0d7de;border-radius:6px;padding:4px 16px 12px;margin:16px 0}
.op h3{font-size:17px}.summary{font-weight:600}
.m{display:inline-block;min-width:58px;text-align:center;border-radius:4px;color:#fff;font:bold 12px/20px monospace;padding:0 6px}
.m-get{background:#1f883d}.m-post{background:#0969da}.m-delete{background:#cf222e}.m-put,.m-patch{background:#9a6700}
code{font:13px ui-monospace,SFMono-Regular,Menlo,monospace;background:#eff1f3;border-radius:4px;padding:1px 4px}
.path{font-size:16px;background:none}
table{border-collapse:collapse;width:100%;margin:6px 0;font-size:14px}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f6f8fa}
td p,.resp p{margin:2px 0}
table.props table.props{margin-top:6px}
.req{color:#cf222e;font-size:11px;text-transform:uppercase}
.resp{border-left:3px solid #d0d7de;padding:2px 10px;margin:8px 0}
.code{font:bold 14px monospace;margin-right:8px}.c2{color:#1f883d}.c4{color:#9a6700}.c5{color:#cf222e}
.ct{font:12px monospace;color:#57606a}.fmt,.bounds{color:#57606a;font-size:13px}
.schema{border-top:1px solid #d0d7de;padding:4px 0}
`
