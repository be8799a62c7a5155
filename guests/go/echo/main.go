// Command echo is the `echo` sample (guests/SAMPLES.md), served on
// `ANY /echo` and `ANY /echo/*`: it answers with the request.
//
// The response body is the request body, byte for byte, with the request's
// content-type (application/octet-stream when it has none). The rest of the
// request comes back in headers: x-echo-method, x-echo-path, x-echo-query,
// x-echo-route, x-echo-params (form-encoded name=value pairs) and one
// x-echo-header-NAME per request header.
package main

import (
	"fmt"
	"strings"

	"serverless-wasm/guests/go/handler"
	"serverless-wasm/guests/go/handler/request"
	"serverless-wasm/guests/go/handler/response"
)

func init() {
	handler.Handle(echo)
}

func echo() {
	set("x-echo-method", request.Method())
	set("x-echo-path", request.Path())
	set("x-echo-query", request.Query())
	set("x-echo-route", request.Route())
	set("x-echo-params", formEncode(request.Params()))
	for _, header := range request.Headers() {
		set("x-echo-header-"+header.Name, header.Value)
	}
	contentType, ok := request.Header("content-type")
	if !ok {
		contentType = "application/octet-stream"
	}
	set("content-type", contentType)
	if err := response.SetBody(request.Body()); err != nil {
		panic(fmt.Sprintf("cannot echo the body: %v", err))
	}
}

// set appends one response header; a refusal is a bug, so it panics.
func set(name, value string) {
	if err := response.AppendHeader(name, value); err != nil {
		panic(fmt.Sprintf("cannot echo header %s: %v", name, err))
	}
}

// formEncode writes pairs as name=value joined by "&", every byte other
// than A-Z a-z 0-9 - . _ ~ * written %XX, so that any value fits in a
// header. (net/url's QueryEscape keeps neither "~" nor "*" and writes
// spaces as "+", hence this small encoder.)
func formEncode(pairs []request.Pair) string {
	var out strings.Builder
	for i, pair := range pairs {
		if i > 0 {
			out.WriteByte('&')
		}
		encode(&out, pair.Name)
		out.WriteByte('=')
		encode(&out, pair.Value)
	}
	return out.String()
}

func encode(out *strings.Builder, text string) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(text); i++ {
		switch b := text[i]; {
		case 'A' <= b && b <= 'Z', 'a' <= b && b <= 'z', '0' <= b && b <= '9',
			b == '-', b == '.', b == '_', b == '~', b == '*':
			out.WriteByte(b)
		default:
			out.WriteByte('%')
			out.WriteByte(hex[b>>4])
			out.WriteByte(hex[b&15])
		}
	}
}

// main is not called: the host calls the handler registered in init.
func main() {}
