// `GET /hello` and `GET /hello/:name`: a greeting.

import { request, response, log } from './lib/serverless-wasm.js';

export function handle() {
  const name = request.param('name') ?? 'world';
  log.info(`greeting ${name}`);
  response.text(200, `Hello, ${name}!\n`);
}
