import { createServer, type RequestListener, type Server, type ServerOptions } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { TlsOptions } from 'node:tls';
import type { Config } from './config.js';

type Limits = Pick<Config, 'HTTP_HEADERS_TIMEOUT' | 'HTTP_REQUEST_TIMEOUT' | 'HTTP_KEEPALIVE_TIMEOUT' | 'HTTP_MAX_HEADER_BYTES' | 'HTTP_MAX_CONNECTIONS'>;

/**
 * Options for every HTTP listener Relay opens (API, health, MQTT over WebSocket), so a client that
 * sends its headers or body a byte at a time (slowloris) is cut off after HTTP_HEADERS_TIMEOUT /
 * HTTP_REQUEST_TIMEOUT instead of holding a socket for Node's defaults (60 s of headers, 300 s of
 * request), and a flood of sockets stops at HTTP_MAX_CONNECTIONS.
 * Node checks those two timeouts only every `connectionsCheckingInterval` (30 s by default), so
 * the interval follows the shorter timeout. https://nodejs.org/api/http.html#httpcreateserveroptions-requestlistener
 */
function serverOptions(c: Limits): ServerOptions {
  return {
    headersTimeout: c.HTTP_HEADERS_TIMEOUT,
    // Node requires requestTimeout ≥ headersTimeout (or 0) when both are set.
    requestTimeout: c.HTTP_REQUEST_TIMEOUT === 0 ? 0 : Math.max(c.HTTP_REQUEST_TIMEOUT, c.HTTP_HEADERS_TIMEOUT),
    connectionsCheckingInterval: Math.max(250, Math.min(5_000, Math.floor(Math.min(c.HTTP_HEADERS_TIMEOUT, c.HTTP_REQUEST_TIMEOUT || Infinity) / 4))),
    maxHeaderSize: c.HTTP_MAX_HEADER_BYTES,
    keepAliveTimeout: c.HTTP_KEEPALIVE_TIMEOUT,
  };
}

function limit<S extends Server | HttpsServer>(server: S, c: Limits): S {
  // Set as a property too: node:http's createServer options do not take it in every Node 20 release.
  server.keepAliveTimeout = c.HTTP_KEEPALIVE_TIMEOUT;
  if (c.HTTP_MAX_CONNECTIONS > 0) server.maxConnections = c.HTTP_MAX_CONNECTIONS;
  return server;
}

/** node:http's createServer with Relay's limits. */
export function createLimitedServer(c: Limits, listener?: RequestListener): Server {
  return limit(listener ? createServer(serverOptions(c), listener) : createServer(serverOptions(c)), c);
}

/** node:https's createServer with Relay's limits. */
export function createLimitedHttpsServer(c: Limits, tls: TlsOptions, listener?: RequestListener): HttpsServer {
  const options = { ...tls, ...serverOptions(c) };
  return limit(listener ? createHttpsServer(options, listener) : createHttpsServer(options), c);
}
