import type { JumioRegion } from '../adapters/jumio/regions';
import {
  JUMIO_CALLBACK_HOSTS,
  JUMIO_CALLBACK_IPS,
  type LookupAll,
  resolveCallbackHosts,
} from '../http/callback-origin';
import { UsageError } from './io';

export const REGIONS = Object.keys(JUMIO_CALLBACK_HOSTS) as JumioRegion[];

/**
 * `vault callback-ips [US|EU|SGP]`: resolves Jumio's callback DNS name for the region
 * (JUMIO_REGION by default) and prints the JUMIO_CALLBACK_ALLOWED_CIDRS line to deploy,
 * with what changed against the built-in list. Jumio has retired callback addresses
 * before; this is how an operator refreshes the allowlist. Returns the exit code.
 */
export async function callbackIps(
  regionArgument: string | undefined,
  options: { json: boolean },
  env: NodeJS.ProcessEnv,
  print: (line: string) => void,
  lookup?: LookupAll,
): Promise<number> {
  const region = (regionArgument ?? env.JUMIO_REGION ?? 'US').toUpperCase();
  if (!(REGIONS as string[]).includes(region)) {
    throw new UsageError(
      `unknown region ${JSON.stringify(region)}: use one of ${REGIONS.join(', ')}`,
    );
  }
  const host = JUMIO_CALLBACK_HOSTS[region as JumioRegion];
  // Throws (exit 1) when DNS fails or answers with an address that is not public.
  const resolved = await resolveCallbackHosts([host], lookup).catch((error: unknown) => {
    throw new Error(
      `cannot refresh the allowlist: ${error instanceof Error ? error.message : String(error)}`,
    );
  });
  const builtIn = new Set<string>(JUMIO_CALLBACK_IPS[region as JumioRegion]);
  const added = resolved.filter((ip) => !builtIn.has(ip));
  const gone = [...builtIn].filter((ip) => !resolved.includes(ip));
  const line = `JUMIO_CALLBACK_ALLOWED_CIDRS=${resolved.join(',')}`;
  if (options.json) {
    print(JSON.stringify({ region, host, addresses: resolved, added, gone, line }));
    return 0;
  }
  print(`# ${host} (${region}) resolves to ${resolved.length} address(es)`);
  if (added.length) print(`# new since the built-in list: ${added.join(', ')}`);
  if (gone.length) print(`# in the built-in list, no longer in DNS: ${gone.join(', ')}`);
  print(line);
  return 0;
}
