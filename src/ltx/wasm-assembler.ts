// A tiny assembler for the flat (non-folded) subset of WebAssembly text that crc64-wasm.ts is written in.
//
// Why: the project installs no wabt, and an opaque byte array cannot be reviewed. With this, the WAT text
// in crc64-wasm.ts *is* the source: it is assembled into a binary module once, at load time (~20 µs).
//
// Supported: one exported memory; functions with i32/i64 params, one optional result, named locals;
// instructions without immediates, `local.get/set/tee $name|index`, `i32.const`/`i64.const` (decimal
// or 0x-hex, may be negative), `br`/`br_if depth`, `block`/`loop`/`if` without a result type, `else`,
// `end`, loads/stores with an optional `offset=N`. Anything else throws at assembly time.

export type WasmValueType = "i32" | "i64";

export interface WasmFunctionSpec {
  /** Export name (every function is exported). */
  name: string;
  params: ReadonlyArray<readonly [string, WasmValueType]>;
  result?: WasmValueType;
  locals: ReadonlyArray<readonly [string, WasmValueType]>;
  /** Flat WAT instruction text; `;;` starts a comment. The trailing function `end` is added. */
  body: string;
}

export interface WasmModuleSpec {
  memory: { exportName: string; pages: number };
  functions: readonly WasmFunctionSpec[];
}

const VALUE_TYPE: Record<WasmValueType, number> = { i32: 0x7f, i64: 0x7e };

// Instructions without immediates.
// prettier-ignore
const PLAIN: Record<string, number> = {
  else: 0x05, end: 0x0b, return: 0x0f, drop: 0x1a, select: 0x1b,
  "i32.eqz": 0x45, "i32.eq": 0x46, "i32.ne": 0x47, "i32.lt_u": 0x49, "i32.gt_u": 0x4b, "i32.le_u": 0x4d, "i32.ge_u": 0x4f,
  "i64.eqz": 0x50, "i64.eq": 0x51, "i64.ne": 0x52,
  "i32.add": 0x6a, "i32.sub": 0x6b, "i32.mul": 0x6c, "i32.and": 0x71, "i32.or": 0x72, "i32.xor": 0x73,
  "i32.shl": 0x74, "i32.shr_u": 0x76, "i32.rotl": 0x77, "i32.rotr": 0x78,
  "i64.add": 0x7c, "i64.sub": 0x7d, "i64.mul": 0x7e, "i64.and": 0x83, "i64.or": 0x84, "i64.xor": 0x85,
  "i64.shl": 0x86, "i64.shr_u": 0x88, "i64.rotl": 0x89, "i64.rotr": 0x8a,
  "i32.wrap_i64": 0xa7, "i64.extend_i32_u": 0xad,
};

// Memory instructions: opcode and natural alignment (log2 bytes).
// prettier-ignore
const MEMORY: Record<string, readonly [number, number]> = {
  "i32.load": [0x28, 2], "i64.load": [0x29, 3], "i32.load8_u": [0x2d, 0], "i64.load8_u": [0x31, 0],
  "i64.load32_u": [0x35, 2], "i32.store": [0x36, 2], "i64.store": [0x37, 3], "i32.store8": [0x3a, 0],
};

const BLOCKS: Record<string, number> = { block: 0x02, loop: 0x03, if: 0x04 };
const LOCALS: Record<string, number> = { "local.get": 0x20, "local.set": 0x21, "local.tee": 0x22 };
const BRANCHES: Record<string, number> = { br: 0x0c, br_if: 0x0d };

function uleb(value: number): number[] {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`uleb of ${value}`);
  const out: number[] = [];
  do {
    let byte = value % 128;
    value = Math.floor(value / 128);
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}

