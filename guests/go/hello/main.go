// Command hello is the `hello` sample (guests/SAMPLES.md), served on
// `GET /hello` and `GET /hello/:name`: a greeting, logged and answered as
// text.
package main

import (
	"fmt"

	"serverless-wasm/guests/go/handler"
	"serverless-wasm/guests/go/handler/hostlog"
	"serverless-wasm/guests/go/handler/request"
	"serverless-wasm/guests/go/handler/response"
)

func init() {
	handler.Handle(hello)
}

func hello() {
	name, ok := request.Param("name")
	if !ok {
		name = "world"
	}
	hostlog.Infof("greeting %s", name)
	response.Text(200, fmt.Sprintf("Hello, %s!\n", name))
}

// main is not called: the host calls the handler registered in init.
func main() {}
