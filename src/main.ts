import type { Server } from 'node:http';
import { startMetricsServer } from './adapters/metrics';
import { createApp } from './app';
import { ConfigError, loadConfig } from './config';
import { buildContainer } from './container';
import { createHttpServer } from './http/server';
import { closeGracefully } from './http/shutdown';
import { createLogger } from './logging';

/** Start-up failures end the process with a message an operator can act on. */
function die(message: string): never {
  process.stderr.write(`facemap-vault: cannot start: ${message}\n`);
  process.exit(1);
}

/** `work`'s outcome, or 'timeout' once `ms` have passed without one. */
async function within(work: Promise<void>, ms: number): Promise<'done' | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
  });
  try {
    return await Promise.race([work.then(() => 'done' as const), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

function listen(server: Server, port: number, host?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

async function main(): Promise<void> {
  // Signal handlers come first: a supervisor's SIGTERM while the vault is still starting
  // (ledger opening, migrations, simulator) must stop it cleanly, not kill it with 143.
  let requested: string | undefined;
  const startup = new AbortController();
  let onStop: (signal: string) => void = () => startup.abort();
  const request = (signal: string) => {
    if (requested) return;
    requested = signal;
    onStop(signal);
  };
  process.on('SIGTERM', () => request('SIGTERM'));
  process.on('SIGINT', () => request('SIGINT'));

  let config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    die(error instanceof ConfigError ? error.message : String(error));
  }
  const logger = createLogger(config.logLevel);
  const stoppedWhileStarting = (): never => {
    logger.info({ signal: requested }, 'stopped during start-up');
    process.exit(0);
  };
  let container;
  try {
    // Aborted between steps; whatever was opened is closed before this rejects.
    container = await buildContainer(config, logger, { signal: startup.signal });
  } catch (error) {
    if (startup.signal.aborted) stoppedWhileStarting();
    die(error instanceof Error ? error.message : String(error));
  }
  if (startup.signal.aborted) {
    await container.close().catch(() => undefined);
    stoppedWhileStarting();
  }

  const app = createApp(container);
  const server = createHttpServer(app, config.http);
  try {
    await listen(server, config.port, config.host);
  } catch (error) {
    await container.close().catch(() => undefined);
    if (startup.signal.aborted) stoppedWhileStarting();
    die(`PORT ${config.port}: ${error instanceof Error ? error.message : String(error)}`);
  }
  // /metrics on its own port, never where Jumio's callbacks arrive.
  const metricsServer =
    config.metricsPort === 0
      ? undefined
      : await startMetricsServer(container.metrics, config.metricsPort, config.host).catch(
          async (error: unknown) => {
            server.close();
            await container.close().catch(() => undefined);
            if (startup.signal.aborted) stoppedWhileStarting();
            die(
              `METRICS_PORT ${config.metricsPort}: ${error instanceof Error ? error.message : String(error)}`,
            );
          },
        );

  const stop = (signal: string) => {
    logger.info({ signal }, 'stopping: no new connections, finishing in-flight requests and work');
    void closeGracefully(server, config.shutdownTimeoutMs, () =>
      logger.warn({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown timeout: closing connections'),
    ).then(async () => {
      try {
        // Metrics, workers and pools close within a bound: one stuck call must not keep
        // the process alive (the unfinished step resumes after the restart).
        const closing = (async () => {
          await metricsServer?.close();
          await container.close();
        })();
        if ((await within(closing, config.shutdownCloseTimeoutMs)) === 'timeout') {
          logger.error(
            { timeoutMs: config.shutdownCloseTimeoutMs },
            'shutdown deadline passed with work or connections still open: exiting anyway',
          );
          process.exit(1);
        }
        logger.info({}, 'stopped');
        process.exit(0);
      } catch (error) {
        logger.error({ err: error }, 'error while closing');
        process.exit(1);
      }
    });
  };
  if (requested) {
    // The signal came while binding the port: nothing served yet, close the same way.
    stop(requested);
    return;
  }
  onStop = stop;
  container.startWorkers();
  const address = server.address();
  logger.info(
    { port: typeof address === 'object' && address ? address.port : config.port },
    'facemap vault listening',
  );
}

void main();
