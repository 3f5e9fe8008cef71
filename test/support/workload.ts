// A seeded random SQLite workload and the model of what it leaves behind. The generator emits SQL
// transactions — inserts, updates, deletes, schema changes (new tables, columns, indexes, drops),
// VACUUM, checkpoints, and transactions that roll back — while applying the same operations to a plain
// in-memory model, so that the rows SQLite returns afterwards can be compared with what they must be.
import { Prng } from "./prng.js";
import type { SqlRow } from "./sql-clients.js";

export type JournalMode = "DELETE" | "TRUNCATE" | "PERSIST" | "WAL";
export const JOURNAL_MODES: readonly JournalMode[] = ["DELETE", "TRUNCATE", "PERSIST", "WAL"];

export interface WorkloadOptions {
  seed: number;
  journalMode: JournalMode;
  pageSize: number;
  /** How many scripts (transactions, VACUUMs, checkpoints) to generate. */
  scripts: number;
  /**
   * A 10-page cache, so that large transactions spill dirty pages into the database (rollback modes) or
   * the WAL before COMMIT. Default: decided by the seed.
   */
  smallCache?: boolean;
}

export interface WorkloadCheck {
  /** What is checked, for the assertion message. */
  name: string;
  sql: string;
  expected: SqlRow[];
}

export interface Workload {
  options: Required<WorkloadOptions>;
  /** Per-connection settings to run first on every connection (page size, journal mode, cache). */
  pragmas: string[];
  /** The transactions, in order; each is self-contained (BEGIN…COMMIT/ROLLBACK, VACUUM, a checkpoint). */
  scripts: string[];
  /**
   * How many LTX files the mount must write: one per committed transaction, plus the page-1 write with
   * which `journal_mode=WAL` turns a new database into WAL mode…
   */
  txCountMin: number;
  /**
   * …plus at most one per rolled-back transaction that spilled pages into the database file (the small
   * cache, or just a big transaction: the default 2 MB cache is 31 pages of 64 KiB). SQLite does not
   * journal freelist pages it reuses, so after such a ROLLBACK the database file still differs in free
   * pages' bytes, and a replica must receive those bytes to stay byte-identical. Rollback journal modes
   * only: in WAL mode spilled frames never commit.
   */
  txCountMax: number;
  /** Queries whose rows must equal `expected` afterwards (rows, schema, integrity, settings). */
  checks: WorkloadCheck[];
}

interface ColumnModel {
  name: string;
  defaultValue: number;
}

interface TableModel {
  name: string;
  columns: ColumnModel[];
  rows: Map<number, SqlRow>;
  indexes: string[];
}

interface Model {
  tables: TableModel[];
  nextId: number;
  nextName: number;
}

const TABLES_MAX = 4;
const EXTRA_COLUMNS_MAX = 4;
const TEXT_ALPHABET = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ0123456789'.,-éü€";

export function generateWorkload(options: WorkloadOptions): Workload {
  const prng = new Prng(options.seed);
  const resolved: Required<WorkloadOptions> = { smallCache: prng.chance(0.3), ...options };
  const pragmas = [`PRAGMA page_size=${resolved.pageSize}`, `PRAGMA journal_mode=${resolved.journalMode}`];
  if (resolved.smallCache) pragmas.push("PRAGMA cache_size=10");

  const model: Model = { tables: [], nextId: 1, nextName: 1 };
  const scripts: string[] = [];
  let txCountMin = resolved.journalMode === "WAL" ? 1 : 0;
  let spilledRollbacks = 0;
  const first = createTable(model);
  scripts.push(
    `BEGIN;\n${first}\n${insertRows(prng, model, model.tables[0], 3, resolved.pageSize)}\nCOMMIT;`,
  );
  txCountMin++;

  while (scripts.length < resolved.scripts) {
    const roll = prng.float();
    if (roll < 0.06) {
      scripts.push("VACUUM;");
      txCountMin++;
    } else if (roll < 0.1) {
      scripts.push("PRAGMA wal_checkpoint(TRUNCATE);");
    } else if (roll < 0.18) {
      // Work on a copy: a rolled-back transaction leaves the model (and the rows) as they were.
      const scratch = cloneModel(model);
      scripts.push(`BEGIN;\n${transactionBody(prng, scratch, resolved.pageSize)}\nROLLBACK;`);
      if (resolved.journalMode !== "WAL") spilledRollbacks++;
    } else {
      scripts.push(`BEGIN;\n${transactionBody(prng, model, resolved.pageSize)}\nCOMMIT;`);
      txCountMin++;
    }
  }
  return {
    options: resolved,
    pragmas,
    scripts,
    txCountMin,
    txCountMax: txCountMin + spilledRollbacks,
    checks: checksFor(model, resolved),
  };
}

