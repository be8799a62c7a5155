// serverless-wasm for JavaScript: short, idiomatic wrappers around the
// imports of the world `handler` (wit/handler.wit) for handlers built with
// componentize-js.
//
//   import { request, response, log, env, connect } from './lib/serverless-wasm.js';
//
//   export function handle() {
//     const name = request.param('name') ?? 'world';
//     log.info(`greeting ${name}`);
//     response.text(200, `Hello, ${name}!\n`);
//   }
//
// Strings come back as strings, bytes as Uint8Array, a WIT `option` as the
// value or `undefined`. A failed host call throws a `ResponseError` or a
// `TcpError` whose `code` is the WIT error case (`not-allowed`, ...).
//
// componentize-js runs a module's top level at build time and snapshots the
// result, so call nothing here at the top level of a module: the host
// functions (and the app's environment) only exist while `handle` runs.

import * as hostRequest from 'serverless-wasm:platform/request@0.1.0';
import * as hostResponse from 'serverless-wasm:platform/response@0.1.0';
import { log as hostLog } from 'serverless-wasm:platform/log@0.1.0';
import { connect as hostConnect } from 'serverless-wasm:platform/outbound-tcp@0.1.0';
import { getEnvironment } from 'wasi:cli/environment@0.2.12';

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** The largest read asked of the host at once. */
const READ_CHUNK = 64 * 1024;

/**
 * A host call refused with a WIT error variant: `code` is the case name
 * (`not-allowed`, `invalid-header-name`, ...) and `detail` its payload, if
 * it has one. The message is `code` or `code (detail)`.
 */
export class PlatformError extends Error {
  /** @param {{ tag: string, val?: unknown }} variant */
  constructor(variant) {
    super(variant.val === undefined ? variant.tag : `${variant.tag} (${variant.val})`);
    this.name = new.target.name;
    /** @type {string} */
    this.code = variant.tag;
    /** @type {unknown} */
    this.detail = variant.val;
  }
}

/** A `response-error` from the `response` interface. */
export class ResponseError extends PlatformError {}

/** An `error` from the `outbound-tcp` interface. */
export class TcpError extends PlatformError {}

/**
 * Runs a host call, turning the ComponentError that componentize-js throws
 * for a WIT `result` error (its `payload` is the variant, `{ tag, val }`)
 * into an `ErrorClass`. Other errors pass through.
 *
 * @template T
 * @param {new (variant: { tag: string, val?: unknown }) => PlatformError} ErrorClass
 * @param {() => T} call
 * @returns {T}
 */
function checked(ErrorClass, call) {
  try {
    return call();
  } catch (error) {
    const variant = error?.payload;
    if (typeof variant?.tag === 'string') {
      throw new ErrorClass(variant);
    }
    throw error;
  }
}

/** @param {Uint8Array | ArrayBuffer | string} data */
function bytes(data) {
  if (typeof data === 'string') return utf8.encode(data);
  return data instanceof Uint8Array ? data : new Uint8Array(data);
}

/**
 * The incoming request. Every accessor returns the same answer each time
 * it is called during one request.
 */
export const request = Object.freeze({
  /** The method in upper case, for example `GET`. @returns {string} */
  method: () => hostRequest.method(),

  /** The path as sent, still percent-encoded, without the query. @returns {string} */
  path: () => hostRequest.path(),

  /** The raw query string without `?`, still percent-encoded. @returns {string} */
  query: () => hostRequest.query(),

  /** The decoded query parameters, in order. @returns {[string, string][]} */
  queryParams: () => hostRequest.queryParams(),

  /**
   * The first value of query parameter `name`, decoded.
   * @param {string} name
   * @returns {string | undefined}
   */
  queryParam: (name) => hostRequest.queryParams().find(([key]) => key === name)?.[1],

  /**
   * Every header as `[name, value]`, names in lower case, in the order
   * received; a repeated header appears once per value. Bytes 0x80-0xFF of
   * a value are the code points U+0080-U+00FF.
   * @returns {[string, string][]}
   */
  headers: () => hostRequest.headers(),

  /**
   * The first value of header `name` (any case).
   * @param {string} name
   * @returns {string | undefined}
   */
  header: (name) => hostRequest.header(name),

  /** The whole body. @returns {Uint8Array} */
  body: () => hostRequest.body(),

  /** The body decoded as UTF-8 (invalid bytes become U+FFFD). @returns {string} */
  text: () => fromUtf8.decode(hostRequest.body()),

  /** The body parsed as JSON. @returns {unknown} */
  json: () => JSON.parse(fromUtf8.decode(hostRequest.body())),

  /** The route pattern that matched, for example `/users/:id`. @returns {string} */
  route: () => hostRequest.route(),

  /**
   * The route parameters, percent-decoded, in pattern order; a trailing
   * wildcard is named `*`.
   * @returns {[string, string][]}
   */
  params: () => hostRequest.params(),

  /**
   * One route parameter.
   * @param {string} name
   * @returns {string | undefined}
   */
  param: (name) => hostRequest.param(name),
});

/**
 * The response, sent when `handle` returns: `200` with no headers and an
 * empty body until changed. Every setter throws a `ResponseError` when the
 * host refuses the change.
 */
