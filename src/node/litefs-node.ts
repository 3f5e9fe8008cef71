// One running node: the store (recovered at open), the FUSE mount serving it, the HTTP API, and the
// periodic jobs (LTX retention; saving page checksums as a base for crash recovery). Starts them in
// that order and stops them in reverse: no request reaches a closed store, and the store is closed
// (clean checksums saved) only once the kernel can no longer send anything.

import fs from "node:fs";

import { ApiServer } from "../api/server.js";
import type { Config } from "../config/config.js";
import { parseHostPort } from "../config/host-port.js";
import { FuseSession } from "../fuse/session.js";
import { DatabaseLockGuard } from "../mountfs/database-lock-guard.js";
import { LitefsFileSystem } from "../mountfs/litefs-file-system.js";
import { ROOT_NODE_ID } from "../mountfs/node-table.js";
import { Store } from "../store/store.js";
import type { StoreLogger } from "../store/store-logger.js";

export interface LitefsNodeOptions {
  readonly config: Config;
  readonly log: StoreLogger;
  /** Recompute every page checksum at open (`--verify`). */
  readonly verify?: boolean;
}

export class LitefsNode {
  readonly store: Store;
  readonly session: FuseSession;
  readonly api: ApiServer;
  readonly httpPort: number;
  readonly #log: StoreLogger;
  readonly #timers: NodeJS.Timeout[] = [];
  #stopping: Promise<void> | undefined;

  private constructor(
    store: Store,
    session: FuseSession,
    api: ApiServer,
    httpPort: number,
    log: StoreLogger,
  ) {
    this.store = store;
    this.session = session;
    this.api = api;
    this.httpPort = httpPort;
    this.#log = log;
  }

  static async start(opts: LitefsNodeOptions): Promise<LitefsNode> {
    const { config, log } = opts;
    const addr = parseHostPort(config.http.addr);
    if (!addr.ok) throw new Error(`http.addr: ${addr.reason}`);
    fs.mkdirSync(config.fuse.dir, { recursive: true });

    const store = Store.open({
      dataDir: config.data.dir,
      ltxFormat: config.data.compress ? "v3" : "v1",
      verify: opts.verify === true,
      log,
    });
    let session: FuseSession | undefined;
    let api: ApiServer | undefined;
    try {
      const fileSystem = new LitefsFileSystem({ store, log });
      session = await FuseSession.mount(fileSystem, {
        mountpoint: config.fuse.dir,
        fsName: "litefs",
        allowOther: config.fuse.allowOther,
        entryTimeoutMs: 1000,
        attrTimeoutMs: 1000,
        negativeTimeoutMs: 1000,
        onError: (err, where) =>
          log.error("FUSE request failed", {
            op: where.opcode,
            error: err instanceof Error ? err.message : String(err),
          }),
      });
      const mounted = session;
      const locks = new DatabaseLockGuard({
        lockTableOf: (db, kind) => fileSystem.lockTableOf(db, kind),
        afterExclusive: (db) => {
          for (const name of fileSystem.renewDatabaseFiles(db)) {
            mounted.invalidateEntry(ROOT_NODE_ID, name).catch(() => undefined);
          }
        },
      });
      api = new ApiServer({ store, locks, log });
      const bound = await api.listen(addr.host, addr.port);
      const node = new LitefsNode(store, mounted, api, bound.port, log);
      node.#startJobs(config);
      return node;
    } catch (err) {
      await api?.close().catch(() => undefined);
      await session?.unmount().catch(() => undefined);
      store.close();
      throw err;
    }
  }

  /** Stops everything, in reverse order of start; idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      for (const timer of this.#timers) clearInterval(timer);
      await this.api
        .close()
        .catch((err: unknown) => this.#log.error("closing the HTTP API", { error: String(err) }));
      await this.session.unmount();
      this.store.close();
      this.#log.info("stopped");
    })();
    return this.#stopping;
  }

  #startJobs(config: Config): void {
    const every = config.data.retentionMonitorIntervalMs;
    const tick = (): void => {
      try {
        this.store.enforceRetention(config.data.retentionMs);
        this.store.saveChecksums();
      } catch (err) {
        this.#log.error("periodic store job failed", { error: (err as Error).message });
      }
    };
    const timer = setInterval(tick, every);
    timer.unref();
    this.#timers.push(timer);
  }
}
