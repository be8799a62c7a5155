// `ANY /echo` and `ANY /echo/*`: answers with the request.
//
// The response body is the request body, byte for byte, with the request's
// `content-type`. The rest of the request comes back in headers:
// `x-echo-method`, `x-echo-path`, `x-echo-query`, `x-echo-route`,
// `x-echo-params` (form-encoded `name=value` pairs) and one
// `x-echo-header-NAME` per request header.

import { request, response } from './lib/serverless-wasm.js';

// Percent-encodes the UTF-8 bytes of `text`, keeping only
// `A-Z a-z 0-9 - . _ ~ *`: encodeURIComponent also keeps `! ' ( )`.
const formComponent = (text) =>
  encodeURIComponent(text).replace(
    /[!'()]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );

// Form-encodes `[name, value]` pairs, so that any parameter value fits in
// a header.
const formEncode = (pairs) =>
  pairs.map(([name, value]) => `${formComponent(name)}=${formComponent(value)}`).join('&');

export function handle() {
  response.appendHeader('x-echo-method', request.method());
  response.appendHeader('x-echo-path', request.path());
  response.appendHeader('x-echo-query', request.query());
  response.appendHeader('x-echo-route', request.route());
  response.appendHeader('x-echo-params', formEncode(request.params()));
  for (const [name, value] of request.headers()) {
    response.appendHeader(`x-echo-header-${name}`, value);
  }
  response.setHeader('content-type', request.header('content-type') ?? 'application/octet-stream');
  response.setBody(request.body());
}
