import { createServer, request, type Server } from 'node:http';
import { closeGracefully } from '../../src/http/shutdown';

describe('closeGracefully', () => {
  let server: Server;
  let port: number;
  let arrived: () => void;
  let release: () => void;
  let requestArrived: Promise<void>;

  beforeEach(async () => {
    requestArrived = new Promise((r) => (arrived = r));
    const released = new Promise<void>((r) => (release = r));
    server = createServer((req, res) => {
      if (req.url === '/slow') {
        arrived();
        void released.then(() => res.end('finished'));
      } else {
        res.end('fast');
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const a = server.address();
    port = typeof a === 'object' && a ? a.port : 0;
  });
  afterEach(() => {
    server.closeAllConnections();
    server.close();
  });

  function get(path: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('refuses new connections, finishes the request in flight, then resolves', async () => {
    const inFlight = get('/slow');
    await requestArrived;
    let closed = false;
    const closing = closeGracefully(server, 10_000).then(() => (closed = true));
    await expect(get('/fast')).rejects.toThrow(/ECONNREFUSED/);
    expect(closed).toBe(false);
    release();
    expect(await inFlight).toEqual({ status: 200, body: 'finished' });
    await closing;
    expect(closed).toBe(true);
  });

  it('cuts what is still running once the timeout passes', async () => {
    const inFlight = get('/slow');
    await requestArrived;
    let timedOut = false;
    await closeGracefully(server, 50, () => (timedOut = true));
    expect(timedOut).toBe(true);
    await expect(inFlight).rejects.toThrow(/socket hang up|ECONNRESET/);
    release();
  });
});
