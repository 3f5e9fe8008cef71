// `litefs ltx …`: tools for LTX files and the databases they apply to.
//
//   verify FILE|DIR…          every file decodes and verifies (checksums, structure, index)
//   list [--tsv] FILE|DIR…    one row of header and trailer fields per file
//   dump FILE                 header, every page frame (hexdump), trailer
//   checksum DB               rolling checksum of a SQLite database file
//   apply --db DB FILE…       apply files in order, refusing any that does not follow the database
//   encode-db -o OUT DB       snapshot LTX of a database file
//
// Exit status: 0 success, 1 an invalid file or failed operation, 2 a usage error.

import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";
import {
  applyLtxFiles,
  checksumDatabaseFile,
  formatHex64,
  formatPos,
  LtxError,
  openLtxFile,
  verifyLtxFile,
  writeDatabaseSnapshotFile,
  type Header,
  type LtxSummary,
  type LtxWriteFormat,
} from "../ltx/index.js";
import { hexdumpLines } from "./ltx-hexdump.js";
import type { Subcommand } from "./main.js";

interface Tool {
  usage: string;
  options: NonNullable<ParseArgsConfig["options"]>;
  minArgs: number;
  maxArgs?: number;
  run(values: Record<string, string | boolean | undefined>, args: string[]): Promise<number>;
}

class UsageError extends Error {}

/** Writes to stdout, waiting when the pipe is full (a dump of a large file is large). */
async function out(text: string): Promise<void> {
  if (!process.stdout.write(text))
    await new Promise<void>((resolve) => process.stdout.once("drain", resolve));
}

function err(text: string): void {
  process.stderr.write(text);
}

/** An error as one line, without the file name (the caller prints it first). */
function describe(error: unknown): string {
  if (error instanceof LtxError) {
    const at = error.offset === undefined ? "" : `offset ${error.offset}: `;
    const rule = error.rule === undefined ? "" : ` [rule: ${error.rule}]`;
    return `${at}${error.detail}${rule} (${error.code})`;
  }
  return error instanceof Error ? error.message : String(error);
}

/** Files named, with directories replaced by the *.ltx files in them, sorted by name. */
async function expandFiles(args: string[]): Promise<string[]> {
  const files: string[] = [];
  for (const arg of args) {
    let isDir = false;
    try {
      isDir = (await stat(arg)).isDirectory();
    } catch {
      // Not there: keep it, so that the error is reported against it.
    }
    if (!isDir) {
      files.push(arg);
      continue;
    }
    const names = (await readdir(arg)).filter((name) => name.endsWith(".ltx")).sort();
    files.push(...names.map((name) => join(arg, name)));
  }
  return files;
}

function timestampText(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? String(ms) : date.toISOString();
}

function hex32(value: number): string {
  return value.toString(16).padStart(8, "0");
}

const verify: Tool = {
  usage:
    "litefs ltx verify [--canonical] FILE|DIR...\n\nVerifies LTX files (every rule, every checksum). Prints `ok` when all are valid;\notherwise `<file>: <error>` per bad file and `N ok, M invalid`, and exits 1.\n--canonical also requires every LZ4 block to be the reference compressor's encoding.",
  options: { canonical: { type: "boolean" } },
  minArgs: 1,
  async run(values, args) {
    const files = await expandFiles(args);
    let bad = 0;
    for (const file of files) {
      try {
        await verifyLtxFile(file, { canonicalLz4: values.canonical === true });
      } catch (error) {
        bad++;
        await out(`${file}: ${describe(error)}\n`);
      }
    }
    if (bad === 0) {
      await out("ok\n");
      return 0;
    }
    await out(`${files.length - bad} ok, ${bad} invalid\n`);
    return 1;
  },
};

const LIST_COLUMNS = [
  "file", "format", "min_txid", "max_txid", "commit", "pages", "pre_apply", "post_apply",
  "timestamp", "wal_offset", "wal_size", "wal_salt1", "wal_salt2",
] as const; // prettier-ignore

