// A TCP proxy on loopback that a test controls, to put network faults between two processes without
// network namespaces (and finer than a namespace can: per connection, per direction, per byte).
//
//   forward      bytes flow both ways, each chunk `delay(ms)` late (0 by default), in order.
//   pause()      a frozen peer or a silent partition that later heals: nothing is delivered and
//                nothing more is read (senders feel back-pressure), connections stay open, new ones
//                are accepted and held; heal() delivers everything held, in order, FINs included.
//   drop()       a partition that peers notice: every connection is reset (RST to both ends), and a
//                new connection is accepted by the kernel and reset at once. The port stays ours, so
//                heal() needs no re-listen and nobody else can take the port meanwhile.
//   heal()       back to forward with no delay.
//
// Every fault can be bounded (`forMs`: it heals by itself), and so is the proxy: it closes itself
// after `lifetimeMs` (default 15 min), and close() ends every connection. It listens on loopback only.
import * as net from "node:net";
import { DelayedPipe, type DirectionCounters } from "./fault-proxy-pipe.js";

export type { DirectionCounters } from "./fault-proxy-pipe.js";

/** Where the proxy forwards to: a TCP address or a Unix socket path. */
export type FaultProxyTarget = { host: string; port: number } | { path: string };

export interface FaultProxyOptions {
  target: FaultProxyTarget;
  /** Names the proxy in errors. */
  label?: string;
  /** A loopback address (127.0.0.0/8 or ::1); default 127.0.0.1. */
  listenHost?: string;
  /** Default 0: a free port. */
  listenPort?: number;
  /** Default 5 000 ms; a connection whose target does not answer in time is reset. */
  connectTimeoutMs?: number;
  /** Default 15 min; the proxy closes itself then, so a forgotten one cannot outlive its test run. */
  lifetimeMs?: number;
  /** Default 512; connections beyond it are reset. */
  connectionsMax?: number;
  /** Bytes read ahead per direction of one connection before reading stops; default 1 MiB. */
  queuedBytesMax?: number;
}

export type FaultProxyMode = "forward" | "paused" | "dropped";

export interface FaultProxyCounters {
  clientToTarget: DirectionCounters;
  targetToClient: DirectionCounters;
  /** Connections accepted and forwarded (or held). */
  accepted: number;
  /** Connections reset by drop(), by a refusal while dropped or over the limit, or by a target failure. */
  reset: number;
  /** Connections open now. */
  open: number;
}

export interface FaultDuration {
  /** Heal by itself after this long (at most 10 min). */
  forMs?: number;
}

const FAULT_MS_MAX = 10 * 60_000;
const DELAY_MS_MAX = 60_000;

export class FaultProxyError extends Error {
  override readonly name = "FaultProxyError";
  constructor(
    readonly code: "FAULT_PROXY_LISTEN" | "FAULT_PROXY_ARGUMENT" | "FAULT_PROXY_CLOSED",
    message: string,
  ) {
    super(message);
  }
}

