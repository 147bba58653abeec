import type { Server as HttpServer } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';

/** Binds a server (TCP or HTTP) to `host:port`; resolves with the bound port (real when 0 was asked). */
export async function listenOn(server: NetServer | HttpServer, endpoint: { host: string; port: number }): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(endpoint.port, endpoint.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo | string | null;
  return typeof address === 'object' && address ? address.port : endpoint.port;
}
