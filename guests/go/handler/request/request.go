// Package request reads the incoming HTTP request that this instance was
// created for. Every function returns the same answer each time it is
// called during one request.
package request

import (
	wit "serverless-wasm/guests/go/handler/internal/wit/serverless_wasm_platform_request"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

// Pair is one name and value: a header, a query parameter or a route
// parameter.
type Pair struct {
	Name  string
	Value string
}

// Method is the request method in upper case, for example "GET".
func Method() string { return wit.Method() }

// Path is the path exactly as the client sent it (still percent-encoded),
// without the query string. It always starts with "/".
func Path() string { return wit.Path() }

// Query is the raw query string without the leading "?", still
// percent-encoded; empty when the request has none.
func Query() string { return wit.Query() }

// QueryParams is the query string split into decoded pairs, in the order
// the client sent them ("+" decodes to a space).
func QueryParams() []Pair { return pairs(wit.QueryParams()) }

// QueryParam is the first value of query parameter name, decoded.
func QueryParam(name string) (string, bool) {
	for _, pair := range QueryParams() {
		if pair.Name == name {
			return pair.Value, true
		}
	}
	return "", false
}

// Headers is every request header, names in lower case, in the order
// received; a header sent several times appears several times. Bytes
// 0x80 to 0xFF of a value are the runes U+0080 to U+00FF (ISO-8859-1).
func Headers() []Pair { return pairs(wit.Headers()) }

// Header is the first value of header name, matched case-insensitively.
func Header(name string) (string, bool) { return option(wit.Header(name)) }

// Body is the whole request body, already checked against the app's size
// limit.
func Body() []byte { return wit.Body() }

// Route is the configured route pattern that matched, for example
// "/users/:id".
func Route() string { return wit.Route() }

// Params is the route's parameters, percent-decoded, in pattern order. A
// trailing "*" wildcard appears under the name "*".
func Params() []Pair { return pairs(wit.Params()) }

// Param is the value of route parameter name.
func Param(name string) (string, bool) { return option(wit.Param(name)) }

func pairs(tuples []witTypes.Tuple2[string, string]) []Pair {
	out := make([]Pair, len(tuples))
	for i, tuple := range tuples {
		out[i] = Pair{Name: tuple.F0, Value: tuple.F1}
	}
	return out
}

func option(value witTypes.Option[string]) (string, bool) {
	if value.IsNone() {
		return "", false
	}
	return value.Some(), true
}
