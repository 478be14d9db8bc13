import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import {
  StandardWebhooksSigner,
  UndiciNotificationSender,
  WebhookTransportError,
} from '../../src/adapters/notifications/webhook-sender';
import type { NotificationSender } from '../../src/core/ports';

/**
 * The NotificationSender port against its adapter (undici + standardwebhooks), talking to
 * real receivers on loopback.
 */
const SECRET = `whsec_${randomBytes(32).toString('base64')}`;

interface Seen {
  headers: IncomingHttpHeaders;
  body: string;
  path: string;
}

async function serve(
  handler: (req: Seen, res: import('node:http').ServerResponse) => void,
): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s = {
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        path: req.url ?? '',
      };
      seen.push(s);
      handler(s, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

describe('NotificationSender (undici + Standard Webhooks)', () => {
  let sender: UndiciNotificationSender;
  const closers: Array<() => Promise<void>> = [];

  beforeAll(() => {
    sender = new UndiciNotificationSender(new StandardWebhooksSigner(SECRET), {
      connectMs: 2000,
      headersMs: 500,
      bodyMs: 500,
    });
  });
  afterAll(async () => {
    await sender.close();
  });
  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
  });

  const message = (url: string) => ({
    id: `msg_${randomBytes(16).toString('hex')}`,
    url,
    payload: JSON.stringify({ type: 'authentication.finalized', data: { state: 'PASSED' } }),
  });

  it('POSTs the payload as JSON, signed so that the standardwebhooks verifier accepts it', async () => {
    const receiver = await serve((_req, res) => res.end('ok'));
    closers.push(receiver.close);
    const m = message(`${receiver.url}/hooks?tenant=a`);
    const port: NotificationSender = sender;
    expect(await port.send(m)).toEqual({ status: 200 });
    const [got] = receiver.seen;
    expect(got!.path).toBe('/hooks?tenant=a');
    expect(got!.headers['content-type']).toBe('application/json');
    expect(got!.body).toBe(m.payload);
    expect(got!.headers['webhook-id']).toBe(m.id);
    expect(
      new Webhook(SECRET).verify(got!.body, {
        'webhook-id': String(got!.headers['webhook-id']),
        'webhook-timestamp': String(got!.headers['webhook-timestamp']),
        'webhook-signature': String(got!.headers['webhook-signature']),
      }),
    ).toEqual(JSON.parse(m.payload));
    // Another secret does not verify it.
    expect(() =>
      new Webhook(`whsec_${randomBytes(32).toString('base64')}`).verify(got!.body, {
        'webhook-id': String(got!.headers['webhook-id']),
        'webhook-timestamp': String(got!.headers['webhook-timestamp']),
        'webhook-signature': String(got!.headers['webhook-signature']),
      }),
    ).toThrow();
  });

  it('reports any status as it is, and follows no redirect', async () => {
    const target = await serve((_req, res) => res.end('stolen'));
    closers.push(target.close);
    const redirecting = await serve((_req, res) => {
      res.statusCode = 307;
      res.setHeader('location', `${target.url}/elsewhere`);
      res.end();
    });
    closers.push(redirecting.close);
    expect(await sender.send(message(redirecting.url))).toEqual({ status: 307 });
    expect(target.seen).toHaveLength(0);
    const failing = await serve((_req, res) => {
      res.statusCode = 500;
      res.end('nope');
    });
    closers.push(failing.close);
    expect(await sender.send(message(failing.url))).toEqual({ status: 500 });
  });

  it('gives up on a receiver that does not answer in time', async () => {
    const hanging = await serve(() => undefined);
    closers.push(hanging.close);
    await expect(sender.send(message(hanging.url))).rejects.toBeInstanceOf(WebhookTransportError);
  });

  it('reads no more than a bounded part of a huge answer', async () => {
    let written = 0;
    const huge = await serve((_req, res) => {
      res.setHeader('content-type', 'text/plain');
      const chunk = Buffer.alloc(64 * 1024, 120);
      // Writes until the client goes away (or a cap far beyond what it should read).
      const pump = () => {
        while (written < 64 * 1024 * 1024) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    closers.push(huge.close);
    expect(await sender.send(message(huge.url))).toEqual({ status: 200 });
    expect(written).toBeLessThan(64 * 1024 * 1024);
  });

  it('refuses a receiver it cannot reach, naming no URL', async () => {
    const error = await sender.send(message('http://127.0.0.1:1/hook')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WebhookTransportError);
    expect((error as Error).message).not.toContain('127.0.0.1');
  });
});
