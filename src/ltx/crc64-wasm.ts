// CRC-64/GO-ISO in WebAssembly, written in WAT below and assembled at load time by wasm-assembler.ts.
//
// Same table-free step as crc64-js.ts (see there why it is exact), on a 64-bit register: absorb 8 bytes,
// then shift out 32 bits twice:   v = R & 0xffffffff;  R = (R >> 32) ^ (v<<32) ^ (v<<31) ^ (v<<29) ^ (v<<28).
// One CRC is one long dependency chain (~1.6 GB/s however it is computed), so both functions run four
// independent chains side by side to keep the CPU's ALUs busy: `pages_xor` four pages at once (the database
// checksum), `update` four 1 KiB lanes of the same input joined by CRC linearity (see there). That is what
// takes them to ~3 GB/s on this machine (bench/ltx-primitives.ts).
//
// Memory: one fixed 4 MiB + 64 KiB memory per instance that never grows, so views on it stay valid.
// Callers copy (or read) data into [0, DATA_BYTES) and pass offsets. A shared instance serves synchronous
// callers; callers that await or run foreign code while their data sits in memory take their own from a
// small pool (acquire/release).

import { absorbBytes, type Crc64Register } from "./crc64-js.js";
import { assembleWasmModule, type WasmFunctionSpec } from "./wasm-assembler.js";

/** Bytes of input an instance holds at once, at offset 0 of its memory. */
export const WASM_DATA_BYTES = 4 << 20;

/** Layout after the data area: eight 256-entry i64 tables for the lane shift, then the register. */
const TABLES = WASM_DATA_BYTES;
const STATE = TABLES + 8 * 256 * 8;
const LANE_BYTES = 1024;
const lanes = [0, 1, 2, 3];

const step32 = (r: string, v: string): string => `
  local.get $${r}  i64.const 0xffffffff  i64.and  local.set $${v}
  local.get $${r}  i64.const 32  i64.shr_u
  local.get $${v}  i64.const 32  i64.shl
  local.get $${v}  i64.const 31  i64.shl  i64.xor
  local.get $${v}  i64.const 29  i64.shl
  local.get $${v}  i64.const 28  i64.shl  i64.xor
  i64.xor  i64.xor  local.set $${r}`;

const absorb8 = (r: string, v: string, addr: string): string => `
  local.get $${r}  local.get $${addr}  i64.load  i64.xor  local.set $${r}
  ${step32(r, v)}
  ${step32(r, v)}`;

// R = ~0, then absorb be32(pgno + k) — read little-endian, that is the byte-swapped page number.
const pageStart = (r: string, v: string, k: number): string => `
  local.get $pgno  i32.const ${k}  i32.add  local.set $x
  i64.const -1
  local.get $x  i32.const 8  i32.rotr  i32.const 0xff00ff00  i32.and
  local.get $x  i32.const 8  i32.rotl  i32.const 0x00ff00ff  i32.and  i32.or
  i64.extend_i32_u  i64.xor  local.set $${r}
  ${step32(r, v)}`;

// acc ^= FLAG | ~R, unless page pgno + k is the lock page.
const pageFinish = (r: string, k: number): string => `
  local.get $pgno  i32.const ${k}  i32.add  local.get $lock  i32.ne
  if
    local.get $acc
    local.get $${r}  i64.const -1  i64.xor  i64.const 0x8000000000000000  i64.or
    i64.xor  local.set $acc
  end`;

const advance = (addrs: string[], by: number): string =>
  addrs.map((a) => `local.get $${a}  i32.const ${by}  i32.add  local.set $${a}`).join("\n");

/*
 * (func $update (param $p i32) (param $n i32))
 * Absorbs mem[p : p+n] into the raw register stored at STATE. Inputs of 4 KiB and more go through four
 * 1 KiB lanes side by side (lanes 1..3 start from a zero register), joined by CRC linearity:
 *     raw(r, A‖B) = shift_|B|(raw(r, A)) ^ raw(0, B)
 * where shift_1024 — feeding 1 KiB of zero bytes — is a fixed linear map applied as eight byte-indexed
 * tables at TABLES (filled from JS at load). The rest goes 8 bytes, then 1 byte, at a time.
 */
