import { randomUUID } from 'node:crypto';
import type { Request, RequestHandler } from 'express';
import type { Metrics } from '../adapters/metrics';
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

/** Request duration by route template (never the concrete path: it carries references). */
export function httpMetrics(metrics: Metrics): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const template = (req.route as { path?: unknown } | undefined)?.path;
      const route = typeof template === 'string' ? `${req.baseUrl}${template}` : 'unmatched';
      metrics.httpRequests.observe(
        { route, method: req.method, status: String(res.statusCode) },
        Number(process.hrtime.bigint() - started) / 1e9,
      );
      if (route === '/webhooks/jumio') {
        const type = (req.body as { callBackType?: unknown } | undefined)?.callBackType;
        const status = res.statusCode;
        metrics.callbacks.inc({
          type: type === 'NETVERIFYID' || type === 'NETVERIFY_AUTHENTICATION' ? type : 'other',
          outcome:
            status < 300
              ? 'committed'
              : status === 403
                ? 'refused'
                : status < 500
                  ? 'invalid'
                  : 'failed',
        });
      }
    });
    next();
  };
}
