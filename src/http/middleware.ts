import { randomUUID } from 'node:crypto';
import type { Request, RequestHandler } from 'express';
import type { Logger } from '../core/ports';
import { requestContext } from '../logging';

const INCOMING_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/**
 * Reuses a well-formed incoming X-Request-Id (from a proxy), else makes one; returns it,
 * and runs the rest of the request inside its context, so every log line carries it.
 */
export const requestId: RequestHandler = (req, res, next) => {
  const incoming = req.get('x-request-id');
  const id = incoming && INCOMING_ID.test(incoming) ? incoming : randomUUID();
  res.locals.requestId = id;
  res.setHeader('X-Request-Id', id);
  requestContext.run({ requestId: id }, next);
};

/**
 * One line per request: method, full path (router mounts included), status and timing.
 * No query string, no body.
 */
export function accessLog(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    const path = requestPathOf(req);
    res.on('finish', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      logger.info(
        {
          requestId: res.locals.requestId,
          method: req.method,
          path,
          status: res.statusCode,
          ms: Math.round(ms * 10) / 10,
        },
        'request',
      );
    });
    next();
  };
}

/** The full path (router mounts included), without the query string, bounded. */
export function requestPathOf(req: Request): string {
  const url = req.originalUrl || req.url;
  const q = url.indexOf('?');
  return (q === -1 ? url : url.slice(0, q)).slice(0, 512);
}