const shiftLane = (x: string): string =>
  [0, 1, 2, 3, 4, 5, 6, 7]
    .map(
      (k) => `
  local.get $${x}  i64.const ${8 * k}  i64.shr_u  i32.wrap_i64  i32.const 255  i32.and  i32.const 3  i32.shl
  i64.load offset=${TABLES + 2048 * k}  ${k > 0 ? "i64.xor" : ""}`,
    )
    .join("");
const update: WasmFunctionSpec = {
  name: "update",
  params: [
    ["p", "i32"],
    ["n", "i32"],
  ],
  locals: [
    ["end", "i32"],
    ...lanes.map((k) => [`r${k}`, "i64"] as const),
    ...lanes.map((k) => [`v${k}`, "i64"] as const),
    ...lanes.map((k) => [`a${k}`, "i32"] as const),
  ],
  body: `
    i32.const 0  i64.load offset=${STATE}  local.set $r0
    block
      loop                                                         ;; 4 KiB at a time, in four lanes
        local.get $n  i32.const ${4 * LANE_BYTES}  i32.lt_u  br_if 1
        local.get $p  local.set $a0
        local.get $a0  i32.const ${LANE_BYTES}  i32.add  local.set $a1
        local.get $a1  i32.const ${LANE_BYTES}  i32.add  local.set $a2
        local.get $a2  i32.const ${LANE_BYTES}  i32.add  local.set $a3
        local.get $a1  local.set $end
        i64.const 0  local.set $r1
        i64.const 0  local.set $r2
        i64.const 0  local.set $r3
        block
          loop
            local.get $a0  local.get $end  i32.ge_u  br_if 1
            ${lanes.map((k) => absorb8(`r${k}`, `v${k}`, `a${k}`)).join("\n")}
            ${advance(["a0", "a1", "a2", "a3"], 8)}
            br 0
          end
        end
        ${shiftLane("r0")}  local.get $r1  i64.xor  local.set $r0
        ${shiftLane("r0")}  local.get $r2  i64.xor  local.set $r0
        ${shiftLane("r0")}  local.get $r3  i64.xor  local.set $r0
        local.get $a3  local.set $p
        local.get $n  i32.const ${4 * LANE_BYTES}  i32.sub  local.set $n
        br 0
      end
    end
    local.get $p  local.get $n  i32.const -8  i32.and  i32.add  local.set $end
    block
      loop                                                         ;; 8 bytes at a time
        local.get $p  local.get $end  i32.ge_u  br_if 1
        ${absorb8("r0", "v0", "p")}
        ${advance(["p"], 8)}
        br 0
      end
    end
    local.get $end  local.get $n  i32.const 7  i32.and  i32.add  local.set $end
    block
      loop                                                         ;; tail: the k = 8 step
        local.get $p  local.get $end  i32.ge_u  br_if 1
        local.get $r0  local.get $p  i64.load8_u  i64.xor  i64.const 0xff  i64.and  local.set $v0
        local.get $r0  i64.const 8  i64.shr_u
        local.get $v0  i64.const 56  i64.shl  i64.xor
        local.get $v0  i64.const 55  i64.shl  i64.xor
        local.get $v0  i64.const 53  i64.shl  i64.xor
        local.get $v0  i64.const 52  i64.shl  i64.xor
        local.set $r0
        ${advance(["p"], 1)}
        br 0
      end
    end
    i32.const 0  local.get $r0  i64.store offset=${STATE}`,
};

/*
 * (func $pages_xor (param $p i32) (param $count i32) (param $size i32) (param $pgno i32) (param $lock i32)
 *   (result i64))
 * XOR over the `count` pages at mem[p], mem[p+size], … numbered pgno, pgno+1, … of their page checksums
 * FLAG | crc(be32(pgno) ‖ page), skipping page number `lock`. `size` must be a positive multiple of 8.
 */
