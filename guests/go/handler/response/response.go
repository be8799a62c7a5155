// Package response builds the response that the host sends once the
// handler returns. A handler that calls nothing here answers 200 OK with
// no headers of its own and an empty body.
package response

import (
	"fmt"
	"io"

	wit "serverless-wasm/guests/go/handler/internal/wit/serverless_wasm_platform_response"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

// Error is a change that the host refused; the response is left as it was
// before the call.
type Error struct {
	wit wit.ResponseError
}

func (e *Error) Error() string {
	switch e.wit.Tag() {
	case wit.ResponseErrorInvalidStatus:
		return fmt.Sprintf("invalid status %d", e.wit.InvalidStatus())
	case wit.ResponseErrorInvalidHeaderName:
		return fmt.Sprintf("invalid header name %q", e.wit.InvalidHeaderName())
	case wit.ResponseErrorInvalidHeaderValue:
		return fmt.Sprintf("invalid header value %q", e.wit.InvalidHeaderValue())
	case wit.ResponseErrorReservedHeader:
		return fmt.Sprintf("header %q is managed by the host", e.wit.ReservedHeader())
	case wit.ResponseErrorTooLarge:
		return fmt.Sprintf("response larger than the app's limit of %d bytes", e.wit.TooLarge())
	case wit.ResponseErrorHeadersTooLarge:
		return "more headers, or larger ones, than the host sends"
	default:
		return fmt.Sprintf("response error %d", e.wit.Tag())
	}
}

// SetStatus sets the status code with its standard reason phrase.
func SetStatus(status int) error {
	if status < 0 || status > 0xFFFF {
		return fmt.Errorf("invalid status %d", status)
	}
	return check(wit.SetStatus(uint16(status)))
}

// SetStatusLine sets the status code and a custom reason phrase.
func SetStatusLine(status int, reason string) error {
	if status < 0 || status > 0xFFFF {
		return fmt.Errorf("invalid status %d", status)
	}
	return check(wit.SetStatusLine(uint16(status), witTypes.Some(reason)))
}

// SetHeader replaces every value of header name with value. Runes U+0080
// to U+00FF of value are sent as the bytes 0x80 to 0xFF.
func SetHeader(name, value string) error { return check(wit.SetHeader(name, value)) }

// AppendHeader adds one more value for header name, keeping those already
// set.
func AppendHeader(name, value string) error { return check(wit.AppendHeader(name, value)) }

// SetBody replaces the response body.
func SetBody(body []byte) error { return check(wit.SetBody(body)) }

// AppendBody appends bytes to the response body.
func AppendBody(chunk []byte) error { return check(wit.AppendBody(chunk)) }

// Text answers with status and a UTF-8 text body, setting
// "content-type: text/plain; charset=utf-8". It panics (and the client gets
// 500) if the host refuses, which only an invalid status or a body over
// the app's limit can cause.
func Text(status int, body string) {
	must(SetStatus(status))
	must(SetHeader("content-type", "text/plain; charset=utf-8"))
	must(SetBody([]byte(body)))
}

// Writer is an io.Writer that appends to the response body, for use with
// fmt.Fprintf and io.Copy.
var Writer io.Writer = bodyWriter{}

type bodyWriter struct{}

func (bodyWriter) Write(p []byte) (int, error) {
	if err := AppendBody(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func check(result witTypes.Result[witTypes.Unit, wit.ResponseError]) error {
	if result.IsErr() {
		return &Error{result.Err()}
	}
	return nil
}

func must(err error) {
	if err != nil {
		panic("response: " + err.Error())
	}
}