export const response = Object.freeze({
  /**
   * Sets the status code, with a custom reason phrase if given.
   * @param {number} status
   * @param {string} [reason]
   */
  status(status, reason) {
    checked(ResponseError, () => hostResponse.setStatusLine(status, reason));
  },

  /**
   * Replaces every value of header `name`.
   * @param {string} name
   * @param {string} value
   */
  setHeader(name, value) {
    checked(ResponseError, () => hostResponse.setHeader(name, value));
  },

  /**
   * Adds one more value for header `name`.
   * @param {string} name
   * @param {string} value
   */
  appendHeader(name, value) {
    checked(ResponseError, () => hostResponse.appendHeader(name, value));
  },

  /**
   * Replaces the body; a string is sent as UTF-8.
   * @param {Uint8Array | ArrayBuffer | string} body
   */
  setBody(body) {
    checked(ResponseError, () => hostResponse.setBody(bytes(body)));
  },

  /**
   * Appends to the body; a string is sent as UTF-8.
   * @param {Uint8Array | ArrayBuffer | string} chunk
   */
  appendBody(chunk) {
    checked(ResponseError, () => hostResponse.appendBody(bytes(chunk)));
  },

  /**
   * Answers `status` with a UTF-8 text body and
   * `content-type: text/plain; charset=utf-8`.
   * @param {number} status
   * @param {string} body
   */
  text(status, body) {
    response.status(status);
    response.setHeader('content-type', 'text/plain; charset=utf-8');
    response.setBody(body);
  },

  /**
   * Answers `status` with `value` as JSON and `content-type: application/json`.
   * @param {number} status
   * @param {unknown} value
   */
  json(status, value) {
    response.status(status);
    response.setHeader('content-type', 'application/json');
    response.setBody(JSON.stringify(value));
  },
});

/** @param {unknown} part */
function logText(part) {
  if (typeof part === 'string') return part;
  if (part !== null && typeof part === 'object' && !(part instanceof Error)) {
    try {
      return JSON.stringify(part);
    } catch {
      // Cycles and BigInts: fall back to String().
    }
  }
  return String(part);
}

/** @param {'trace' | 'debug' | 'info' | 'warn' | 'error'} level */
const logAt =
  (level) =>
  (...parts) =>
    hostLog(level, parts.map(logText).join(' '));

/**
 * Log lines in the host log, tagged with the app and the request id. Like
 * `console.log`, each function joins its arguments with spaces (objects
 * as JSON); one call is one log record.
 */
export const log = Object.freeze({
  trace: logAt('trace'),
  debug: logAt('debug'),
  info: logAt('info'),
  warn: logAt('warn'),
  error: logAt('error'),
});

/**
 * The app's environment (the `env` table of its configuration), read from
 * wasi:cli/environment at the time of the call: StarlingMonkey has no
 * `process.env`.
 *
 *   const { DATABASE_URL } = env();
 *
 * @returns {Record<string, string>}
 */
export function env() {
  return Object.fromEntries(getEnvironment());
}

/**
 * An open TCP connection. Close it with `close()`, or let `using` do it:
 *
 *   using connection = connect('redis.internal:6379');
 */
class Connection {
  /** @type {ReturnType<typeof hostConnect> | undefined} */
  #socket;

  /** @param {ReturnType<typeof hostConnect>} socket */
  constructor(socket) {
    this.#socket = socket;
  }

  #open() {
    if (this.#socket === undefined) throw new TcpError({ tag: 'closed' });
    return this.#socket;
  }

  /**
   * Writes all of `data` (a string as UTF-8), waiting until the operating
   * system has taken it.
   * @param {Uint8Array | ArrayBuffer | string} data
   */
  writeAll(data) {
    const socket = this.#open();
    checked(TcpError, () => socket.write(bytes(data)));
  }

  /**
   * Reads up to `max` bytes, waiting for at least one. An empty result
   * means the peer closed its side.
   * @param {number} [max]
   * @returns {Uint8Array}
   */
  read(max = READ_CHUNK) {
    const socket = this.#open();
    return checked(TcpError, () => socket.read(max));
  }

  /**
   * Reads exactly `length` bytes. Throws a `TcpError` `closed` if the peer
   * closes before they have all arrived.
   * @param {number} length
   * @returns {Uint8Array}
   */
  readExact(length) {
    const buffer = new Uint8Array(length);
    let filled = 0;
    while (filled < length) {
      const chunk = this.read(Math.min(length - filled, READ_CHUNK));
      if (chunk.length === 0) {
        throw new TcpError({ tag: 'closed', val: `after ${filled} of ${length} bytes` });
      }
      buffer.set(chunk, filled);
      filled += chunk.length;
    }
    return buffer;
  }

  /** Closes the connection (drops the resource). Closing twice is harmless. */
  close() {
    const socket = this.#socket;
    this.#socket = undefined;
    socket?.[Symbol.dispose]();
  }

  [Symbol.dispose]() {
    this.close();
  }
}

/**
 * Opens a TCP connection to `address` (`host:port`, `ipv4:port` or
 * `[ipv6]:port`); the operator must allow it with `host serve --allow-tcp`.
 * Throws a `TcpError`, for example `not-allowed`.
 * @param {string} address
 * @returns {Connection}
 */
export function connect(address) {
  return new Connection(checked(TcpError, () => hostConnect(address)));
}