// prettier-ignore
const pagesXor: WasmFunctionSpec = {
  name: "pages_xor",
  params: [["p", "i32"], ["count", "i32"], ["size", "i32"], ["pgno", "i32"], ["lock", "i32"]],
  result: "i64",
  locals: [
    ["acc", "i64"], ["x", "i32"], ["end", "i32"],
    ...lanes.map((k) => [`r${k}`, "i64"] as const),
    ...lanes.map((k) => [`v${k}`, "i64"] as const),
    ...lanes.map((k) => [`a${k}`, "i32"] as const),
  ],
  body: `
    block
      loop                                                         ;; four pages at a time
        local.get $count  i32.const 4  i32.lt_u  br_if 1
        local.get $p  local.set $a0
        local.get $a0  local.get $size  i32.add  local.set $a1
        local.get $a1  local.get $size  i32.add  local.set $a2
        local.get $a2  local.get $size  i32.add  local.set $a3
        local.get $a1  local.set $end
        ${lanes.map((k) => pageStart(`r${k}`, `v${k}`, k)).join("\n")}
        block
          loop
            local.get $a0  local.get $end  i32.ge_u  br_if 1
            ${lanes.map((k) => absorb8(`r${k}`, `v${k}`, `a${k}`)).join("\n")}
            ${advance(["a0", "a1", "a2", "a3"], 8)}
            br 0
          end
        end
        ${lanes.map((k) => pageFinish(`r${k}`, k)).join("\n")}
        local.get $a3  local.set $p
        ${advance(["pgno"], 4)}
        local.get $count  i32.const 4  i32.sub  local.set $count
        br 0
      end
    end
    block
      loop                                                         ;; the remaining pages, one at a time
        local.get $count  i32.eqz  br_if 1
        local.get $p  local.set $a0
        local.get $p  local.get $size  i32.add  local.set $end
        ${pageStart("r0", "v0", 0)}
        block
          loop
            local.get $a0  local.get $end  i32.ge_u  br_if 1
            ${absorb8("r0", "v0", "a0")}
            ${advance(["a0"], 8)}
            br 0
          end
        end
        ${pageFinish("r0", 0)}
        local.get $end  local.set $p
        ${advance(["pgno"], 1)}
        local.get $count  i32.const 1  i32.sub  local.set $count
        br 0
      end
    end
    local.get $acc`,
};

// The lib settings (ES2022, no DOM) do not declare WebAssembly; these are the few parts used here.
interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
type WasmModule = object;
interface WasmApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule) => { readonly exports: object };
}
const wasmApi = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;

interface Crc64Exports {
  memory: WasmMemory;
  update(p: number, n: number): void;
  pages_xor(p: number, count: number, size: number, pgno: number, lock: number): bigint;
}

/**
 * The lane-shift tables: entry [k][b] = shift_1024(b << 8k), where shift_1024 feeds 1 KiB of zero bytes
 * into a raw register. Built once from the 64 basis vectors with the JS implementation.
 */
function laneShiftTables(): Uint32Array {
  const zeros = new Uint8Array(LANE_BYTES);
  const basis: Crc64Register[] = [];
  for (let bit = 0; bit < 64; bit++) {
    const reg: Crc64Register = { hi: bit >= 32 ? 2 ** (bit - 32) : 0, lo: bit < 32 ? 2 ** bit : 0 };
    absorbBytes(reg, zeros);
    basis.push(reg);
  }
  const words = new Uint32Array(8 * 256 * 2); // [lo, hi] pairs
  for (let k = 0; k < 8; k++) {
    for (let b = 0; b < 256; b++) {
      let lo = 0;
      let hi = 0;
      for (let j = 0; j < 8; j++) {
        if (b & (1 << j)) {
          lo ^= basis[8 * k + j].lo;
          hi ^= basis[8 * k + j].hi;
        }
      }
      words[2 * (256 * k + b)] = lo >>> 0;
      words[2 * (256 * k + b) + 1] = hi >>> 0;
    }
  }
  return words;
}

/** One WASM instance and the byte view of its data area. */
export class Crc64WasmInstance {
  readonly #exports: Crc64Exports;
  readonly #view: DataView;
  /** [0, WASM_DATA_BYTES) of the instance's memory; the memory never grows, so this stays valid. */
  readonly data: Uint8Array;