function sleb(value: bigint): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = Number(value & 0x7fn);
    value >>= 7n;
    const done = (value === 0n && (byte & 0x40) === 0) || (value === -1n && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

function vector(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function section(id: number, payload: number[]): number[] {
  return [id, ...uleb(payload.length), ...payload];
}

function name(text: string): number[] {
  const bytes = [...new TextEncoder().encode(text)];
  return [...uleb(bytes.length), ...bytes];
}

function parseInteger(token: string, bits: 32 | 64): bigint {
  if (!/^-?(0x[0-9a-fA-F_]+|[0-9_]+)$/.test(token)) throw new SyntaxError(`wasm: bad integer ${token}`);
  const negative = token.startsWith("-");
  const magnitude = BigInt(token.replace(/^-/, "").replaceAll("_", ""));
  const value = negative ? -magnitude : magnitude;
  // Accept both signed and unsigned spellings, encode as the signed value of the same bits.
  return BigInt.asIntN(bits, value);
}

/** Assembles one function body (without its locals header) into bytes. */
function assembleBody(fn: WasmFunctionSpec): number[] {
  const localIndex = new Map<string, number>();
  [...fn.params, ...fn.locals].forEach(([localName], i) => localIndex.set(localName, i));
  const tokens = fn.body
    .replace(/;;[^\n]*/g, " ")
    .split(/\s+/)
    .filter((t) => t !== "");
  const code: number[] = [];
  let depth = 0;
  const next = (i: number, what: string): string => {
    const token = tokens[i];
    if (token === undefined) throw new SyntaxError(`wasm ${fn.name}: ${what} is missing its operand`);
    return token;
  };
  for (let i = 0; i < tokens.length; i++) {
    const op = tokens[i];
    if (op in PLAIN) {
      if (op === "end") depth--;
      if (depth < 0) throw new SyntaxError(`wasm ${fn.name}: unbalanced end`);
      code.push(PLAIN[op]);
    } else if (op in BLOCKS) {
      depth++;
      code.push(BLOCKS[op], 0x40);
    } else if (op in LOCALS) {
      const ref = next(++i, op);
      const index = ref.startsWith("$") ? localIndex.get(ref.slice(1)) : Number(ref);
      if (index === undefined || !Number.isInteger(index))
        throw new SyntaxError(`wasm ${fn.name}: no local ${ref}`);
      code.push(LOCALS[op], ...uleb(index));
    } else if (op in BRANCHES) {
      const label = Number(next(++i, op));
      if (!Number.isInteger(label) || label < 0 || label > depth) {
        throw new SyntaxError(`wasm ${fn.name}: bad branch depth ${tokens[i]}`);
      }
      code.push(BRANCHES[op], ...uleb(label));
    } else if (op === "i32.const" || op === "i64.const") {
      const bits = op === "i32.const" ? 32 : 64;
      code.push(op === "i32.const" ? 0x41 : 0x42, ...sleb(parseInteger(next(++i, op), bits)));
    } else if (op in MEMORY) {
      const [opcode, align] = MEMORY[op];
      let offset = 0;
      const following = tokens[i + 1];
      if (following?.startsWith("offset=")) {
        offset = Number(following.slice("offset=".length));
        i++;
      }
      code.push(opcode, ...uleb(align), ...uleb(offset));
    } else {
      throw new SyntaxError(`wasm ${fn.name}: unsupported instruction ${op}`);
    }
  }
  if (depth !== 0) throw new SyntaxError(`wasm ${fn.name}: ${depth} unclosed block(s)`);
  return [...code, PLAIN.end];
}

/** Assembles a module: types, functions, one memory, exports, code. */
export function assembleWasmModule(spec: WasmModuleSpec): Uint8Array {
  const types = spec.functions.map((fn) => [
    0x60,
    ...vector(fn.params.map(([, t]) => [VALUE_TYPE[t]])),
    ...vector(fn.result === undefined ? [] : [[VALUE_TYPE[fn.result]]]),
  ]);
  const functionTypes = spec.functions.map((_, i) => uleb(i));
  const memory = [[0x00, ...uleb(spec.memory.pages)]];
  const exports = [
    [...name(spec.memory.exportName), 0x02, 0x00],
    ...spec.functions.map((fn, i) => [...name(fn.name), 0x00, ...uleb(i)]),
  ];
  const bodies = spec.functions.map((fn) => {
    const locals = vector(fn.locals.map(([, t]) => [1, VALUE_TYPE[t]]));
    const body = [...locals, ...assembleBody(fn)];
    return [...uleb(body.length), ...body];
  });
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vector(types)),
    ...section(3, vector(functionTypes)),
    ...section(5, vector(memory)),
    ...section(7, vector(exports)),
    ...section(10, vector(bodies)),
  ]);
}
