// The metric set of one LiteFS node, on a registry passed in. LiteFS's own metric names are kept where
// they exist (dashboards built for LiteFS keep working): `litefs_db_count`, `litefs_is_primary`,
// `litefs_subscriber_count`, `litefs_lag_seconds` and, per database (label `db`), `litefs_db_txid`,
// `litefs_db_{database,journal,wal}_write_count`, `litefs_db_commit_count`, `litefs_db_ltx_count`,
// `litefs_db_ltx_bytes`, `litefs_db_lag_seconds`. Ours are added beside them: commit latency, LTX files
// applied, quarantined transactions, and the stream, lease and proxy sets (`stream`, `lease`, `proxy`).
//
// Callers use typed methods and never spell a label; per-database series are cached so that the hot
// calls (a write through the mount, a commit) cost a map lookup and an addition.
//
// Meaning of the LTX gauges: the files kept on disk for the database, as last counted
// (`setLtxFiles`, at start or after files were moved) plus those written or applied since, minus those
// retention removed (`ltxRetired`).

import type { Counter, CounterVec } from "./counter.js";
import type { Gauge, GaugeVec } from "./gauge.js";
import type { Histogram, HistogramVec } from "./histogram.js";
import { LeaseMetrics } from "./lease-metrics.js";
import type { MetricFamily } from "./metric-family.js";
import { ProxyMetricSet } from "./proxy-metric-set.js";
import type { Registry } from "./registry.js";
import { StreamMetrics } from "./stream-metrics.js";

/** Upper bounds (seconds) of the commit latency buckets: 0.25 ms … 5 s. */
export const COMMIT_SECONDS_BUCKETS: readonly number[] = Object.freeze([
  0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
]);

export interface LitefsMetricsOptions {
  /** Commit latency bucket bounds in seconds (default COMMIT_SECONDS_BUCKETS). */
  readonly commitBuckets?: readonly number[];
}

/** The series of one database, looked up once per database. */
interface DatabaseSeries {
  readonly txid: Gauge;
  readonly databaseWrites: Counter;
  readonly journalWrites: Counter;
  readonly walWrites: Counter;
  readonly commits: Counter;
  readonly ltxCount: Gauge;
  readonly ltxBytes: Gauge;
  readonly lagSeconds: Gauge;
  readonly commitSeconds: Histogram;
  readonly ltxApplied: Counter;
}

export class LitefsMetrics {
  readonly registry: Registry;
  readonly stream: StreamMetrics;
  readonly lease: LeaseMetrics;
  /** Satisfies the proxy's `ProxyMetrics` seam. */
  readonly proxy: ProxyMetricSet;

  readonly #dbCount: Gauge;
  readonly #isPrimary: Gauge;
  #readLagSeconds: () => number = () => 0;
  readonly #txid: GaugeVec<"db">;
  readonly #databaseWrites: CounterVec<"db">;
  readonly #journalWrites: CounterVec<"db">;
  readonly #walWrites: CounterVec<"db">;
  readonly #commits: CounterVec<"db">;
  readonly #ltxCount: GaugeVec<"db">;
  readonly #ltxBytes: GaugeVec<"db">;
  readonly #dbLagSeconds: GaugeVec<"db">;
  readonly #commitSeconds: HistogramVec<"db">;
  readonly #ltxApplied: CounterVec<"db">;
  readonly #quarantines: CounterVec<"db">;
  readonly #quarantinedTxs: CounterVec<"db">;
  readonly #byDb = new Map<string, DatabaseSeries>();

