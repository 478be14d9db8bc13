import { createServer, type Server } from 'node:http';
import { createApp } from './app';
import { ConfigError, loadConfig } from './config';
import { buildContainer } from './container';
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
  const server = createServer(app);
  try {
    await listen(server, config.port, config.host);
  } catch (error) {
    await container.close().catch(() => undefined);
    if (startup.signal.aborted) stoppedWhileStarting();
    die(`PORT ${config.port}: ${error instanceof Error ? error.message : String(error)}`);
  }

  const stop = (signal: string) => {
    logger.info({ signal }, 'stopping: no new connections, finishing in-flight requests and work');
    void closeGracefully(server, config.shutdownTimeoutMs, () =>
      logger.warn({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown timeout: closing connections'),
    ).then(async () => {
      try {
        await container.close();
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