/** One transaction's statements; always starts with an INSERT so that a COMMIT always changes pages. */
function transactionBody(prng: Prng, model: Model, pageSize: number): string {
  const statements: string[] = [];
  const big = prng.chance(0.1);
  statements.push(
    insertRows(prng, model, prng.pick(model.tables), big ? prng.int(100, 300) : prng.int(1, 8), pageSize),
  );
  const operations = prng.int(0, 5);
  for (let i = 0; i < operations; i++) {
    const table = prng.pick(model.tables);
    const roll = prng.float();
    if (roll < 0.3) statements.push(insertRows(prng, model, table, prng.int(1, 10), pageSize));
    else if (roll < 0.55) statements.push(...updateRows(prng, table, pageSize));
    else if (roll < 0.75) statements.push(...deleteRows(prng, table));
    else if (roll < 0.82 && model.tables.length < TABLES_MAX) statements.push(createTable(model));
    else if (roll < 0.87 && model.tables.length > 1 && table !== model.tables[0])
      statements.push(dropTable(model, table));
    else if (roll < 0.92 && table.columns.length < EXTRA_COLUMNS_MAX)
      statements.push(addColumn(prng, model, table));
    else if (roll < 0.97) statements.push(createIndex(model, table));
    else if (table.indexes.length > 0) statements.push(dropIndex(table));
  }
  return statements.join("\n");
}

function createTable(model: Model): string {
  const name = `t${model.nextName++}`;
  model.tables.push({ name, columns: [], rows: new Map(), indexes: [] });
  return `CREATE TABLE ${name} (id INTEGER PRIMARY KEY, a TEXT NOT NULL, b INTEGER);`;
}

function dropTable(model: Model, table: TableModel): string {
  model.tables = model.tables.filter((t) => t !== table);
  return `DROP TABLE ${table.name};`;
}

function addColumn(prng: Prng, model: Model, table: TableModel): string {
  const column = { name: `c${model.nextName++}`, defaultValue: prng.int(-1000, 1000) };
  table.columns.push(column);
  for (const row of table.rows.values()) row[column.name] = column.defaultValue;
  return `ALTER TABLE ${table.name} ADD COLUMN ${column.name} INTEGER NOT NULL DEFAULT ${column.defaultValue};`;
}

function createIndex(model: Model, table: TableModel): string {
  const name = `${table.name}_i${model.nextName++}`;
  table.indexes.push(name);
  const column = table.columns.length > 0 && model.nextName % 2 === 0 ? table.columns[0].name : "b";
  return `CREATE INDEX ${name} ON ${table.name}(${column}, a);`;
}

function dropIndex(table: TableModel): string {
  const name = table.indexes.pop()!;
  return `DROP INDEX ${name};`;
}

