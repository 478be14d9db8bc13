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
  let config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    die(error instanceof ConfigError ? error.message : String(error));
  }
  const logger = createLogger(config.logLevel);
  let container;
  try {
    container = await buildContainer(config, logger);
  } catch (error) {
    die(error instanceof Error ? error.message : String(error));
  }

  const app = createApp(container);
  const server = createHttpServer(app, config.http);
  try {
    await listen(server, config.port, config.host);
  } catch (error) {
    await container.close().catch(() => undefined);
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
            die(
              `METRICS_PORT ${config.metricsPort}: ${error instanceof Error ? error.message : String(error)}`,
            );
          },
        );
  container.startWorkers();
  const address = server.address();
  logger.info(
    { port: typeof address === 'object' && address ? address.port : config.port },
    'facemap vault listening',
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping: no new connections, finishing in-flight requests and work');
    void closeGracefully(server, config.shutdownTimeoutMs, () =>
      logger.warn({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown timeout: closing connections'),
    ).then(async () => {
      try {
        await metricsServer?.close();
        await container.close();
        logger.info({}, 'stopped');
        process.exit(0);
      } catch (error) {
        logger.error({ err: error }, 'error while closing');
        process.exit(1);
      }
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

void main();
