// A TCP proxy a test controls, to partition a client from a server: while "blackholed" it forwards
// nothing in either direction and keeps every connection open, so requests hang as they would behind a
// dead network link (no refused connection, no reset — the hardest case for a lease holder). It also
// notes the HTTP request lines the client sends (`requests`), to tell which calls a client made.
import * as net from "node:net";

export class TcpBlackholeProxy {
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  #blackholed = false;
  port = 0;
  /** "METHOD /path" of every HTTP request seen from a client, in order (a line split across two reads
   *  of the socket would be missed: requests here are small). */
  readonly requests: string[] = [];

  private constructor(targetPort: number) {
    this.#server = net.createServer((client) => {
      const upstream = net.connect(targetPort, "127.0.0.1");
      this.#track(client);
      this.#track(upstream);
      client.on("data", (data: Buffer) => {
        for (const m of data.toString("latin1").matchAll(/(?:^|\r\n)([A-Z]+) (\/\S*) HTTP\/1\.1\r\n/g)) {
          this.requests.push(`${m[1]} ${m[2]}`);
        }
        if (!this.#blackholed) upstream.write(data);
      });
      upstream.on("data", (data) => {
        if (!this.#blackholed) client.write(data);
      });
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    });
  }

  static async start(targetPort: number): Promise<TcpBlackholeProxy> {
    const proxy = new TcpBlackholeProxy(targetPort);
    await new Promise<void>((resolve) => proxy.#server.listen(0, "127.0.0.1", resolve));
    proxy.port = (proxy.#server.address() as net.AddressInfo).port;
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** From now on, drop every byte in both directions (connections stay open). */
  blackhole(): void {
    this.#blackholed = true;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #track(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.on("error", () => socket.destroy());
    socket.on("close", () => this.#sockets.delete(socket));
  }
}