function insertRows(prng: Prng, model: Model, table: TableModel, count: number, pageSize: number): string {
  const values: string[] = [];
  for (let i = 0; i < count; i++) {
    const row: SqlRow = {
      id: model.nextId++,
      a: randomText(prng, pageSize),
      b: prng.int(-1_000_000_000, 1_000_000_000),
    };
    const explicit: string[] = [];
    for (const column of table.columns) {
      // Some rows take the column's default, some an explicit value.
      row[column.name] = prng.chance(0.5) ? column.defaultValue : prng.int(-50, 50);
      explicit.push(String(row[column.name]));
    }
    table.rows.set(row.id as number, row);
    values.push(`(${[row.id, sqlText(row.a as string), row.b, ...explicit].join(", ")})`);
  }
  const columns = ["id", "a", "b", ...table.columns.map((c) => c.name)].join(", ");
  return `INSERT INTO ${table.name} (${columns}) VALUES\n${values.join(",\n")};`;
}

function updateRows(prng: Prng, table: TableModel, pageSize: number): string[] {
  const ids = [...table.rows.keys()];
  if (ids.length === 0) return [];
  const statements: string[] = [];
  for (let i = prng.int(1, 4); i > 0; i--) {
    const row = table.rows.get(prng.pick(ids))!;
    row.a = randomText(prng, pageSize);
    row.b = prng.chance(0.2) ? null : prng.int(-1000, 1000);
    statements.push(
      `UPDATE ${table.name} SET a = ${sqlText(row.a)}, b = ${row.b ?? "NULL"} WHERE id = ${row.id};`,
    );
  }
  return statements;
}

function deleteRows(prng: Prng, table: TableModel): string[] {
  const ids = [...table.rows.keys()].sort((x, y) => x - y);
  if (ids.length === 0) return [];
  if (prng.chance(0.3)) {
    const from = prng.int(0, ids.length - 1);
    const to = Math.min(ids.length - 1, from + prng.int(0, 20));
    for (const id of ids.slice(from, to + 1)) table.rows.delete(id);
    return [`DELETE FROM ${table.name} WHERE id BETWEEN ${ids[from]} AND ${ids[to]};`];
  }
  const id = prng.pick(ids);
  table.rows.delete(id);
  return [`DELETE FROM ${table.name} WHERE id = ${id};`];
}

/** Mostly short text, sometimes longer than a page (overflow pages). */
function randomText(prng: Prng, pageSize: number): string {
  const roll = prng.float();
  const length =
    roll < 0.7
      ? prng.int(0, 40)
      : roll < 0.95
        ? prng.int(40, 400)
        : prng.int(pageSize / 2, Math.min(2 * pageSize, 80_000));
  return prng.string(length, TEXT_ALPHABET);
}

function sqlText(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

function cloneModel(model: Model): Model {
  return {
    nextId: model.nextId,
    nextName: model.nextName,
    tables: model.tables.map((table) => ({
      name: table.name,
      columns: table.columns.map((c) => ({ ...c })),
      indexes: [...table.indexes],
      rows: new Map([...table.rows].map(([id, row]) => [id, { ...row }])),
    })),
  };
}

function checksFor(model: Model, options: Required<WorkloadOptions>): WorkloadCheck[] {
  const checks: WorkloadCheck[] = [
    { name: "integrity_check", sql: "PRAGMA integrity_check", expected: [{ integrity_check: "ok" }] },
    { name: "page size", sql: "PRAGMA page_size", expected: [{ page_size: options.pageSize }] },
    {
      name: "schema objects",
      sql: "SELECT name FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name",
      expected: model.tables
        .flatMap((t) => [t.name, ...t.indexes])
        .sort()
        .map((name) => ({ name })),
    },
  ];
  if (options.journalMode === "WAL") {
    checks.push({ name: "journal mode", sql: "PRAGMA journal_mode", expected: [{ journal_mode: "wal" }] });
  }
  for (const table of model.tables) {
    checks.push({
      name: `rows of ${table.name}`,
      sql: `SELECT * FROM ${table.name} ORDER BY id`,
      expected: [...table.rows.values()].sort((x, y) => (x.id as number) - (y.id as number)),
    });
  }
  return checks;
}
