// Package handler turns a Go program into a serverless-wasm HTTP handler:
// a WebAssembly component of the world `handler` in wit/handler.wit.
//
// The host creates a fresh instance of the component for every request and
// calls the registered function once. The function reads the request with
// package request and builds the answer with package response; package
// hostlog writes to the host log and package tcp opens outbound
// connections. A panic makes the host answer 500 and log the cause.
//
//	package main
//
//	import (
//		"serverless-wasm/guests/go/handler"
//		"serverless-wasm/guests/go/handler/response"
//	)
//
//	func init() {
//		handler.Handle(func() {
//			response.Text(200, "Hello!\n")
//		})
//	}
//
//	func main() {}
//
// The standard library works as usual where WASI supports it: os.Getenv
// reads the app's env table, and standard output and error go to the host
// log.
package handler

import (
	"serverless-wasm/guests/go/handler/internal/export_wit_world"

	// The generated export glue: the component's `handle` function.
	_ "serverless-wasm/guests/go/handler/internal/wit/wit_exports"
)

// Handle registers fn as the function that answers each request. Call it
// once, from an init function of package main; main itself stays empty,
// because the host calls the component's export, not main.
func Handle(fn func()) {
	if fn == nil {
		panic("handler.Handle: nil function")
	}
	export_wit_world.Handler = fn
}
