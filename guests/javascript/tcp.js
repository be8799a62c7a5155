// `POST /tcp-echo`: sends the request body to the TCP echo backend named by
// the `ECHO_ADDRESS` environment variable and answers with what comes back.
// The operator must allow the backend with `--allow-tcp`.
//
// When the backend cannot be reached the answer is `502` with the reason,
// for example `not-allowed`.

import { request, response, log, env, connect, TcpError } from './lib/serverless-wasm.js';

// Sends `body` to the echo backend at `address` and reads as many bytes
// back. The connection is closed when the function returns or throws.
function echo(address, body) {
  using connection = connect(address);
  connection.writeAll(body);
  return connection.readExact(body.length);
}

export function handle() {
  const address = env().ECHO_ADDRESS;
  if (address === undefined) {
    response.text(500, "ECHO_ADDRESS is not set in the app's env\n");
    return;
  }
  try {
    response.setBody(echo(address, request.body()));
  } catch (error) {
    if (!(error instanceof TcpError)) throw error;
    log.warn(`echo backend ${address}: ${error.message}`);
    response.text(502, `cannot use the echo backend at ${address}: ${error.message}\n`);
  }
}