export class FaultProxy {
  readonly label: string;
  readonly target: FaultProxyTarget;
  readonly #server: net.Server;
  readonly #connections = new Set<ProxiedConnection>();
  readonly #options: Required<Omit<FaultProxyOptions, "target" | "label" | "listenPort">>;
  readonly #counters = {
    clientToTarget: { receivedBytes: 0, forwardedBytes: 0 },
    targetToClient: { receivedBytes: 0, forwardedBytes: 0 },
    accepted: 0,
    reset: 0,
  };
  #mode: FaultProxyMode = "forward";
  #delayMs = 0;
  #healTimer: NodeJS.Timeout | undefined;
  #lifetimeTimer: NodeJS.Timeout | undefined;
  #closed: Promise<void> | undefined;
  #port = 0;

  private constructor(options: FaultProxyOptions) {
    this.label = options.label ?? "fault proxy";
    this.target = options.target;
    this.#options = {
      listenHost: options.listenHost ?? "127.0.0.1",
      connectTimeoutMs: options.connectTimeoutMs ?? 5_000,
      lifetimeMs: options.lifetimeMs ?? 15 * 60_000,
      connectionsMax: options.connectionsMax ?? 512,
      queuedBytesMax: options.queuedBytesMax ?? 1 << 20,
    };
    if (!isLoopback(this.#options.listenHost)) {
      throw new FaultProxyError(
        "FAULT_PROXY_ARGUMENT",
        `${this.label}: listenHost ${this.#options.listenHost} is not a loopback address`,
      );
    }
    this.#server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) =>
      this.#accept(client),
    );
  }

  /** Starts listening; resolves once the port is known. */
  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    const proxy = new FaultProxy(options);
    await new Promise<void>((resolve, reject) => {
      proxy.#server.once("error", (err) =>
        reject(new FaultProxyError("FAULT_PROXY_LISTEN", `${proxy.label}: cannot listen: ${err.message}`)),
      );
      proxy.#server.listen(options.listenPort ?? 0, proxy.#options.listenHost, resolve);
    });
    proxy.#port = (proxy.#server.address() as net.AddressInfo).port;
    proxy.#lifetimeTimer = setTimeout(() => void proxy.close(), proxy.#options.lifetimeMs);
    proxy.#lifetimeTimer.unref();
    return proxy;
  }

  get host(): string {
    return this.#options.listenHost;
  }

  get port(): number {
    return this.#port;
  }

  /** "host:port" to hand to a client. */
  get address(): string {
    return this.host.includes(":") ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`;
  }

  get mode(): FaultProxyMode {
    return this.#mode;
  }

  get delayMs(): number {
    return this.#delayMs;
  }

  /** Holds every byte and FIN in both directions; connections stay open. */
  pause(duration: FaultDuration = {}): void {
    this.#setMode("paused", duration);
  }

  /** Resets every connection and resets new ones at once. */
  drop(duration: FaultDuration = {}): void {
    this.#setMode("dropped", duration);
  }

  /**
   * Delivers every chunk `ms` after it was read, in both directions, from now on (chunks already
   * queued keep their time). 0 removes the delay. Combines with pause().
   */
  delay(ms: number, duration: FaultDuration = {}): void {
    if (!(Number.isFinite(ms) && ms >= 0 && ms <= DELAY_MS_MAX)) {
      throw new FaultProxyError(
        "FAULT_PROXY_ARGUMENT",
        `${this.label}: delay ${ms} ms not in [0, ${DELAY_MS_MAX}]`,
      );
    }
    this.#assertOpen();
    this.#delayMs = ms;
    this.#scheduleHeal(duration);
  }

  /** Back to forwarding without delay; held bytes are delivered. */
  heal(): void {
    this.#clearHealTimer();
    this.#delayMs = 0;
    if (this.#mode === "forward") return;
    this.#mode = "forward";
    for (const connection of this.#connections) connection.thaw();
  }

  counters(): FaultProxyCounters {
    return {
      clientToTarget: { ...this.#counters.clientToTarget },
      targetToClient: { ...this.#counters.targetToClient },
      accepted: this.#counters.accepted,
      reset: this.#counters.reset,
      open: this.#connections.size,
    };
  }

  /** Stops listening and resets every connection. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      this.#clearHealTimer();
      clearTimeout(this.#lifetimeTimer);
      for (const connection of this.#connections) connection.reset();
      this.#server.close(() => resolve());
    });
    return this.#closed;
  }

  #setMode(mode: "paused" | "dropped", duration: FaultDuration): void {
    this.#assertOpen();
    this.#mode = mode;
    for (const connection of this.#connections) {
      if (mode === "paused") connection.freeze();
      else this.#reset(connection);
    }
    this.#scheduleHeal(duration);
  }

  #scheduleHeal(duration: FaultDuration): void {
    this.#clearHealTimer();
    if (duration.forMs === undefined) return;
    if (!(Number.isFinite(duration.forMs) && duration.forMs >= 0 && duration.forMs <= FAULT_MS_MAX)) {
      throw new FaultProxyError(
        "FAULT_PROXY_ARGUMENT",
        `${this.label}: forMs ${duration.forMs} not in [0, ${FAULT_MS_MAX}]`,
      );
    }
    this.#healTimer = setTimeout(() => this.heal(), duration.forMs);
    this.#healTimer.unref();
  }

  #clearHealTimer(): void {
    if (this.#healTimer !== undefined) clearTimeout(this.#healTimer);
    this.#healTimer = undefined;
  }

  #assertOpen(): void {
    if (this.#closed !== undefined)
      throw new FaultProxyError("FAULT_PROXY_CLOSED", `${this.label} is closed`);
  }

  #accept(client: net.Socket): void {
    if (
      this.#mode === "dropped" ||
      this.#closed !== undefined ||
      this.#connections.size >= this.#options.connectionsMax
    ) {
      client.on("error", () => {});
      client.resetAndDestroy();
      this.#counters.reset++;
      return;
    }
    this.#counters.accepted++;
    const connection = new ProxiedConnection(client, {
      target: this.target,
      connectTimeoutMs: this.#options.connectTimeoutMs,
      queuedBytesMax: this.#options.queuedBytesMax,
      frozen: this.#mode === "paused",
      delayMs: () => this.#delayMs,
      clientToTarget: this.#counters.clientToTarget,
      targetToClient: this.#counters.targetToClient,
      onFailed: () => this.#counters.reset++,
      onClosed: () => this.#connections.delete(connection),
    });
    this.#connections.add(connection);
  }

  #reset(connection: ProxiedConnection): void {
    this.#counters.reset++;
    connection.reset();
  }
}

interface ProxiedConnectionOptions {
  target: FaultProxyTarget;
  connectTimeoutMs: number;
  queuedBytesMax: number;
  frozen: boolean;
  delayMs: () => number;
  clientToTarget: DirectionCounters;
  targetToClient: DirectionCounters;
  /** The connection ended by a reset (the target refused, timed out, or one side reset). */
  onFailed: () => void;
  /** Both sockets are closed. */
  onClosed: () => void;
}

/** One client connection and its connection to the target, joined by two DelayedPipes. */
class ProxiedConnection {
  readonly #client: net.Socket;
  readonly #upstream: net.Socket;
  readonly #pipes: DelayedPipe[];
  readonly #upstreamIsTcp: boolean;
  #closedSockets = 0;
  #failed = false;

  constructor(client: net.Socket, options: ProxiedConnectionOptions) {
    this.#client = client;
    this.#upstream = net.connect({ ...options.target, allowHalfOpen: true });
    const connectTimer = setTimeout(() => this.#fail(options), options.connectTimeoutMs);
    this.#upstream.once("connect", () => clearTimeout(connectTimer));
    const pipe = (source: net.Socket, sink: net.Socket, counters: DirectionCounters): DelayedPipe =>
      new DelayedPipe({
        source,
        sink,
        counters,
        queuedBytesMax: options.queuedBytesMax,
        delayMs: options.delayMs,
        frozen: options.frozen,
      });
    this.#pipes = [
      pipe(client, this.#upstream, options.clientToTarget),
      pipe(this.#upstream, client, options.targetToClient),
    ];
    if (!options.frozen) client.resume();
    this.#upstreamIsTcp = !("path" in options.target);
    for (const socket of [client, this.#upstream]) {
      // An error on either side (refused, reset, timed out) resets the other: a proxy that kept one
      // half alive would tell its peer something the real network never would. A plain close needs
      // nothing: the FIN it sent is queued toward the other side and ends it when delivered.
      socket.on("error", () => this.#fail(options));
      socket.once("close", (hadError) => {
        if (hadError) this.#fail(options);
        if (++this.#closedSockets === 2) {
          clearTimeout(connectTimer);
          options.onClosed();
        }
      });
    }
  }

  freeze(): void {
    for (const pipe of this.#pipes) pipe.freeze();
  }

  thaw(): void {
    for (const pipe of this.#pipes) pipe.thaw();
  }

  /** RST to both ends, now. */
  reset(): void {
    for (const pipe of this.#pipes) pipe.stop();
    resetSocket(this.#client, true);
    resetSocket(this.#upstream, this.#upstreamIsTcp);
  }

  #fail(options: ProxiedConnectionOptions): void {
    if (this.#failed) return;
    this.#failed = true;
    options.onFailed();
    this.reset();
  }
}

/**
 * RST where the socket is a connected TCP socket whose write side is still open; otherwise a plain
 * close (a Unix socket, one still connecting, or one we already sent our FIN on).
 *
 * Why not reset after end(): libuv refuses uv_tcp_close_reset() with EINVAL while the shutdown that
 * end() started is still pending, and Node 20 then marks the handle closing without ever closing it.
 * The socket emits 'error' (EINVAL, reset) but never 'close', and at exit the process spins for ever
 * in Environment::CleanupHandles waiting for that handle (seen as a test file that passed but never
 * exited, at full CPU). Our FIN is on its way already, so a plain close ends the connection as well.
 */
export function resetSocket(socket: net.Socket, isTcp: boolean): void {
  if (socket.destroyed) return;
  if (isTcp && !socket.connecting && !socket.writableEnded) socket.resetAndDestroy();
  else socket.destroy();
}

function isLoopback(host: string): boolean {
  return host === "::1" || host === "localhost" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
