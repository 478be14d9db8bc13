import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * Servers that misbehave the way a stuck dependency does, over real TCP on loopback: the
 * timeouts under test are the production code's own, never simulated.
 */
export interface StallingServer {
  port: number;
  /** Connections accepted so far (proof the client really dialled it). */
  connections(): number;
  close(): Promise<void>;
}

function listen(server: Server, sockets: Set<Socket>): Promise<StallingServer> {
  let accepted = 0;
  server.on('connection', (socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      resolve({
        port: typeof address === 'object' && address ? address.port : 0,
        connections: () => accepted,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

/** Accepts TCP connections, reads what is sent, and never answers a byte. */
export function startSilentServer(): Promise<StallingServer> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => socket.resume());
  return listen(server, sockets);
}

/**
 * Answers every HTTP request with a 200 status line and headers announcing a body, sends
 * `bodyPrefix`, then stalls for ever: headers arrive, the body never completes.
 */
export function startHeadersThenStallServer(bodyPrefix = '<'): Promise<StallingServer> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    let answered = false;
    socket.on('data', () => {
      if (answered) return;
      answered = true;
      socket.write(
        'HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: 100000\r\n' +
          `x-amz-request-id: stall\r\n\r\n${bodyPrefix}`,
      );
    });
  });
  return listen(server, sockets);
}

export interface FreezableProxy extends StallingServer {
  /** Existing connections stop forwarding (and stay open); new ones are blackholed. */
  freeze(): void;
  /** New connections are forwarded again; the frozen ones stay dead, as after a partition. */
  thaw(): void;
}

/** A TCP proxy to `target` that can stop answering without closing anything. */
export async function startFreezableProxy(target: {
  host: string;
  port: number;
}): Promise<FreezableProxy> {
  const sockets = new Set<Socket>();
  const pairs: Array<[Socket, Socket]> = [];
  let frozen = false;
  const server = createServer((client) => {
    if (frozen) {
      client.resume();
      return;
    }
    const upstream = connect(target.port, target.host);
    sockets.add(upstream);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    upstream.on('close', () => sockets.delete(upstream));
    client.pipe(upstream);
    upstream.pipe(client);
    pairs.push([client, upstream]);
  });
  const base = await listen(server, sockets);
  return {
    ...base,
    freeze() {
      frozen = true;
      for (const [client, upstream] of pairs.splice(0)) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        // Swallow whatever arrives from now on; never forward, never close.
        client.removeAllListeners('data');
        upstream.removeAllListeners('data');
        client.on('data', () => undefined);
        upstream.on('data', () => undefined);
      }
    },
    thaw() {
      frozen = false;
    },
  };
}
