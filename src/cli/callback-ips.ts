import type { JumioRegion } from '../adapters/jumio/undici-jumio-client';
import {
  JUMIO_CALLBACK_HOSTS,
  JUMIO_CALLBACK_IPS,
  type LookupAll,
  resolveCallbackHosts,
} from '../http/callback-origin';

const REGIONS = Object.keys(JUMIO_CALLBACK_HOSTS) as JumioRegion[];

/**
 * `npm run callback-ips -- [US|EU|SGP]`: resolves Jumio's callback DNS name for the region
 * (JUMIO_REGION by default) and prints the JUMIO_CALLBACK_ALLOWED_CIDRS line to deploy,
 * with what changed against the built-in list. Jumio has retired callback addresses
 * before; this is how an operator refreshes the allowlist. Returns the exit code.
 */
export async function callbackIps(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  print: (line: string) => void,
  lookup?: LookupAll,
): Promise<number> {
  const region = (args[0] ?? env.JUMIO_REGION ?? 'US').toUpperCase();
  if (!(REGIONS as string[]).includes(region)) {
    print(`unknown region ${JSON.stringify(region)}: use one of ${REGIONS.join(', ')}`);
    return 2;
  }
  const host = JUMIO_CALLBACK_HOSTS[region as JumioRegion];
  let resolved: string[];
  try {
    resolved = await resolveCallbackHosts([host], lookup);
  } catch (error) {
    print(
      `cannot refresh the allowlist: ${error instanceof Error ? error.message : String(error)}`,
    );
    return 1;
  }
  const builtIn = new Set<string>(JUMIO_CALLBACK_IPS[region as JumioRegion]);
  const added = resolved.filter((ip) => !builtIn.has(ip));
  const gone = [...builtIn].filter((ip) => !resolved.includes(ip));
  print(`# ${host} (${region}) resolves to ${resolved.length} address(es)`);
  if (added.length) print(`# new since the built-in list: ${added.join(', ')}`);
  if (gone.length) print(`# in the built-in list, no longer in DNS: ${gone.join(', ')}`);
  print(`JUMIO_CALLBACK_ALLOWED_CIDRS=${resolved.join(',')}`);
  return 0;
}

if (require.main === module) {
  void callbackIps(process.argv.slice(2), process.env, (line) => console.log(line)).then((code) =>
    process.exit(code),
  );
}
