import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import { CallbackSender, type SimLogger } from './callbacks';
import type { SimContext, SimulatorCredentials } from './context';
import { controlRouter } from './control';
import { journeyRouter } from './journey';
import { jumioMiddleware } from './jumio';
import { SimState } from './state';
import { SimClock } from './time';

export type { SimulatorCredentials } from './context';
export type { SimLogger } from './callbacks';

export const DEFAULT_API_TOKEN = 'sim-api-token';
export const DEFAULT_API_SECRET = 'sim-api-secret';

export interface SimulatorOptions {
  /** 0 = a random free port. Default 0. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  apiToken?: string;
  apiSecret?: string;
  /** The Retrieval/Delete pair; defaults to the main pair. */
  adminApiToken?: string;
  adminApiSecret?: string;
  /** Used to deliver callbacks (default: global fetch). */
  callbackFetch?: typeof fetch;
  /** The simulator's time source; `POST /__sim/clock` moves it further. */
  now?: () => Date;
  logger?: SimLogger;
  /**
   * Accept `http://` callbackUrl values whose host is 127.0.0.1, localhost or [::1]
   * (Jumio itself accepts HTTPS only). Default true so tests can receive callbacks;
   * success and error URLs stay HTTPS-only regardless.
   */
  allowHttpCallbacks?: boolean;
  /**
   * Base URL written into facemap hrefs, image URLs and redirect URLs. Default: derived
   * from each request's Host header, so it matches whatever address the client used.
   */
  publicBaseUrl?: string;
}

export interface RunningSimulator {
  baseUrl: string;
  port: number;
  credentials: SimulatorCredentials;
  close(): Promise<void>;
}

const silentLogger: SimLogger = { info: () => undefined, warn: () => undefined };

function buildSimulator(options: SimulatorOptions = {}): { app: Express; ctx: SimContext } {
  const apiToken = options.apiToken ?? DEFAULT_API_TOKEN;
  const apiSecret = options.apiSecret ?? DEFAULT_API_SECRET;
  const logger = options.logger ?? silentLogger;
  const publicBaseUrl = options.publicBaseUrl?.replace(/\/+$/, '');
  const ctx: SimContext = {
    state: new SimState(),
    clock: new SimClock(options.now),
    credentials: {
      apiToken,
      apiSecret,
      adminApiToken: options.adminApiToken ?? apiToken,
      adminApiSecret: options.adminApiSecret ?? apiSecret,
    },
    allowHttpCallbacks: options.allowHttpCallbacks ?? true,
    callbacks: new CallbackSender(options.callbackFetch ?? fetch, logger),
    logger,
    timers: new Set(),
    hung: new Set(),
    baseUrl: (req) => publicBaseUrl ?? `${req.protocol}://${req.get('host') ?? 'localhost'}`,
  };

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use('/__sim', controlRouter(ctx));
  // The person's browser journey, not an API the vault calls: outside the request log.
  app.use('/web/v4/app', journeyRouter(ctx));
  app.use(jumioMiddleware(ctx));
  app.use((err: unknown, req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err);
    const status =
      typeof err === 'object' && err !== null && 'status' in err && typeof err.status === 'number'
        ? err.status
        : 500;
    const message = err instanceof Error ? err.message : 'internal error';
    if (status >= 500) logger.warn({ path: req.path, error: message }, 'simulator error');
    res.status(status).json({ httpStatus: String(status), message, requestURI: req.originalUrl });
  });
  return { app, ctx };
}

/** The simulator as an Express 5 app, without listening (for supertest or embedding). */
export function createSimulatorApp(options: SimulatorOptions = {}): Express {
  return buildSimulator(options).app;
}

/** Starts the simulator on `host:port` (random port by default) and returns its base URL. */
export async function startSimulator(options: SimulatorOptions = {}): Promise<RunningSimulator> {
  const host = options.host ?? '127.0.0.1';
  const { app, ctx } = buildSimulator(options);
  const server = createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  const baseUrl = `http://${urlHost}:${port}`;
  ctx.logger.info({ baseUrl }, 'jumio simulator listening');

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      for (const timer of ctx.timers) clearTimeout(timer);
      ctx.timers.clear();
      await ctx.callbacks.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Hung requests and keep-alive sockets would otherwise hold close() open.
        server.closeAllConnections();
      });
    })();
    return closing;
  };
  return { baseUrl, port, credentials: { ...ctx.credentials }, close };
}
