/**
 * `npm run simulator`: the Jumio simulator as a standalone process, for development and
 * the demo. Configuration comes from the environment; state lives in memory only.
 */
import { CONTROL_API_SUMMARY } from './control';
import { DEFAULT_API_SECRET, DEFAULT_API_TOKEN, startSimulator } from './server';

function port(raw: string | undefined): number {
  if (raw === undefined || raw === '') return 4010;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new Error(`JUMIO_SIMULATOR_PORT must be a port number (0-65535), got "${raw}"`);
  }
  return n;
}

/** `NAME=value`, single-quoted when the value holds anything a shell would interpret. */
function envLine(name: string, value: string): string {
  return /^[A-Za-z0-9._:/@%+=,-]*$/.test(value)
    ? `${name}=${value}`
    : `${name}='${value.replace(/'/g, `'\\''`)}'`;
}

async function main(): Promise<void> {
  const env = process.env;
  const logger = {
    info: (o: object, m?: string) => console.log(JSON.stringify({ level: 'info', msg: m, ...o })),
    warn: (o: object, m?: string) => console.warn(JSON.stringify({ level: 'warn', msg: m, ...o })),
  };
  const sim = await startSimulator({
    port: port(env.JUMIO_SIMULATOR_PORT),
    host: env.JUMIO_SIMULATOR_HOST || '127.0.0.1',
    apiToken: env.JUMIO_API_TOKEN || DEFAULT_API_TOKEN,
    apiSecret: env.JUMIO_API_SECRET || DEFAULT_API_SECRET,
    ...(env.JUMIO_ADMIN_API_TOKEN ? { adminApiToken: env.JUMIO_ADMIN_API_TOKEN } : {}),
    ...(env.JUMIO_ADMIN_API_SECRET ? { adminApiSecret: env.JUMIO_ADMIN_API_SECRET } : {}),
    allowHttpCallbacks: env.JUMIO_SIMULATOR_ALLOW_HTTP_CALLBACKS !== 'false',
    ...(env.JUMIO_SIMULATOR_PUBLIC_URL ? { publicBaseUrl: env.JUMIO_SIMULATOR_PUBLIC_URL } : {}),
    logger,
  });
  const c = sim.credentials;
  const separateAdmin = c.adminApiToken !== c.apiToken || c.adminApiSecret !== c.apiSecret;
  console.log(
    [
      `Jumio simulator listening on ${sim.baseUrl}  (development only: in-memory, no TLS)`,
      '',
      "Paste into the vault's environment (npm start in another terminal):",
      '',
      envLine('JUMIO_BASE_URL', sim.baseUrl),
      envLine('JUMIO_API_TOKEN', c.apiToken),
      envLine('JUMIO_API_SECRET', c.apiSecret),
      ...(separateAdmin
        ? [
            envLine('JUMIO_ADMIN_API_TOKEN', c.adminApiToken),
            envLine('JUMIO_ADMIN_API_SECRET', c.adminApiSecret),
          ]
        : []),
      '',
      `API credentials:   ${c.apiToken} / ${c.apiSecret}`,
      `Admin credentials: ${c.adminApiToken} / ${c.adminApiSecret}  (Retrieval and Delete)`,
      'User-Agent must look like "Company App/1.2.3".',
      '',
      'Control API (no auth):',
      ...CONTROL_API_SUMMARY.map((line) => `  ${line}`),
      '',
      'Details: README.md, section "Jumio simulator"',
    ].join('\n'),
  );
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: closing the simulator`);
    void sim.close().then(() => process.exit(0));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
