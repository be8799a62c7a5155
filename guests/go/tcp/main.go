// Command tcp is the `tcp` sample (guests/SAMPLES.md), served on
// `POST /tcp-echo`: it sends the request body to the TCP echo backend named
// by the ECHO_ADDRESS environment variable and answers with what comes
// back. The operator must allow the backend with `--allow-tcp`.
//
// When the backend cannot be used the answer is 502 with the reason, for
// example "not-allowed: 127.0.0.1:7000".
package main

import (
	"fmt"
	"io"
	"os"

	"serverless-wasm/guests/go/handler"
	"serverless-wasm/guests/go/handler/hostlog"
	"serverless-wasm/guests/go/handler/request"
	"serverless-wasm/guests/go/handler/response"
	"serverless-wasm/guests/go/handler/tcp"
)

func init() {
	handler.Handle(tcpEcho)
}

func tcpEcho() {
	address, ok := os.LookupEnv("ECHO_ADDRESS")
	if !ok {
		response.Text(500, "ECHO_ADDRESS is not set in the app's env\n")
		return
	}
	reply, err := echo(address, request.Body())
	if err != nil {
		hostlog.Warnf("echo backend %s: %v", address, err)
		response.Text(502, fmt.Sprintf("cannot use the echo backend at %s: %v\n", address, err))
		return
	}
	if err := response.SetBody(reply); err != nil {
		panic(fmt.Sprintf("cannot send the reply: %v", err))
	}
}

// echo sends body to the backend at address and reads back as many bytes
// as it sent. A peer that closes early is an error (io.ErrUnexpectedEOF).
func echo(address string, body []byte) ([]byte, error) {
	conn, err := tcp.Dial(address)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := conn.Write(body); err != nil {
		return nil, err
	}
	reply := make([]byte, len(body))
	if _, err := io.ReadFull(conn, reply); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return reply, nil
}

// main is not called: the host calls the handler registered in init.
func main() {}