  constructor(api: WasmApi, module: WasmModule, tables: Uint32Array) {
    this.#exports = new api.Instance(module).exports as Crc64Exports;
    this.data = new Uint8Array(this.#exports.memory.buffer, 0, WASM_DATA_BYTES);
    this.#view = new DataView(this.#exports.memory.buffer);
    for (let i = 0; i < tables.length; i++) this.#view.setUint32(TABLES + 4 * i, tables[i], true);
  }

  /** Absorbs data[0:n] into the raw register `reg` (see crc64-js.ts). */
  absorb(reg: Crc64Register, n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > WASM_DATA_BYTES) throw new RangeError(`absorb: bad length ${n}`);
    this.#view.setUint32(STATE, reg.lo, true);
    this.#view.setUint32(STATE + 4, reg.hi, true);
    this.#exports.update(0, n);
    reg.lo = this.#view.getUint32(STATE, true);
    reg.hi = this.#view.getUint32(STATE + 4, true);
  }

  /** XOR of the page checksums of `count` pages of `size` bytes at data[0…], numbered from `pgno`. */
  pagesXor(count: number, size: number, pgno: number, lock: number): bigint {
    if (
      !Number.isInteger(count) ||
      count < 0 ||
      size <= 0 ||
      size % 8 !== 0 ||
      count * size > WASM_DATA_BYTES
    ) {
      throw new RangeError(`pagesXor: ${count} pages of ${size} bytes do not fit the WASM data area`);
    }
    return BigInt.asUintN(64, this.#exports.pages_xor(0, count, size, pgno >>> 0, lock >>> 0));
  }
}

/** Set LITEFS_CRC64=js to run without WebAssembly (tests use it to exercise the fallback end to end). */
const forceJs = process.env.LITEFS_CRC64 === "js";

function compile(): WasmModule | undefined {
  if (wasmApi === undefined || forceJs) return undefined;
  try {
    const bytes = assembleWasmModule({
      memory: { exportName: "memory", pages: WASM_DATA_BYTES / 65536 + 1 },
      functions: [update, pagesXor],
    });
    return new wasmApi.Module(bytes);
  } catch {
    return undefined; // no WebAssembly (or no BigInt integration): crc64.ts falls back to JS
  }
}

const crc64Module = compile();
const tables = crc64Module === undefined ? new Uint32Array(0) : laneShiftTables();
const shared =
  crc64Module === undefined || wasmApi === undefined
    ? undefined
    : new Crc64WasmInstance(wasmApi, crc64Module, tables);

/** Whether the WASM implementation can be used in this process. */
export const wasmCrc64Available = shared !== undefined;

/** The instance for synchronous callers (never held across an await). */
export function sharedCrc64Instance(): Crc64WasmInstance {
  if (shared === undefined) throw new Error("WebAssembly CRC-64 is not available");
  return shared;
}

const idle: Crc64WasmInstance[] = [];
const POOL_MAX = 4;

/**
 * Takes an instance of the caller's own (from a small pool) — for callers that run foreign code or await
 * while their data sits in WASM memory. Give it back with `releaseCrc64Instance`.
 */
export function acquireCrc64Instance(): Crc64WasmInstance {
  if (crc64Module === undefined || wasmApi === undefined)
    throw new Error("WebAssembly CRC-64 is not available");
  return idle.pop() ?? new Crc64WasmInstance(wasmApi, crc64Module, tables);
}

export function releaseCrc64Instance(instance: Crc64WasmInstance): void {
  if (idle.length < POOL_MAX && !idle.includes(instance)) idle.push(instance);
}

/** Absorbs `data` into the raw register `reg` through the shared instance, in 4 MiB chunks. */
export function absorbBytesWasm(reg: Crc64Register, data: Uint8Array): void {
  const instance = sharedCrc64Instance();
  for (let off = 0; off < data.length; off += WASM_DATA_BYTES) {
    const chunk = data.subarray(off, off + WASM_DATA_BYTES);
    instance.data.set(chunk, 0);
    instance.absorb(reg, chunk.length);
  }
}

/** Go's crc64.Update(previous, ISO, data) through WASM. */
export function crc64Wasm(data: Uint8Array, previous = 0n): bigint {
  const reg: Crc64Register = {
    hi: ~Number((previous >> 32n) & 0xffffffffn) >>> 0,
    lo: ~Number(previous & 0xffffffffn) >>> 0,
  };
  absorbBytesWasm(reg, data);
  return (BigInt(~reg.hi >>> 0) << 32n) | BigInt(~reg.lo >>> 0);
}
