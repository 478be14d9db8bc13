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

/** JSON logs on stdout (or `destination`, which tests use to capture every line). */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'facemap-vault' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
