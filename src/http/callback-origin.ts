/**
 * Where a Jumio callback may come from. Callbacks are unsigned, so the source address is
 * the only origin proof Jumio offers: an allowlist of its published IPs (configurable,
 * since Jumio has retired addresses before), and a TRUST_PROXY setting that decides how
 * far X-Forwarded-For is believed behind a load balancer.
 */
import { promises as dns } from 'node:dns';
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import type { Request, RequestHandler } from 'express';
import type { JumioRegion } from '../adapters/jumio/regions';
import { VaultError } from '../core/errors';
import type { Logger } from '../core/ports';
import { errorBody } from './errors';
import { requestPathOf } from './middleware';

/** Jumio's published callback source addresses (jumio-api.md), the default allowlists. */
export { JUMIO_CALLBACK_IPS } from '../core/jumio-callback-ips';

/** The DNS names behind those lists, for refreshing them (resolveCallbackHosts). */
export const JUMIO_CALLBACK_HOSTS: Readonly<Record<JumioRegion, string>> = {
  US: 'callback.jumio.com',
  EU: 'callback.lon.jumio.com',
  SGP: 'callback.core-sgp.jumio.com',
};

/** The embedded/simulator default: callbacks come from this machine. */
export const LOOPBACK_CIDRS: readonly string[] = ['127.0.0.0/8', '::1/128'];

/** The names proxy-addr (Express's trust proxy) understands, expanded the same way. */
const NAMED_RANGES: Readonly<Record<string, readonly string[]>> = {
  loopback: LOOPBACK_CIDRS,
  linklocal: ['169.254.0.0/16', 'fe80::/10'],
  uniquelocal: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
};

export class AddressSpecError extends VaultError {
  constructor(message: string) {
    super('invalid_address_list', message);
  }
}

type Family = 'ipv4' | 'ipv6';

interface Subnet {
  address: string;
  prefix: number;
  family: Family;
}

/**
 * Canonical form of an IP address, or undefined for anything else (zone ids included).
 * IPv4-mapped IPv6 (`::ffff:1.2.3.4`, as a dual-stack socket reports IPv4 peers) becomes
 * plain IPv4, so one rule covers both spellings.
 */
