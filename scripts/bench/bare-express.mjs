// The baseline of the callback scenarios: a bare Express 5 app that parses the same
// urlencoded body as the vault's webhook (same parser options) and answers 200.
import express from 'express';

const app = express();
app.get('/healthz', (_req, res) => res.json({ ok: true }));
app.post(
  '/webhooks/jumio',
  express.urlencoded({ extended: false, limit: '1mb', parameterLimit: 5000, type: () => true }),
  (req, res) => res.json({ status: 'received', fields: Object.keys(req.body ?? {}).length }),
);
const server = app.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