  constructor(registry: Registry, opts: LitefsMetricsOptions = {}) {
    this.registry = registry;
    this.#dbCount = registry.gauge({ name: "litefs_db_count", help: "Databases this node manages." });
    this.#isPrimary = registry.gauge({
      name: "litefs_is_primary",
      help: "1 while this node is the primary, else 0.",
    });
    registry.gauge({
      name: "litefs_lag_seconds",
      help: "Seconds since this replica last heard from the primary; 0 on the primary.",
      read: () => this.#readLagSeconds(),
    });
    const perDb = (name: string, help: string): { name: string; help: string; labelNames: ["db"] } => ({
      name,
      help,
      labelNames: ["db"],
    });
    this.#txid = registry.gaugeVec(
      perDb("litefs_db_txid", "Last transaction ID of the database (exact below 2^53)."),
    );
    this.#databaseWrites = registry.counterVec(
      perDb("litefs_db_database_write_count", "Writes to the database file through the mount."),
    );
    this.#journalWrites = registry.counterVec(
      perDb("litefs_db_journal_write_count", "Writes to the rollback journal through the mount."),
    );
    this.#walWrites = registry.counterVec(
      perDb("litefs_db_wal_write_count", "Writes to the WAL file through the mount."),
    );
    this.#commits = registry.counterVec(
      perDb("litefs_db_commit_count", "Transactions committed on this node and captured as LTX files."),
    );
    this.#ltxCount = registry.gaugeVec(perDb("litefs_db_ltx_count", "LTX files kept on disk."));
    this.#ltxBytes = registry.gaugeVec(perDb("litefs_db_ltx_bytes", "Bytes of the LTX files kept on disk."));
    this.#dbLagSeconds = registry.gaugeVec(
      perDb(
        "litefs_db_lag_seconds",
        "Seconds from the creation of the last LTX file applied here to its application; 0 after a local commit.",
      ),
    );
    this.#commitSeconds = registry.histogramVec({
      ...perDb(
        "litefs_db_commit_duration_seconds",
        "Seconds from detecting a commit to its LTX file being durable.",
      ),
      buckets: opts.commitBuckets ?? COMMIT_SECONDS_BUCKETS,
    });
    this.#ltxApplied = registry.counterVec(
      perDb("litefs_db_ltx_applied_total", "LTX files from the primary applied to the database."),
    );
    this.#quarantines = registry.counterVec(
      perDb("litefs_db_quarantines_total", "Times diverged history of the database was moved to quarantine."),
    );
    this.#quarantinedTxs = registry.counterVec(
      perDb(
        "litefs_db_quarantined_transactions_total",
        "Transactions of diverged history kept in quarantine instead of being dropped.",
      ),
    );
    this.stream = new StreamMetrics(registry);
    this.lease = new LeaseMetrics(registry);
    this.proxy = new ProxyMetricSet(registry);
  }

  setDatabaseCount(count: number): void {
    this.#dbCount.set(count);
  }

  setPrimary(isPrimary: boolean): void {
    this.#isPrimary.set(isPrimary ? 1 : 0);
  }

  /** Where `litefs_lag_seconds` comes from: read at each scrape (lag grows while nothing arrives). */
  setLagSource(readSeconds: () => number): void {
    this.#readLagSeconds = readSeconds;
  }

  databaseWrite(db: string): void {
    this.#series(db).databaseWrites.inc();
  }

  journalWrite(db: string): void {
    this.#series(db).journalWrites.inc();
  }

  walWrite(db: string): void {
    this.#series(db).walWrites.inc();
  }

  /** A transaction committed here became an LTX file of `ltxBytes` bytes, `ms` after it was detected. */
  commit(db: string, ltxBytes: number, ms: number): void {
    const s = this.#series(db);
    s.commits.inc();
    s.ltxCount.inc();
    s.ltxBytes.inc(ltxBytes);
    s.lagSeconds.set(0);
    s.commitSeconds.observe(ms / 1000);
  }

  /** The database's position moved to `txid` (by a commit, an apply, an import or recovery). */
  setTxid(db: string, txid: bigint): void {
    this.#series(db).txid.set(Number(txid));
  }

  /** An LTX file of `ltxBytes` bytes from the primary was applied, `lagMs` after the primary wrote it. */
  ltxApplied(db: string, ltxBytes: number, lagMs: number): void {
    const s = this.#series(db);
    s.ltxApplied.inc();
    s.ltxCount.inc();
    s.ltxBytes.inc(ltxBytes);
    s.lagSeconds.set(Math.max(0, lagMs) / 1000);
  }

  /** Retention removed `files` LTX files of `db`, `bytes` in all. */
  ltxRetired(db: string, files: number, bytes: number): void {
    const s = this.#series(db);
    s.ltxCount.dec(files);
    s.ltxBytes.dec(bytes);
  }

  /** The LTX files on disk were counted (at start, after files were moved): replaces the running totals. */
  setLtxFiles(db: string, count: number, bytes: number): void {
    const s = this.#series(db);
    s.ltxCount.set(count);
    s.ltxBytes.set(bytes);
  }

  /** `txCount` transactions of diverged history were moved to quarantine. */
  quarantined(db: string, txCount: number): void {
    this.#quarantines.inc({ db });
    this.#quarantinedTxs.inc({ db }, txCount);
  }

  /** Forgets every series of a database that is gone. */
  dropDatabase(db: string): void {
    this.#byDb.delete(db);
    const families: MetricFamily<"db", unknown>[] = [
      this.#txid,
      this.#databaseWrites,
      this.#journalWrites,
      this.#walWrites,
      this.#commits,
      this.#ltxCount,
      this.#ltxBytes,
      this.#dbLagSeconds,
      this.#commitSeconds,
      this.#ltxApplied,
      this.#quarantines,
      this.#quarantinedTxs,
    ];
    for (const family of families) family.remove({ db });
    this.stream.dropDatabase(db);
  }

  #series(db: string): DatabaseSeries {
    let s = this.#byDb.get(db);
    if (s === undefined) {
      const labels = { db };
      s = {
        txid: this.#txid.labels(labels),
        databaseWrites: this.#databaseWrites.labels(labels),
        journalWrites: this.#journalWrites.labels(labels),
        walWrites: this.#walWrites.labels(labels),
        commits: this.#commits.labels(labels),
        ltxCount: this.#ltxCount.labels(labels),
        ltxBytes: this.#ltxBytes.labels(labels),
        lagSeconds: this.#dbLagSeconds.labels(labels),
        commitSeconds: this.#commitSeconds.labels(labels),
        ltxApplied: this.#ltxApplied.labels(labels),
      };
      this.#byDb.set(db, s);
    }
    return s;
  }
}