export function normalizeAddress(
  input: string | undefined,
): { address: string; family: Family } | undefined {
  if (input === undefined || input.length > 64) return undefined;
  if (isIPv4(input)) return { address: input, family: 'ipv4' };
  if (!isIPv6(input) || input.includes('%')) return undefined;
  let canonical: string;
  try {
    // The WHATWG URL parser writes IPv6 in RFC 5952 form: lowercase, zeros compressed.
    canonical = new URL(`http://[${input}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (mapped?.[1] !== undefined && mapped[2] !== undefined) {
    const hi = parseInt(mapped[1], 16);
    const lo = parseInt(mapped[2], 16);
    return { address: `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`, family: 'ipv4' };
  }
  return { address: canonical, family: 'ipv6' };
}

function parseSubnet(entry: string): Subnet | string {
  const slash = entry.indexOf('/');
  const base = slash === -1 ? entry : entry.slice(0, slash);
  const ip = normalizeAddress(base);
  if (ip === undefined) return 'is not an IPv4 or IPv6 address or CIDR';
  const wasMapped = ip.family === 'ipv4' && !isIPv4(base);
  let prefix = ip.family === 'ipv4' ? 32 : 128;
  if (slash !== -1) {
    const text = entry.slice(slash + 1);
    if (!/^\d{1,3}$/.test(text)) return 'has a prefix length that is not a number';
    prefix = Number(text);
    if (wasMapped) {
      if (prefix < 96 || prefix > 128) return 'an IPv4-mapped base needs a prefix from /96 to /128';
      prefix -= 96;
    }
  }
  const max = ip.family === 'ipv4' ? 32 : 128;
  // /0 would let the whole internet in (and proxy-addr refuses it too).
  if (prefix < 1 || prefix > max) return `needs a prefix length from 1 to ${max}`;
  return { address: ip.address, prefix, family: ip.family };
}

/**
 * Validates a list of addresses and CIDRs (separated by commas and/or whitespace; the
 * names loopback, linklocal and uniquelocal are expanded) and returns it in canonical
 * `address/prefix` form, deduplicated. An empty spec gives an empty list.
 */
export function parseCidrList(spec: string, label = 'address list'): string[] {
  const out: string[] = [];
  const entries = spec.split(/[\s,]+/).filter((e) => e !== '');
  entries.forEach((entry, index) => {
    const named = NAMED_RANGES[entry.toLowerCase()];
    if (named !== undefined) {
      out.push(...named);
      return;
    }
    const subnet = parseSubnet(entry);
    if (typeof subnet === 'string') {
      // Addresses are not secrets; bound the echo all the same.
      const shown = JSON.stringify(entry.length > 64 ? `${entry.slice(0, 64)}...` : entry);
      throw new AddressSpecError(`${label}: entry ${index + 1} ${shown} ${subnet}`);
    }
    out.push(`${subnet.address}/${subnet.prefix}`);
  });
  return [...new Set(out)];
}

/** Source addresses allowed to post callbacks, matched with node's BlockList. */
export class CidrAllowlist {
  readonly entries: readonly string[];
  private readonly list = new BlockList();

  constructor(entries: readonly string[]) {
    const canonical = parseCidrList(entries.join(','), 'allowlist');
    for (const entry of canonical) {
      const subnet = parseSubnet(entry) as Subnet;
      this.list.addSubnet(subnet.address, subnet.prefix, subnet.family);
    }
    this.entries = canonical;
  }

  static fromSpec(spec: string, label = 'JUMIO_CALLBACK_ALLOWED_CIDRS'): CidrAllowlist {
    return new CidrAllowlist(parseCidrList(spec, label));
  }

  /** False for undefined, garbage, zone ids, and anything outside the list. */
  allows(address: string | undefined): boolean {
    const ip = normalizeAddress(address);
    if (ip === undefined) return false;
    try {
      return this.list.check(ip.address, ip.family);
    } catch {
      return false;
    }
  }
}

/**
 * TRUST_PROXY -> the value for `app.set('trust proxy', value)`.
 * - unset, empty, `false`, `0`: false. req.ip is the TCP peer; X-Forwarded-For is ignored.
 * - a hop count n: Express trusts the peer and the n-1 addresses to its left in
 *   X-Forwarded-For, so with 1 (one load balancer) req.ip is the header's last entry,
 *   the one that balancer appended.
 * - addresses/CIDRs of the proxies: Express walks X-Forwarded-For from the right,
 *   skipping trusted hops; the first untrusted one is req.ip, so whatever a client wrote
 *   further left never counts.
 * `true` is refused: Express would take the left-most entry, which the client writes.
 */
export function parseTrustProxy(spec: string | undefined): false | number | string[] {
  const value = spec?.trim() ?? '';
  if (value === '' || /^false$/i.test(value)) return false;
  if (/^true$/i.test(value)) {
    throw new AddressSpecError(
      'TRUST_PROXY=true would believe the left-most X-Forwarded-For entry, which any client ' +
        'can write: give the number of proxies in front of the vault or their addresses/CIDRs',
    );
  }
  if (/^\d+$/.test(value)) {
    const hops = Number(value);
    if (hops === 0) return false;
    if (hops > 16) throw new AddressSpecError('TRUST_PROXY: a hop count must be from 0 to 16');
    return hops;
  }
  const list = parseCidrList(value, 'TRUST_PROXY');
  // Only separators (","): nothing trusted, said plainly.
  return list.length > 0 ? list : false;
}

export interface RefusedCallback {
  /** req.ip as derived under trust proxy, normalized (or sanitized when not an IP). */
  sourceAddress: string | undefined;
  /** The TCP peer (the load balancer when behind one). */
  socketAddress: string | undefined;
  method: string;
  path: string;
  requestId?: string;
}

/**
 * Refuses callbacks whose source address (req.ip, so the trust proxy setting must be
 * set on the app) is outside the allowlist: 403, after `onRefused` (audit and log) ran.
 */
export function callbackOrigin(options: {
  allowlist: CidrAllowlist;
  onRefused: (event: RefusedCallback) => void | Promise<void>;
  /** Only used when onRefused itself fails. */
  logger: Logger;
}): RequestHandler {
  const { allowlist, onRefused, logger } = options;
  return async (req, res, next) => {
    if (allowlist.allows(req.ip)) {
      next();
      return;
    }
    const event: RefusedCallback = {
      sourceAddress: sourceAddressOf(req),
      socketAddress: req.socket.remoteAddress,
      method: req.method,
      path: requestPathOf(req),
    };
    const requestId = res.locals.requestId as string | undefined;
    if (requestId !== undefined) event.requestId = requestId;
    try {
      await onRefused(event);
    } catch (err) {
      // Still refused. The body is never read here, so nothing of it can be logged.
      logger.error(
        {
          sourceAddress: event.sourceAddress,
          path: event.path,
          requestId,
          errorName: err instanceof Error ? err.name : typeof err,
          errorMessage: err instanceof Error ? err.message : undefined,
        },
        'recording a refused callback failed',
      );
    }
    res.status(403).json(errorBody(res, 'forbidden', 'callback source not allowed'));
  };
}

/**
 * req.ip for audit records: canonical when it is an IP; otherwise (a forwarded header
 * may carry anything under a hop count) printable ASCII only, at most 64 characters.
 */
export function sourceAddressOf(req: Request): string | undefined {
  const ip = req.ip;
  if (ip === undefined) return undefined;
  const normal = normalizeAddress(ip);
  if (normal !== undefined) return normal.address;
  return ip.slice(0, 64).replace(/[^\x21-\x7e]/g, '?');
}

export type LookupAll = (
  hostname: string,
  options: { all: true },
) => Promise<readonly { address: string; family: number }[]>;

const NON_PUBLIC = new BlockList();
for (const cidr of [
  ...Object.values(NAMED_RANGES).flat(),
  '0.0.0.0/8',
  '100.64.0.0/10',
  '::/128',
]) {
  const subnet = parseSubnet(cidr) as Subnet;
  NON_PUBLIC.addSubnet(subnet.address, subnet.prefix, subnet.family);
}

/**
 * Resolves Jumio's callback DNS names to the addresses to allow. Fails as a whole when a
 * name does not resolve or resolves to a private or loopback address: a partial or
 * poisoned answer would lock Jumio out or let someone else in.
 */
export async function resolveCallbackHosts(
  hosts: readonly string[],
  lookup: LookupAll = (hostname, options) => dns.lookup(hostname, options),
): Promise<string[]> {
  const found = new Set<string>();
  for (const host of hosts) {
    let answers: readonly { address: string; family: number }[];
    try {
      answers = await lookup(host, { all: true });
    } catch (err) {
      const code = (err as { code?: unknown } | null)?.code;
      throw new AddressSpecError(
        `cannot resolve ${host} (${typeof code === 'string' ? code : 'lookup failed'})`,
      );
    }
    if (answers.length === 0) throw new AddressSpecError(`${host} resolved to no address`);
    for (const answer of answers) {
      const ip = normalizeAddress(answer.address);
      if (ip === undefined) {
        throw new AddressSpecError(`${host} resolved to something that is not an IP address`);
      }
      if (NON_PUBLIC.check(ip.address, ip.family)) {
        throw new AddressSpecError(`${host} resolved to a non-public address ${ip.address}`);
      }
      found.add(ip.address);
    }
  }
  return [...found].sort(compareAddresses);
}

function compareAddresses(a: string, b: string): number {
  const key = (s: string) =>
    isIPv4(s)
      ? s
          .split('.')
          .map((n) => n.padStart(3, '0'))
          .join('.')
      : `~${s}`;
  return key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;
}
