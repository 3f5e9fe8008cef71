// A write load that follows the primary around a cluster: an AckWriter (test/support/ack-writer.ts,
// better-sqlite3 in a child process) on the primary's mount; when it dies — its node was killed, or
// turned replica and refused the transaction — the next one starts on whichever node is primary then.
// Every writer generation gets its own batch-id range, so ids stay unique even when a batch committed
// on a deposed primary (but never acknowledged) reached the new one.
//
// Every acknowledgement is kept with its wall-clock time, so a test can measure the gap around a
// failover (the last ack before, the first after) and check afterwards which acks survived.
import { AckWriter } from "../support/ack-writer.js";
import type { LeasedCluster, LeasedNode } from "../support/leased-cluster.js";

/** Batch ids of generation g start at g × GENERATION_STRIDE + 1. */
export const GENERATION_STRIDE = 1_000_000;

export interface WriterGeneration {
  readonly node: string;
  readonly firstBatchId: number;
  readonly startedAt: number;
  acks: number;
  /** The last lines the writer printed on stderr (why it stopped), once it has stopped. */
  error: string;
}

export interface Ack {
  readonly batchId: number;
  /** Date.now() when the ack line arrived. */
  readonly at: number;
  readonly node: string;
}

export class FollowingWriter {
  readonly acks: Ack[] = [];
  readonly generations: WriterGeneration[] = [];
  readonly #cluster: LeasedCluster;
  readonly #db: string;
  readonly #seed: number;
  #current: AckWriter | undefined;
  #stopped = false;
  readonly #loop: Promise<void>;

  private constructor(cluster: LeasedCluster, db: string, seed: number) {
    this.#cluster = cluster;
    this.#db = db;
    this.#seed = seed;
    this.#loop = this.#run();
  }

  /** Starts writing at once on the current primary; the ack-writer schema must exist already. */
  static start(cluster: LeasedCluster, db: string, seed: number): FollowingWriter {
    return new FollowingWriter(cluster, db, seed);
  }

  /** Acks whose time is at or after `t` (Date.now() ms). */
  acksSince(t: number): Ack[] {
    return this.acks.filter((a) => a.at >= t);
  }

  /** Resolves once an ack arrives at or after `t` from a node other than `notNode`; null on timeout. */
  async waitForAckAfter(t: number, timeoutMs: number, notNode?: string): Promise<Ack | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ack = this.acks.find((a) => a.at >= t && a.node !== notNode);
      if (ack !== undefined) return ack;
      if (Date.now() > deadline) return null;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  /** Stops the current writer (SIGKILL after a short grace) and the loop. */
  async stop(): Promise<void> {
    this.#stopped = true;
    const current = this.#current;
    if (current !== undefined) {
      current.process.killGroup();
      await current.process.exit;
    }
    await this.#loop;
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      let primary: LeasedNode;
      try {
        primary = await this.#cluster.waitForPrimary({ timeoutMs: 5_000 });
      } catch {
        continue; // none yet: keep asking until stopped
      }
      if (this.#stopped) break;
      const generation: WriterGeneration = {
        node: primary.name,
        firstBatchId: (this.generations.length + 1) * GENERATION_STRIDE + 1,
        startedAt: Date.now(),
        acks: 0,
        error: "",
      };
      this.generations.push(generation);
      let writer: AckWriter;
      try {
        writer = await AckWriter.start({
          client: "better-sqlite3",
          dbPath: primary.node.dbPath(this.#db),
          journalMode: "DELETE",
          firstBatchId: generation.firstBatchId,
          seed: this.#seed + this.generations.length,
          payloadBytesMax: 1500,
        });
      } catch (err) {
        generation.error = (err as Error).message;
        continue;
      }
      this.#current = writer;
      let seen = 0;
      writer.process.child.stdout?.on("data", () => {
        // AckWriter's own listener ran first (it registered first), so `acked` is up to date here.
        const at = Date.now();
        for (; seen < writer.acked.length; seen++) {
          this.acks.push({ batchId: writer.acked[seen], at, node: primary.name });
          generation.acks++;
        }
      });
      await writer.process.exit;
      const lines = writer.process.stderr.trim().split("\n");
      generation.error = lines.find((l) => /Error|SQLITE_/.test(l))?.trim() ?? lines.slice(-3).join(" ");
      this.#current = undefined;
      if (!this.#stopped) await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/** One line per writer generation: where it wrote, how many acks, and why it stopped. */
export function describeGenerations(writer: FollowingWriter): string {
  return writer.generations
    .map(
      (g, i) =>
        `writer ${i + 1} on ${g.node} from ${new Date(g.startedAt).toISOString()}: ${g.acks} acks` +
        (g.error === "" ? "" : `; stopped: ${g.error.replace(/\s+/g, " ").slice(0, 300)}`),
    )
    .join("\n");
}
