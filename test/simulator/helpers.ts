import { createServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type RunningSimulator,
  type SimulatorOptions,
  startSimulator,
} from '../../src/simulator/server';

export const UA = 'Acme Vault/1.2.3';

export function basic(token: string, secret: string): string {
  return `Basic ${Buffer.from(`${token}:${secret}`).toString('base64')}`;
}

/** A simulator plus small helpers that speak to it the way the vault's client would. */
export class SimHarness {
  private constructor(readonly sim: RunningSimulator) {}

  static async start(options: SimulatorOptions = {}): Promise<SimHarness> {
    return new SimHarness(await startSimulator(options));
  }

  get baseUrl(): string {
    return this.sim.baseUrl;
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    const c = this.sim.credentials;
    return {
      authorization: basic(c.apiToken, c.apiSecret),
      'user-agent': UA,
      accept: 'application/json',
      ...extra,
    };
  }

  jumio(method: string, path: string, init: RequestInit = {}): Promise<Response> {
    return fetch(`${this.baseUrl}${path}`, {
      method,
      redirect: 'manual',
      ...init,
      headers: { ...this.headers(), ...((init.headers as Record<string, string>) ?? {}) },
    });
  }

  async control<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }> {
    const res = await fetch(`${this.baseUrl}/__sim${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
  }

  async createScan(
    body: Record<string, unknown> = {},
  ): Promise<{ scanReference: string; facemapSha256: string; facemap: Buffer }> {
    const res = await this.control<{
      scanReference: string;
      facemapSha256: string;
      facemapBase64: string;
    }>('POST', '/scans', body);
    if (res.status !== 201)
      throw new Error(`createScan: ${res.status} ${JSON.stringify(res.body)}`);
    return { ...res.body, facemap: Buffer.from(res.body.facemapBase64 ?? '', 'base64') };
  }

  /** An eligible enrollment that has been deleted at Jumio: ready for authentication. */
  async enrolledAndDeleted(body: Record<string, unknown> = {}) {
    const scan = await this.createScan(body);
    const del = await this.jumio('DELETE', `/api/netverify/v2/scans/${scan.scanReference}`);
    if (del.status !== 200) throw new Error(`delete: ${del.status}`);
    return scan;
  }

  initiate(parts: Part[], headers: Record<string, string> = {}): Promise<Response> {
    const { body, contentType } = multipart(parts);
    return this.jumio('POST', '/api/authentication/v1/facemap/initiate', {
      body,
      headers: { 'content-type': contentType, ...headers },
    });
  }

  close(): Promise<void> {
    return this.sim.close();
  }
}

export interface Part {
  name: string;
  filename?: string;
  contentType?: string;
  body: Buffer | string;
}

/** Hand-built multipart so tests control every part header (filename, Content-Type). */
export function multipart(parts: Part[]): { body: Buffer; contentType: string } {
  const boundary = `----simtest${Math.random().toString(16).slice(2)}`;
  const chunks: Buffer[] = [];
  for (const p of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"`;
    if (p.filename !== undefined) head += `; filename="${p.filename}"`;
    head += '\r\n';
    if (p.contentType !== undefined) head += `Content-Type: ${p.contentType}\r\n`;
    chunks.push(Buffer.from(`${head}\r\n`), Buffer.from(p.body), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

export function facemapPart(bytes: Buffer): Part {
  return {
    name: 'facemap',
    filename: 'facemap.bin',
    contentType: 'application/octet-stream',
    body: bytes,
  };
}

export function metadataPart(metadata: unknown, wrap = true): Part {
  return {
    name: 'enrollmentMetadata',
    filename: 'metadata.json',
    contentType: 'application/json',
    body: JSON.stringify(wrap ? { enrollmentMetadata: metadata } : metadata),
  };
}

export interface ReceivedCallback {
  method: string;
  path: string;
  contentType: string | undefined;
  headers: IncomingHttpHeaders;
  raw: string;
  form: URLSearchParams;
}

/** A loopback HTTP server standing in for the vault's callback endpoint. */
export async function startReceiver(answer = 200) {
  const received: ReceivedCallback[] = [];
  const waiters: Array<() => void> = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      received.push({
        method: req.method ?? '',
        path: req.url ?? '',
        contentType: req.headers['content-type'],
        headers: req.headers,
        raw,
        form: new URLSearchParams(raw),
      });
      res.writeHead(answer, { 'content-type': 'text/plain' }).end('received');
      for (const w of waiters.splice(0)) w();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/jumio/callback`,
    received,
    /** Resolves once `n` callbacks have arrived, or rejects after `ms`. */
    async waitFor(n: number, ms = 5000): Promise<ReceivedCallback[]> {
      const deadline = Date.now() + ms;
      while (received.length < n) {
        if (Date.now() > deadline)
          throw new Error(`expected ${n} callbacks, got ${received.length}`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 50);
        });
      }
      return received;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A request with exactly the given headers (fetch always adds a User-Agent). */
export function rawGet(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'GET', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}
