import { AsyncLocalStorage } from 'node:async_hooks';
import pino, { type DestinationStream } from 'pino';
import type { Logger } from './core/ports';

/**
 * Paths pino blanks before a line is written. Credentials can arrive in headers; the
 * application never logs bodies, facemaps or callback fields in the first place.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'headers.cookie',
  '*.authorization',
  '*.password',
  '*.secret',
  '*.token',
];

/** What every log line written while handling one request carries. */
export interface RequestContext {
  requestId: string;
}

/**
 * The request being handled, for log lines written anywhere below the HTTP layer (core
 * and adapters log through the injected logger and know nothing of requests).
 */
export const requestContext = new AsyncLocalStorage<RequestContext>();

/** JSON logs on stdout (or `destination`, which tests use to capture every line). */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'facemap-vault' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Inside a request, every line (children's included) names it.
      mixin: () => {
        const context = requestContext.getStore();
        return context === undefined ? {} : { requestId: context.requestId };
      },
    },
    destination,
  );
}
