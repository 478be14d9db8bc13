import type { Request, Response } from 'express';
import type { CallbackSender, SimLogger } from './callbacks';
import type { SimState } from './state';
import type { SimClock } from './time';

export interface SimulatorCredentials {
  apiToken: string;
  apiSecret: string;
  adminApiToken: string;
  adminApiSecret: string;
}

/** Everything the route modules share; one per simulator instance. */
export interface SimContext {
  state: SimState;
  clock: SimClock;
  credentials: SimulatorCredentials;
  /** Accept http:// callbackUrl on loopback hosts (the vault's tests listen on plain HTTP). */
  allowHttpCallbacks: boolean;
  callbacks: CallbackSender;
  logger: SimLogger;
  /** Timers of 'slow' faults, cleared on close so nothing keeps the process alive. */
  timers: Set<NodeJS.Timeout>;
  /** Responses held open by 'hang' faults. */
  hung: Set<Response>;
  baseUrl(req: Request): string;
}

export const FIFTEEN_MINUTES_MS = 15 * 60 * 1000;

/** Jumio's error body shape (jumio-api.md, section 2). */
export function jumioError(
  req: Request,
  res: Response,
  status: number,
  message: string,
  extra: Record<string, unknown> = {},
): void {
  res.status(status).json({
    httpStatus: String(status),
    message,
    requestURI: req.originalUrl,
    ...extra,
  });
}
