import type { Server } from 'node:http';

/**
 * Stops accepting connections and resolves once every in-flight request has finished, or
 * once `timeoutMs` has passed (then the remaining connections are cut, after `onTimeout`).
 */
export function closeGracefully(
  server: Server,
  timeoutMs: number,
  onTimeout: () => void = () => undefined,
): Promise<void> {
  return new Promise((resolve) => {
    // A keep-alive socket that is idle would hold close() open: close those as they appear.
    const idle = setInterval(() => server.closeIdleConnections(), 100);
    const force = setTimeout(() => {
      onTimeout();
      server.closeAllConnections();
    }, timeoutMs);
    server.close(() => {
      clearInterval(idle);
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}
