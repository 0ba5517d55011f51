package server

import (
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/labstack/echo/v4"
)

// The OpenAPI 3.1 document at GET /api/v1/openapi.json is built from the route table that
// also registers the routes (routes.go, routes_*.go): each entry names its method, path,
// handler, permission and wire types, and the JSON schemas are derived from those Go types by
// reflection over their json tags. So the document changes with the code, and
// TestOpenAPICoversRoutes checks that nothing is registered on Echo outside the table.
//
// Struct tags the generator reads besides json:
//
//	doc:"..."     a field description
//	enum:"a,b,c"  the allowed values of a string (or of a []string's items)
//	query:"name"  on a Query struct: one query parameter

// pathParamDocs describe the path parameters used across the API.
var pathParamDocs = map[string]string{
	"tenant":     "the tenant's slug",
	"user":       "a member's user ID",
	"invitation": "an invitation ID",
	"token":      "an API token ID",
	"provider":   "an external login provider: github, google, gitlab or oidc",
	"device":     "a device ID",
	"command":    "a command ID",
	"group":      "a device error group ID",
	"key":        "a config key: 1–15 characters of [A-Za-z0-9_]",
	"project":    "a project ID",
	"release":    "a release ID",
	"rollout":    "a rollout ID",
}

var echoParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// openAPIPath converts an Echo path to OpenAPI syntax (:tenant → {tenant}).
func openAPIPath(p string) string { return echoParam.ReplaceAllString(p, "{$1}") }

// openAPIDocument builds the document from the route table.
func openAPIDocument(routes []apiRoute, sec securityNames) map[string]any {
	g := &schemaGen{components: map[string]any{}, seen: map[reflect.Type]string{}}
	errorSchema := g.schemaFor(reflect.TypeOf(ErrorResponse{}))

	paths := map[string]any{}
	for _, r := range routes {
		item, _ := paths[openAPIPath(r.Path)].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[openAPIPath(r.Path)] = item
		}
		item[strings.ToLower(r.Method)] = g.operation(r, sec)
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":       "ESP Admin API",
			"version":     "1",
			"description": "The JSON API of ESP Admin. Conventions (authentication, errors, pagination, 404 rather than 403 across tenants) are described in docs/api.md.",
		},
		"paths": paths,
		"components": map[string]any{
			"schemas": g.components,
			"responses": map[string]any{
				"Error": map[string]any{
					"description": "An error, in the one shape every error has.",
					"content":     map[string]any{"application/json": map[string]any{"schema": errorSchema}},
				},
			},
			"securitySchemes": map[string]any{
				"session": map[string]any{
					"type": "apiKey", "in": "cookie", "name": sec.Cookie,
					"description": "The browser session cookie set by POST /api/v1/auth/login.",
				},
				"csrf": map[string]any{
					"type": "apiKey", "in": "header", "name": sec.CSRFHeader,
					"description": "Required with the session cookie on requests that change state; the value comes from the session (see docs/api.md).",
				},
				"bearer": map[string]any{
					"type": "http", "scheme": "bearer",
					"description": "An API token (personal or tenant) created under /api/v1/tenants/{tenant}/tokens or by `espadmin token create`.",
				},
			},
		},
	}
}

// securityNames are the names of the session cookie and CSRF header, which the identity
// code owns.
type securityNames struct {
	Cookie     string
	CSRFHeader string
}

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }

func (g *schemaGen) operation(r apiRoute, sec securityNames) map[string]any {
	op := map[string]any{
		"summary":     r.Summary,
		"operationId": operationID(r),
	}
	if r.Tag != "" {
		op["tags"] = []string{r.Tag}
	}
	desc := r.Description
	switch r.Auth {
	case authTenant:
		desc = strings.TrimSpace(desc + fmt.Sprintf("\n\nNeeds the permission `%s` (see docs/roles.md)", r.Perm))
		if sc := requiredScope(r.Perm); sc != "" {
			desc += fmt.Sprintf("; an API token needs the scope `%s`", sc)
		}
		desc += ". A tenant the caller does not belong to answers 404."
		op["x-permission"] = string(r.Perm)
	case authSession:
		desc = strings.TrimSpace(desc + "\n\nNeeds a browser session; API tokens are refused (403).")
	}
	if desc != "" {
		op["description"] = desc
	}

	var params []any
	for _, m := range echoParam.FindAllStringSubmatch(r.Path, -1) {
		params = append(params, map[string]any{
			"name": m[1], "in": "path", "required": true,
			"description": pathParamDocs[m[1]], "schema": map[string]any{"type": "string"},
		})
	}
	if r.Query != nil {
		params = append(params, g.queryParams(reflect.TypeOf(r.Query))...)
	}
	if len(params) > 0 {
		op["parameters"] = params
	}
	if r.Request != nil {
		op["requestBody"] = map[string]any{
			"required": true,
			"content":  map[string]any{mediaType(r.RequestType): map[string]any{"schema": g.schemaFor(reflect.TypeOf(r.Request))}},
		}
	}

	status := r.Status
	if status == 0 {
		status = http.StatusOK
	}
	ok := map[string]any{"description": http.StatusText(status)}
	if r.Response != nil {
		ok["content"] = map[string]any{mediaType(r.ResponseType): map[string]any{"schema": g.schemaFor(reflect.TypeOf(r.Response))}}
	}
	responses := map[string]any{fmt.Sprint(status): ok}
	errs := append([]int(nil), r.Errors...)
	switch r.Auth {
	case authAny:
		errs = append(errs, http.StatusUnauthorized)
	case authSession:
		errs = append(errs, http.StatusUnauthorized, http.StatusForbidden)
	case authTenant:
		errs = append(errs, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound)
	}
	if r.Request != nil {
		errs = append(errs, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity)
	}
	if r.Query != nil {
		errs = append(errs, http.StatusUnprocessableEntity)
	}
	for _, code := range errs {
		responses[fmt.Sprint(code)] = map[string]any{"$ref": "#/components/responses/Error"}
	}
	responses["default"] = map[string]any{"$ref": "#/components/responses/Error"}
	op["responses"] = responses

	switch r.Auth {
	case authNone:
		op["security"] = []any{}
	case authSession:
		op["security"] = []any{sessionSecurity(r.Method)}
	default:
		op["security"] = []any{sessionSecurity(r.Method), map[string]any{"bearer": []string{}}}
	}
	return op
}

