import { Router } from 'express';
import { z } from 'zod';
import { type NotificationAdmin, toNotificationView } from '../core/notifications/outbox';
import { encodeCursor, positionOf } from '../core/authentication/service';
import { NOTIFICATION_STATES } from '../core/ports';
import { pageQuery } from './authentications';
import { caller } from './enrollments';
import { type RouteAuth, type RouteRegistry, declaredRouter } from './route';

export interface NotificationRouteDeps {
  notifications: NotificationAdmin;
  auth: RouteAuth;
  routes: RouteRegistry;
}

const iso = z.iso.datetime();

const notificationViewSchema = z
  .object({
    id: z.string().describe('the webhook-id, the same on every attempt'),
    type: z.string(),
    authenticationReference: z.string().nullable(),
    url: z.string(),
    state: z.enum(NOTIFICATION_STATES),
    attempts: z.number().int(),
    lastStatus: z.number().int().optional(),
    lastError: z.string().optional(),
    createdAt: iso,
    deliverUntil: iso,
    nextAttemptAt: iso.optional(),
    deliveredAt: iso.optional(),
  })
  .meta({ id: 'Notification' });

/** The notification outbox, for admins: what failed, and sending it again. */
export function notificationRoutes(deps: NotificationRouteDeps): Router {
  const { router, route } = declaredRouter(deps);
  const tags = ['notifications'];

  route(
    {
      method: 'get',
      path: '/v1/notifications',
      summary: 'Notifications to calling services, oldest first (e.g. ?state=FAILED)',
      tags,
      roles: ['admin'],
      query: z.strictObject({ state: z.enum(NOTIFICATION_STATES).optional(), ...pageQuery }),
      responses: {
        200: {
          description: 'a page; `nextCursor` while more may follow',
          schema: z.object({
            notifications: z.array(notificationViewSchema),
            nextCursor: z.string().optional(),
          }),
        },
      },
    },
    async ({ query }, _req, res) => {
      const after = positionOf(query.cursor);
      const rows = await deps.notifications.list({
        ...(query.state ? { state: query.state } : {}),
        limit: query.limit,
        ...(after ? { after } : {}),
      });
      const last = rows.at(-1);
      res.json({
        notifications: rows.map(toNotificationView),
        ...(last && rows.length === query.limit
          ? { nextCursor: encodeCursor({ createdAt: last.createdAt, key: last.id }) }
          : {}),
      });
    },
  );

  route(
    {
      method: 'post',
      path: '/v1/notifications/{id}/redeliver',
      summary: 'Send a FAILED (or DELIVERED) notification again, with the same webhook-id',
      tags,
      roles: ['admin'],
      params: z.strictObject({ id: z.string().regex(/^msg_[0-9a-f]{32}$/) }),
      responses: {
        200: { description: 'PENDING again, for another 24 hours', schema: notificationViewSchema },
        404: { description: 'unknown id' },
        409: { description: 'still PENDING' },
      },
    },
    async ({ params }, _req, res) => {
      res.json(await deps.notifications.redeliver(params.id, caller(res)));
    },
  );
  return router;
}
