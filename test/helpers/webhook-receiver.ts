import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedWebhook {
  headers: IncomingHttpHeaders;
  body: string;
  path: string;
}

/**
 * A calling service's notification endpoint on loopback: records every request and
 * answers with the next queued status (200 once the queue is empty).
 */
export class WebhookReceiver {
  private constructor(
    private readonly server: Server,
    readonly origin: string,
    readonly received: ReceivedWebhook[],
    private readonly statuses: number[],
  ) {}

  static async start(): Promise<WebhookReceiver> {
    const received: ReceivedWebhook[] = [];
    const statuses: number[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
          path: req.url ?? '',
        });
        res.statusCode = statuses.shift() ?? 200;
        res.end('ok');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return new WebhookReceiver(server, `http://127.0.0.1:${port}`, received, statuses);
  }

  /** The next answers, in order (e.g. 500, 500: the third attempt gets 200). */
  answerWith(...statuses: number[]): void {
    this.statuses.push(...statuses);
  }

  url(path = '/hooks/vault'): string {
    return `${this.origin}${path}`;
  }

  for(authenticationReference: string): ReceivedWebhook[] {
    return this.received.filter((r) => r.body.includes(authenticationReference));
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
