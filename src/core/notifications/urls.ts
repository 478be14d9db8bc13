import { isLoopbackHostname } from '../jumio';

/**
 * Where the vault may POST notifications: https, or plain http to this machine only (a
 * receiver on loopback), no credentials in the URL, and an origin the operator allowed.
 */
export function notifyUrlProblem(value: string, allowedOrigins: readonly string[]): string | null {
  if (value.length > 2048) return 'must be at most 2048 characters';
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'must be an absolute URL';
  }
  const loopbackHttp = url.protocol === 'http:' && isLoopbackHostname(url.hostname);
  if (url.protocol !== 'https:' && !loopbackHttp) return 'must be https (http on loopback only)';
  if (url.username || url.password) return 'must not carry credentials';
  if (url.hash) return 'must not have a fragment';
  if (!allowedOrigins.includes(url.origin)) {
    return 'its origin is not in VAULT_NOTIFY_ALLOWED_ORIGINS';
  }
  return null;
}

/** Parses `https://a.example, http://127.0.0.1:9000` into canonical origins; throws on others. */
export function parseAllowedOrigins(value: string): string[] {
  const origins: string[] = [];
  for (const entry of value.split(/[\s,]+/).filter(Boolean)) {
    let url: URL;
    try {
      url = new URL(entry);
    } catch {
      throw new Error(`"${entry}" is not an origin like https://host[:port]`);
    }
    const loopbackHttp = url.protocol === 'http:' && isLoopbackHostname(url.hostname);
    if ((url.protocol !== 'https:' && !loopbackHttp) || url.origin === 'null') {
      throw new Error(`"${entry}" must be https (http on loopback only)`);
    }
    if (url.username || url.password || url.search || url.hash || url.pathname !== '/') {
      throw new Error(`"${entry}" must be an origin only (scheme, host, port)`);
    }
    origins.push(url.origin);
  }
  return [...new Set(origins)];
}