// sessionSecurity is the cookie requirement, with the CSRF header on state-changing methods.
func sessionSecurity(method string) map[string]any {
	req := map[string]any{"session": []string{}}
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		req["csrf"] = []string{}
	}
	return req
}

// operationID derives a stable ID such as patchTenantsTenantMembersUser.
func operationID(r apiRoute) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(r.Method))
	for _, part := range strings.FieldsFunc(strings.TrimPrefix(r.Path, "/api/v1"), func(r rune) bool {
		return r == '/' || r == ':' || r == '-' || r == '.' || r == '_'
	}) {
		b.WriteString(upperFirst(part))
	}
	return b.String()
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}

// schemaGen derives JSON Schemas (the OpenAPI 3.1 dialect) from Go types. Named struct types
// become components referenced by $ref; everything else is inlined.
type schemaGen struct {
	components map[string]any
	seen       map[reflect.Type]string
}

var timeType = reflect.TypeOf(time.Time{})

func (g *schemaGen) schemaFor(t reflect.Type) map[string]any {
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t.Kind() == reflect.Pointer:
		return g.schemaFor(t.Elem())
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}
		}
		return map[string]any{"type": "array", "items": g.schemaFor(t.Elem())}
	case reflect.Map:
		s := map[string]any{"type": "object"}
		if t.Elem().Kind() != reflect.Interface {
			s["additionalProperties"] = g.schemaFor(t.Elem())
		}
		return s
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		if t.Name() == "" {
			return g.structSchema(t)
		}
		name, ok := g.seen[t]
		if !ok {
			name = componentName(t)
			g.seen[t] = name
			g.components[name] = g.structSchema(t)
		}
		return ref(name)
	}
	panic("openapi: no schema for Go type " + t.String())
}

// structSchema lists a struct's JSON properties; fields without omitempty are required.
func (g *schemaGen) structSchema(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	g.addFields(t, props, &required)
	s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		sort.Strings(required)
		s["required"] = required
	}
	return s
}

func (g *schemaGen) addFields(t reflect.Type, props map[string]any, required *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			g.addFields(ft, props, required) // embedded: its fields are promoted
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fs := g.schemaFor(f.Type)
		if enum := f.Tag.Get("enum"); enum != "" {
			values := strings.Split(enum, ",")
			if items, ok := fs["items"].(map[string]any); ok {
				items["enum"] = values
			} else {
				fs["enum"] = values
			}
		}
		if d := f.Tag.Get("doc"); d != "" {
			if _, isRef := fs["$ref"]; isRef {
				fs = map[string]any{"allOf": []any{fs}, "description": d}
			} else {
				fs["description"] = d
			}
		}
		props[name] = fs
		if !strings.Contains(opts, "omitempty") && f.Type.Kind() != reflect.Pointer {
			*required = append(*required, name)
		}
	}
}

// queryParams lists the `query` tagged fields of a struct (embedded structs included).
func (g *schemaGen) queryParams(t reflect.Type) []any {
	var out []any
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			out = append(out, g.queryParams(f.Type)...)
			continue
		}
		name := f.Tag.Get("query")
		if name == "" {
			continue
		}
		p := map[string]any{"name": name, "in": "query", "required": false, "schema": g.schemaFor(f.Type)}
		if d := f.Tag.Get("doc"); d != "" {
			p["description"] = d
		}
		out = append(out, p)
	}
	return out
}

// componentName turns a Go type name into a component name: tenantResponse → TenantResponse,
// pageResponse[…tenantResponse] → TenantResponsePage.
func componentName(t reflect.Type) string {
	n := t.Name()
	base, args, generic := strings.Cut(n, "[")
	if !generic {
		return upperFirst(n)
	}
	var b strings.Builder
	for _, a := range strings.Split(strings.TrimSuffix(args, "]"), ",") {
		if i := strings.LastIndex(a, "."); i >= 0 {
			a = a[i+1:]
		}
		b.WriteString(upperFirst(a))
	}
	b.WriteString(upperFirst(strings.TrimSuffix(base, "Response")))
	return b.String()
}

// serveOpenAPI answers GET /api/v1/openapi.json with the document built by routes().
func (s *Server) serveOpenAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, s.openAPI)
}

// mediaType is a route's body media type: JSON unless the route names another.
func mediaType(t string) string {
	if t == "" {
		return "application/json"
	}
	return t
}
