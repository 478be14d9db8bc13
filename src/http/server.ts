import { createServer, type RequestListener, type Server } from 'node:http';

/** Bounds of the HTTP server (README: HTTP_* settings). */
export interface HttpServerSettings {
  /** Time to receive a request's headers. */
  headersTimeoutMs: number;
  /** Time to receive a whole request, body included (a trickling client is cut). */
  requestTimeoutMs: number;
  /** How long an idle keep-alive connection stays open. */
  keepAliveTimeoutMs: number;
  /** Connections beyond this are closed at once. */
  maxConnections: number;
}

/**
 * The one place the vault's HTTP server is made (main.ts and the test vault). Node's
 * defaults let a client trickle a body for 5 minutes and open connections without limit;
 * Jumio's callbacks and internal API calls are small and quick, so the bounds are tight.
 */
export function createHttpServer(app: RequestListener, settings: HttpServerSettings): Server {
  const server = createServer(
    {
      headersTimeout: settings.headersTimeoutMs,
      requestTimeout: settings.requestTimeoutMs,
      keepAliveTimeout: settings.keepAliveTimeoutMs,
      // Node checks the two timeouts above only this often (30 s by default): check often
      // enough that they hold to within a quarter of the shorter one.
      connectionsCheckingInterval: Math.max(
        250,
        Math.floor(Math.min(settings.headersTimeoutMs, settings.requestTimeoutMs) / 4),
      ),
    },
    app,
  );
  server.maxConnections = settings.maxConnections;
  return server;
}