function listRow(file: string, s: LtxSummary): string[] {
  const h = s.header;
  return [
    file, s.format, formatHex64(h.minTxid), formatHex64(h.maxTxid), String(h.commit), String(s.pageCount),
    formatHex64(h.preApplyChecksum), formatHex64(s.trailer.postApplyChecksum), timestampText(h.timestamp),
    String(h.walOffset), String(h.walSize), hex32(h.walSalt1), hex32(h.walSalt2),
  ]; // prettier-ignore
}

const list: Tool = {
  usage:
    "litefs ltx list [--tsv] FILE|DIR...\n\nOne row per LTX file: TXIDs, commit, page count, checksums, timestamp, WAL fields.\nInvalid files are reported on stderr (exit 1).",
  options: { tsv: { type: "boolean" } },
  minArgs: 1,
  async run(values, args) {
    const rows: string[][] = [];
    let bad = 0;
    for (const file of await expandFiles(args)) {
      try {
        rows.push(listRow(file, await verifyLtxFile(file)));
      } catch (error) {
        bad++;
        err(`${file}: ${describe(error)}\n`);
      }
    }
    if (values.tsv === true) {
      await out([LIST_COLUMNS.join("\t"), ...rows.map((row) => row.join("\t"))].join("\n") + "\n");
    } else {
      const table = [LIST_COLUMNS.map((c) => c.toUpperCase()), ...rows];
      const widths = LIST_COLUMNS.map((_, i) => Math.max(...table.map((row) => row[i].length)));
      await out(
        table
          .map((row) =>
            row
              .map((cell, i) => cell.padEnd(widths[i]))
              .join("  ")
              .trimEnd(),
          )
          .join("\n") + "\n",
      );
    }
    return bad === 0 ? 0 : 1;
  },
};

function headerLines(h: Header): string[] {
  return [
    `  flags:               0x${hex32(h.flags)}`,
    `  page size:           ${h.pageSize}`,
    `  commit:              ${h.commit}`,
    `  min TXID:            ${formatHex64(h.minTxid)}`,
    `  max TXID:            ${formatHex64(h.maxTxid)}`,
    `  timestamp:           ${timestampText(h.timestamp)} (${h.timestamp})`,
    `  pre-apply checksum:  ${formatHex64(h.preApplyChecksum)}`,
    `  WAL offset:          ${h.walOffset}`,
    `  WAL size:            ${h.walSize}`,
    `  WAL salts:           ${hex32(h.walSalt1)} ${hex32(h.walSalt2)}`,
    `  node ID:             ${formatHex64(h.nodeId)}`,
  ];
}

const dump: Tool = {
  usage:
    "litefs ltx dump FILE\n\nPrints the header, every page frame (page number, offset, hexdump with repeated rows\nfolded as *) and the trailer. The file is verified as it is read.",
  options: {},
  minArgs: 1,
  maxArgs: 1,
  async run(_values, [file]) {
    const decoder = openLtxFile(file);
    try {
      const header = await decoder.readHeader();
      await out(`file: ${file}\nformat: ${decoder.format}\nheader:\n${headerLines(header).join("\n")}\n`);
      for (;;) {
        const page = await decoder.readPage();
        if (page === undefined) break;
        await out(
          `page ${page.pgno} (frame at ${decoder.format === "v1-lz4" ? "decompressed offset" : "offset"} ${page.offset}):\n${hexdumpLines(page.data, "  ").join("\n")}\n`,
        );
      }
      const { trailer, pageCount, size } = decoder.summary!;
      await out(
        `trailer:\n  post-apply checksum: ${formatHex64(trailer.postApplyChecksum)}\n` +
          `  file checksum:       ${formatHex64(trailer.fileChecksum)}\n` +
          `${pageCount} pages, ${size} bytes, verified\n`,
      );
      return 0;
    } catch (error) {
      await decoder.close();
      err(`${file}: ${describe(error)}\n`);
      return 1;
    }
  },
};

const checksum: Tool = {
  usage:
    "litefs ltx checksum DB\n\nPrints the rolling LTX checksum (16 hex digits) of a SQLite database file; the page\nsize comes from its header. An empty or missing-header file is an error unless empty.",
  options: {},
  minArgs: 1,
  maxArgs: 1,
  async run(_values, [db]) {
    try {
      await out(`${formatHex64(await checksumDatabaseFile(db))}\n`);
      return 0;
    } catch (error) {
      err(`${db}: ${describe(error)}\n`);
      return 1;
    }
  },
};

