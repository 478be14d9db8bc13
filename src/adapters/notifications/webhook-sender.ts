/**
 * The NotificationSender adapter: Standard Webhooks signing (the `standardwebhooks`
 * package) and one HTTP POST with undici: timeouts on connect, headers and body, no
 * redirects followed, and at most a few kilobytes of the answer read.
 */
import { Agent, type Dispatcher } from 'undici';
import { Webhook } from 'standardwebhooks';
import { VaultError } from '../../core/errors';
import type { NotificationSender } from '../../core/ports';

export interface WebhookTimeouts {
  connectMs: number;
  headersMs: number;
  bodyMs: number;
}

export const DEFAULT_WEBHOOK_TIMEOUTS: WebhookTimeouts = {
  connectMs: 5_000,
  headersMs: 10_000,
  bodyMs: 10_000,
};

/** The answer is only looked at for its status; a receiver gets this much of a body read. */
const MAX_RESPONSE_BYTES = 16 * 1024;

export const USER_AGENT = 'FacemapVault-Webhooks/1.0';

/** Signs per the Standard Webhooks specification: `webhook-id`, `-timestamp`, `-signature`. */
export class StandardWebhooksSigner {
  private readonly webhook: Webhook;

  /** `secret`: `whsec_` + base64 (VAULT_NOTIFY_SECRET). */
  constructor(secret: string) {
    this.webhook = new Webhook(secret);
  }

  headers(id: string, timestamp: Date, payload: string): Record<string, string> {
    return {
      'webhook-id': id,
      'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)),
      'webhook-signature': this.webhook.sign(id, timestamp, payload),
    };
  }
}

/** No usable answer came (network, timeout). The message names the kind only, no URL. */
export class WebhookTransportError extends VaultError {
  constructor(detail: string, options?: { cause?: unknown }) {
    super('notification_transport_failed', `notification not delivered: ${detail}`, options);
  }
}

export class UndiciNotificationSender implements NotificationSender {
  private readonly dispatcher: Dispatcher;

  constructor(
    private readonly signer: StandardWebhooksSigner,
    private readonly timeouts: WebhookTimeouts = DEFAULT_WEBHOOK_TIMEOUTS,
  ) {
    this.dispatcher = new Agent({ connect: { timeout: timeouts.connectMs } });
  }

  async send(message: { id: string; url: string; payload: string }): Promise<{ status: number }> {
    const url = new URL(message.url);
    let res: Dispatcher.ResponseData;
    try {
      // The timestamp is this attempt's (Standard Webhooks); the id is the message's.
      res = await this.dispatcher.request({
        origin: url.origin,
        path: url.pathname + url.search,
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': USER_AGENT,
          ...this.signer.headers(message.id, new Date(), message.payload),
        },
        body: message.payload,
        headersTimeout: this.timeouts.headersMs,
        bodyTimeout: this.timeouts.bodyMs,
        // undici's request() follows no redirects: a 3xx is the receiver's answer.
      });
    } catch (error) {
      const code = (error as { code?: unknown } | null)?.code;
      throw new WebhookTransportError(typeof code === 'string' ? code : 'network error', {
        cause: error,
      });
    }
    try {
      await res.body.dump({ limit: MAX_RESPONSE_BYTES });
    } catch {
      // The status is what counts; an unreadable or oversized body is dropped.
    }
    return { status: res.statusCode };
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}
