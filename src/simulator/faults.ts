import { randomBytes } from 'node:crypto';
import { Readable, pipeline } from 'node:stream';
import type { Request, Response } from 'express';
import { type SimContext, jumioError } from './context';
import type { Fault, JumioEndpoint } from './state';

const CHUNK = 64 * 1024;

/**
 * Applies a fault to a Jumio call. Returns true when the fault answered (or abandoned)
 * the request, false when the normal handler should run afterwards ('slow' only).
 * Faults replace the endpoint's behaviour: a faulted DELETE deletes nothing.
 */
export async function applyFault(
  ctx: SimContext,
  fault: Fault,
  endpoint: JumioEndpoint,
  req: Request,
  res: Response,
  ref = '',
): Promise<boolean> {
  ctx.logger.info({ fault: fault.id, kind: fault.kind, endpoint }, 'fault injected');
  switch (fault.kind) {
    case 'status':
      if (fault.retryAfter !== undefined) res.setHeader('Retry-After', String(fault.retryAfter));
      jumioError(req, res, fault.status, `Simulated fault: HTTP ${fault.status}`);
      return true;
    case 'hang':
      // Never answer: the client must give up on its own. close() destroys the socket.
      ctx.hung.add(res);
      res.on('close', () => ctx.hung.delete(res));
      return true;
    case 'slow':
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          ctx.timers.delete(timer);
          resolve();
        }, fault.delayMs);
        ctx.timers.add(timer);
      });
      // The client may have given up meanwhile; then there is nobody to answer.
      return res.destroyed || req.destroyed;
    case 'redirect':
      res.redirect(302, fault.location);
      return true;
    case 'malformed':
      malformed(endpoint, res);
      return true;
    case 'oversized':
      oversized(fault, endpoint, res);
      return true;
    case 'truncated':
      truncated(ctx, endpoint, ref, res);
      return true;
  }
}

/**
 * The real answer cut short: the first half of the scan's facemap (or of a JSON body),
 * announced at full length or sent chunked, then the connection drops. A client that
 * keeps what it received stores half a facemap.
 */
function truncated(ctx: SimContext, endpoint: JumioEndpoint, ref: string, res: Response): void {
  const facemap = endpoint === 'facemap' ? ctx.state.scans.get(ref)?.facemap : undefined;
  const whole =
    facemap ?? Buffer.from(JSON.stringify({ scanReference: ref, padding: 'x'.repeat(512) }));
  res.status(200);
  res.setHeader('Content-Type', facemap ? 'application/octet-stream' : 'application/json');
  if (Math.random() < 0.5) res.setHeader('Content-Length', String(whole.length));
  res.write(whole.subarray(0, Math.floor(whole.length / 2)));
  setImmediate(() => res.socket?.destroy());
}

function malformed(endpoint: JumioEndpoint, res: Response): void {
  if (endpoint === 'facemap') {
    // A binary body cannot be "malformed JSON": announce 4 KiB, send half, cut the socket.
    res.status(200);
    res.setHeader('Content-Type', 'application/octet-stream');
    res.setHeader('Content-Length', '4096');
    res.write(randomBytes(2048));
    setImmediate(() => res.socket?.destroy());
    return;
  }
  res
    .status(200)
    .type('application/json')
    .send('{"timestamp":"2024-05-01T10:00:00.000Z","scanReference":"');
}

function oversized(fault: Fault, endpoint: JumioEndpoint, res: Response): void {
  if (endpoint !== 'facemap') {
    const padding = 'x'.repeat(Math.max(0, fault.bytes - 16));
    res.status(200).json({ padding });
    return;
  }
  res.status(200);
  res.setHeader('Content-Type', 'application/octet-stream');
  // Chunked by default so a client cannot rely on Content-Length alone to enforce its cap.
  if (fault.contentLength) res.setHeader('Content-Length', String(fault.bytes));
  let left = fault.bytes;
  const source = Readable.from(
    (function* () {
      while (left > 0) {
        const n = Math.min(CHUNK, left);
        left -= n;
        yield randomBytes(n);
      }
    })(),
  );
  pipeline(source, res, () => {
    /* the client hanging up mid-stream is expected here */
  });
}