const apply: Tool = {
  usage:
    "litefs ltx apply --db DB FILE...\n\nApplies LTX files in order to a database file (created if missing). Every file is\nverified, and must follow the database (TXIDs contiguous, pre-apply checksum equal to\nthe database's) with its post-apply checksum confirmed, before anything is written;\na file that does not changes nothing. Prints the resulting position TXID/CHECKSUM.",
  options: { db: { type: "string" } },
  minArgs: 1,
  async run(values, files) {
    const db = values.db;
    if (typeof db !== "string") throw new UsageError("--db DB is required");
    try {
      const result = await applyLtxFiles(db, files);
      await out(`${formatPos(result.position)}\n`);
      return 0;
    } catch (error) {
      const file = error instanceof LtxError && error.file !== undefined ? error.file : db;
      err(`${file}: ${describe(error)}\n`);
      return 1;
    }
  },
};

const WRITE_FORMATS: Record<string, LtxWriteFormat> = { v3: "v3", v1: "v1", "v1-lz4": "v1-lz4" };

const encodeDb: Tool = {
  usage:
    "litefs ltx encode-db -o OUT DB [--format v3|v1|v1-lz4]\n\nWrites a snapshot LTX file (min TXID 1, every page) of a SQLite database file.\nv3 is the default; v1 is LiteFS's format (v1-lz4: with its LZ4 frame compression).",
  options: { output: { type: "string", short: "o" }, format: { type: "string" } },
  minArgs: 1,
  maxArgs: 1,
  async run(values, [db]) {
    const output = values.output;
    if (typeof output !== "string") throw new UsageError("-o OUT is required");
    const format = WRITE_FORMATS[typeof values.format === "string" ? values.format : "v3"];
    if (format === undefined)
      throw new UsageError(`--format must be v3, v1 or v1-lz4, not ${String(values.format)}`);
    try {
      const result = await writeDatabaseSnapshotFile(db, output, { format });
      await out(
        `${output}: ${result.header.commit} pages, ${result.size} bytes, post-apply ${formatHex64(result.trailer.postApplyChecksum)}\n`,
      );
      return 0;
    } catch (error) {
      const file = error instanceof LtxError && error.file !== undefined ? error.file : db;
      err(`${file}: ${describe(error)}\n`);
      return 1;
    }
  },
};

const TOOLS: Record<string, Tool> = { verify, list, dump, checksum, apply, "encode-db": encodeDb };

function usage(): string {
  return [
    "usage: litefs ltx <command> [arguments]",
    "",
    "commands:",
    ...Object.values(TOOLS).map((tool) => `  ${tool.usage.split("\n")[0].replace(/^litefs ltx /, "")}`),
    "",
    "Run `litefs ltx <command> --help` for details.",
    "",
  ].join("\n");
}

async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    await out(usage());
    return name === undefined ? 2 : 0;
  }
  const tool = TOOLS[name];
  if (tool === undefined) {
    err(`litefs ltx: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  try {
    const { values, positionals } = parseArgs({
      args: rest,
      options: { ...tool.options, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
    if (values.help === true) {
      await out(tool.usage + "\n");
      return 0;
    }
    if (
      positionals.length < tool.minArgs ||
      (tool.maxArgs !== undefined && positionals.length > tool.maxArgs)
    ) {
      throw new UsageError(`wrong number of arguments`);
    }
    return await tool.run(values, positionals);
  } catch (error) {
    if (
      error instanceof UsageError ||
      (error instanceof Error && "code" in error && String(error.code).startsWith("ERR_PARSE_ARGS"))
    ) {
      err(`litefs ltx ${name}: ${error.message}\n\nusage: ${tool.usage}\n`);
      return 2;
    }
    throw error;
  }
}

export const ltxCommand: Subcommand = {
  summary: "inspect, verify, apply and create LTX files",
  run,
};
