// Package tcp opens outbound TCP connections to backends and databases.
//
// Connections are denied by default: the operator allows destinations with
// `host serve --allow-tcp`. A Conn is an io.ReadWriteCloser, so io.Copy,
// io.ReadFull, bufio and friends work on it. The host closes every
// connection when the request ends; Close releases one earlier.
package tcp

import (
	"errors"
	"io"

	wit "serverless-wasm/guests/go/handler/internal/wit/serverless_wasm_platform_outbound_tcp"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

// Kind names a case of the WIT variant outbound-tcp.error.
type Kind uint8

// The cases of outbound-tcp.error.
const (
	NotAllowed        Kind = Kind(wit.ErrorNotAllowed)
	InvalidAddress    Kind = Kind(wit.ErrorInvalidAddress)
	DNSFailure        Kind = Kind(wit.ErrorDnsFailure)
	ConnectionRefused Kind = Kind(wit.ErrorConnectionRefused)
	TimedOut          Kind = Kind(wit.ErrorTimedOut)
	LimitReached      Kind = Kind(wit.ErrorLimitReached)
	Closed            Kind = Kind(wit.ErrorClosed)
	Other             Kind = Kind(wit.ErrorOther)
)

var kindNames = [...]string{
	NotAllowed:        "not-allowed",
	InvalidAddress:    "invalid-address",
	DNSFailure:        "dns-failure",
	ConnectionRefused: "connection-refused",
	TimedOut:          "timed-out",
	LimitReached:      "limit-reached",
	Closed:            "closed",
	Other:             "other",
}

// String is the case's name as the WIT file spells it, e.g. "not-allowed".
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Error is why a connection could not be made or used.
type Error struct {
	Kind Kind
	// Detail is the case's payload, when it has one: the destination for
	// NotAllowed, the address for InvalidAddress and DNSFailure, the
	// operating system's description for Other.
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return e.Kind.String()
	}
	return e.Kind.String() + ": " + e.Detail
}

// ErrClosed is returned by the methods of a Conn after Close.
var ErrClosed = errors.New("tcp: use of a closed connection")

// The largest read asked of the host at once.
const maxRead = 64 * 1024

// Conn is an open TCP connection.
type Conn struct {
	conn *wit.Connection
}

// Dial connects to address, written "host:port", "ipv4:port" or
// "[ipv6]:port". It blocks the handler, never the host, while it waits.
func Dial(address string) (*Conn, error) {
	result := wit.Connect(address)
	if result.IsErr() {
		return nil, convert(result.Err())
	}
	return &Conn{conn: result.Ok()}, nil
}

// Read reads up to len(p) bytes, waiting until at least one is available.
// It returns io.EOF once the peer has closed its side.
func (c *Conn) Read(p []byte) (int, error) {
	if c.conn == nil {
		return 0, ErrClosed
	}
	if len(p) == 0 {
		return 0, nil
	}
	data, err := unwrap(c.conn.Read(uint32(min(len(p), maxRead))))
	if err != nil {
		return 0, err
	}
	if len(data) == 0 {
		return 0, io.EOF
	}
	return copy(p, data), nil
}

// Write writes all of p, waiting until the operating system has taken it.
func (c *Conn) Write(p []byte) (int, error) {
	if c.conn == nil {
		return 0, ErrClosed
	}
	if _, err := unwrap(c.conn.Write(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close closes the connection. Closing it again does nothing.
func (c *Conn) Close() error {
	if c.conn != nil {
		c.conn.Drop()
		c.conn = nil
	}
	return nil
}

func unwrap[T any](result witTypes.Result[T, wit.Error]) (T, error) {
	if result.IsErr() {
		var zero T
		return zero, convert(result.Err())
	}
	return result.Ok(), nil
}

func convert(e wit.Error) *Error {
	err := &Error{Kind: Kind(e.Tag())}
	switch err.Kind {
	case NotAllowed:
		err.Detail = e.NotAllowed()
	case InvalidAddress:
		err.Detail = e.InvalidAddress()
	case DNSFailure:
		err.Detail = e.DnsFailure()
	case Other:
		err.Detail = e.Other()
	}
	return err
}
