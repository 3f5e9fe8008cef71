// The request side of the stream and the pure decisions around it: the request body codec, the
// primary's admission checks (token, node ids, cluster, epoch fencing), the replica's checks on each
// LTX file, and the reconnect backoff.

import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";

import { admitStreamRequest, checkBearerToken, httpStatusOf } from "../../src/api/stream-admission.js";
import { reconnectDelayMs } from "../../src/api/stream-backoff.js";
import { StreamError } from "../../src/api/stream-error.js";
import { firstUnsharedTxid, snapshotInfoOf, type LtxBeginFrame } from "../../src/api/stream-frame.js";
import { admitEpoch, admitLtx } from "../../src/api/stream-ltx-admission.js";
import {
  clusterIdProblem,
  decodeSnapshotWantedHeader,
  decodeStreamRequest,
  encodeSnapshotWantedHeader,
  encodeStreamRequest,
  formatNodeId,
  httpUrlOrNull,
  parseNodeId,
  type StreamRequest,
} from "../../src/api/stream-request.js";
import { planCatchUp } from "../../src/store/catchup-plan.js";

const FLAG = 1n << 63n;

function expectCode(fn: () => unknown, code: string, rule?: string): StreamError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof StreamError, `expected a StreamError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (rule !== undefined) assert.equal(err.rule, rule, err.message);
    return err;
  }
  assert.fail(`expected ${code}`);
}

const request: StreamRequest = {
  nodeId: 0x1234n,
  clusterId: "LFSC0123456789ABCDEF",
  epochSeen: 7n,
  databases: [
    { db: "a.db", pos: { txid: 0n, checksum: 0n }, recent: [] },
    {
      db: "b.db",
      pos: { txid: 5n, checksum: FLAG | 5n },
      recent: [
        { minTxid: 1n, maxTxid: 3n, preApplyChecksum: 0n, postApplyChecksum: FLAG | 3n },
        { minTxid: 4n, maxTxid: 5n, preApplyChecksum: FLAG | 3n, postApplyChecksum: FLAG | 5n },
      ],
    },
  ],
};

test("request bodies round-trip (fast-check)", () => {
  const u64 = fc.bigInt({ min: 1n, max: (1n << 64n) - 1n });
  const database = fc.record({
    db: fc.stringMatching(/^[a-z][a-z0-9_.]{0,30}$/),
    txid: fc.bigInt({ min: 0n, max: 1n << 40n }),
    checksum: u64,
    files: fc.array(fc.bigInt({ min: 1n, max: 1000n }), { maxLength: 6 }),
  });
  fc.assert(
    fc.property(
      u64,
      fc.bigInt({ min: 0n, max: 1n << 63n }),
      fc.stringMatching(/^[A-Za-z0-9_-]{0,64}$/),
      fc.uniqueArray(database, { selector: (d) => d.db, maxLength: 5 }),
      (nodeId, epochSeen, clusterId, dbs) => {
        const databases = dbs.map(({ db, txid, checksum, files }) => {
          const pos = txid === 0n ? { txid, checksum: 0n } : { txid, checksum };
          // Files one TXID each, ending on the position (lengths become TXIDs counted back from it).
          const count = txid === 0n ? 0 : Math.min(files.length, Number(txid));
          const recent = Array.from({ length: count }, (_, i) => {
            const max = txid - BigInt(count - 1 - i);
            return {
              minTxid: max,
              maxTxid: max,
              preApplyChecksum: max === 1n ? 0n : FLAG | (max - 1n),
              postApplyChecksum: max === txid ? checksum : FLAG | max,
            };
          });
          return { db, pos, recent };
        });
        const req = { nodeId, clusterId, epochSeen, databases };
        assert.deepEqual(decodeStreamRequest(encodeStreamRequest(req)), req);
      },
    ),
    { numRuns: 300 },
  );
});

test("every single-byte corruption and truncation of a request body is ESTREAMREQUEST", () => {
  const body = encodeStreamRequest(request);
  for (let at = 0; at < body.length; at++) {
    for (const xor of [1, 0x80, 0xff]) {
      const bad = Uint8Array.from(body);
      bad[at] ^= xor;
      expectCode(() => decodeStreamRequest(bad), "ESTREAMREQUEST");
    }
  }
  for (let length = 0; length < body.length; length++) {
    expectCode(() => decodeStreamRequest(body.subarray(0, length)), "ESTREAMREQUEST");
  }
});

test("request bodies that are well-formed but wrong are refused, also by the encoder", () => {
  const bad: [string, Partial<StreamRequest>, string][] = [
    ["node id 0", { nodeId: 0n }, "node id"],
    ["cluster id with a space", { clusterId: "a b" }, "cluster id"],
    ["duplicate database", { databases: [request.databases[0], request.databases[0]] }, "unique names"],
    [
      "bad name",
      { databases: [{ db: "x-wal", pos: { txid: 0n, checksum: 0n }, recent: [] }] },
      "database name",
    ],
    [
      "TXID 0 with checksum",
      { databases: [{ db: "x", pos: { txid: 0n, checksum: 1n }, recent: [] }] },
      "history",
    ],
    [
      "files disagree with position",
      {
        databases: [
          {
            db: "x",
            pos: { txid: 2n, checksum: FLAG | 2n },
            recent: [{ minTxid: 2n, maxTxid: 2n, preApplyChecksum: FLAG, postApplyChecksum: FLAG | 9n }],
          },
        ],
      },
      "history",
    ],
  ];
  for (const [name, change, rule] of bad) {
    const err = expectCode(() => encodeStreamRequest({ ...request, ...change }), "ESTREAMENCODE");
    assert.equal(err.rule, rule, `${name}: ${err.message}`);
  }
  expectCode(
    () => encodeStreamRequest({ ...request, clusterId: "x".repeat(70000) }),
    "ESTREAMENCODE",
    "field range",
  );
  // Limits.
  const body = encodeStreamRequest(request);
  expectCode(
    () => decodeStreamRequest(body, { maxBodyBytes: 10, maxDatabases: 10, maxLinksPerDatabase: 10 }),
    "ESTREAMREQUEST",
    "body limit",
  );
  expectCode(
    () => decodeStreamRequest(body, { maxBodyBytes: 1 << 20, maxDatabases: 1, maxLinksPerDatabase: 10 }),
    "ESTREAMREQUEST",
    "database count",
  );
  const err = expectCode(
    () => decodeStreamRequest(body, { maxBodyBytes: 1 << 20, maxDatabases: 10, maxLinksPerDatabase: 1 }),
    "ESTREAMREQUEST",
    "link count",
  );
  assert.equal(err.db, "b.db");
  assert.equal(
    httpStatusOf(expectCode(() => decodeStreamRequest(new Uint8Array(9 << 20)), "ESTREAMREQUEST")),
    413,
  );
});

test("the snapshot-wanted header: round trip, absent, and every malformed value refused naming it", () => {
  const wanted = new Map([
    ["a.db", 7n],
    ['name with spaces & "quotes".db', 0xffffffffffffffffn],
  ]);
  assert.deepEqual(decodeSnapshotWantedHeader(encodeSnapshotWantedHeader(wanted)), wanted);
  assert.deepEqual(decodeSnapshotWantedHeader(undefined), new Map());
  assert.deepEqual(decodeSnapshotWantedHeader(encodeSnapshotWantedHeader(new Map())), new Map());
  // Too many to fit: the header carries what fits (the rest waits for a later stream), never too much.
  const many = new Map(Array.from({ length: 2000 }, (_, i) => [`database-${i}.db`, BigInt(i + 1)]));
  const fitted = decodeSnapshotWantedHeader(encodeSnapshotWantedHeader(many));
  assert.ok(fitted.size > 100 && fitted.size < many.size, `${fitted.size} fitted`);
  for (const [db, txid] of fitted) assert.equal(many.get(db), txid);

  const bad = [
    "%E0%A4%A", // not URI encoding
    encodeURIComponent("[1]"),
    encodeURIComponent("null"),
    encodeURIComponent("{"),
    encodeURIComponent(JSON.stringify({ "a.db": 7 })), // a number, not hex text
    encodeURIComponent(JSON.stringify({ "a.db": "0" })), // TXID 0 is no file
    encodeURIComponent(JSON.stringify({ "a.db": "7G" })),
    encodeURIComponent(JSON.stringify({ "a.db": "0123456789abcdef0" })), // 17 digits
    encodeURIComponent(JSON.stringify({ "a.db": "AB" })), // uppercase
    encodeURIComponent(JSON.stringify({ "../x": "1" })),
    encodeURIComponent(JSON.stringify({ "a.db-wal": "1" })),
    encodeURIComponent(JSON.stringify({ "": "1" })),
    "x".repeat(8193),
  ];
  for (const value of bad) {
    const err = expectCode(() => decodeSnapshotWantedHeader(value), "ESTREAMREQUEST", "snapshot wanted");
    assert.match(err.message, /Litefs-Snapshot-Wanted/);
  }
});

test("node ids and cluster ids", () => {
  assert.equal(parseNodeId(formatNodeId(0xabcdefn)), 0xabcdefn);
  assert.equal(parseNodeId("00000000000000AB"), 0xabn);
  for (const bad of [undefined, "", "abc", "0000000000000000", "00000000000000ag", "000000000000000001"]) {
    expectCode(() => parseNodeId(bad), "ESTREAMNODE");
  }
  assert.equal(clusterIdProblem(""), null);
  assert.equal(clusterIdProblem("LFSC0123456789ABCDEF"), null);
  assert.match(clusterIdProblem("x".repeat(65)) ?? "", /not 1\.\.64/);
});

test("the primary admits a replica only with the right token, ids, cluster and epoch", () => {
  const self = { nodeId: 0x99n, clusterId: request.clusterId, epoch: 7n };
  const headers = { nodeId: formatNodeId(request.nodeId), clusterId: request.clusterId };
  admitStreamRequest(headers, request, self);
  admitStreamRequest({ nodeId: headers.nodeId, clusterId: "" }, { ...request, clusterId: "" }, self);
  admitStreamRequest(headers, request, { ...self, clusterId: "" });
  const refusals: [string, () => void, string, number][] = [
    [
      "no node id header",
      () => admitStreamRequest({ ...headers, nodeId: undefined }, request, self),
      "ESTREAMNODE",
      400,
    ],
    [
      "header and body ids differ",
      () => admitStreamRequest({ ...headers, nodeId: formatNodeId(5n) }, request, self),
      "ESTREAMNODE",
      400,
    ],
    [
      "replica is the primary",
      () => admitStreamRequest(headers, request, { ...self, nodeId: request.nodeId }),
      "ESTREAMNODE",
      400,
    ],
    [
      "cluster header differs",
      () => admitStreamRequest({ ...headers, clusterId: "other" }, request, self),
      "ESTREAMCLUSTER",
      409,
    ],
    [
      "other cluster",
      () => admitStreamRequest(headers, request, { ...self, clusterId: "other" }),
      "ESTREAMCLUSTER",
      409,
    ],
    [
      "stale primary",
      () => admitStreamRequest(headers, request, { ...self, epoch: 6n }),
      "ESTREAMEPOCH",
      409,
    ],
  ];
  for (const [name, fn, code, status] of refusals) {
    const err = expectCode(fn, code);
    assert.equal(httpStatusOf(err), status, name);
  }
  checkBearerToken(undefined, null);
  checkBearerToken("Bearer s3cret", "s3cret");
  checkBearerToken("bearer s3cret ", "s3cret");
  for (const header of [
    undefined,
    "",
    "Bearer",
    "Basic s3cret",
    "Bearer s3cre",
    "Bearer s3cret2",
    "Bearer s3cret x",
  ]) {
    assert.equal(httpStatusOf(expectCode(() => checkBearerToken(header, "s3cret"), "ESTREAMAUTH")), 401);
  }
});

const begin = (fields: Partial<LtxBeginFrame>): LtxBeginFrame => ({
  type: "ltx-begin",
  db: "d",
  minTxid: 6n,
  maxTxid: 6n,
  preApplyChecksum: FLAG | 5n,
  postApplyChecksum: FLAG | 6n,
  size: null,
  snapshot: null,
  ...fields,
});

test("the replica applies an incremental file only on the position it continues", () => {
  assert.deepEqual(admitLtx(begin({}), { txid: 5n, checksum: FLAG | 5n }), { kind: "incremental" });
  expectCode(() => admitLtx(begin({}), { txid: 4n, checksum: FLAG | 5n }), "ESTREAMTXID");
  expectCode(() => admitLtx(begin({}), { txid: 6n, checksum: FLAG | 5n }), "ESTREAMTXID");
  expectCode(() => admitLtx(begin({}), null), "ESTREAMTXID");
  const err = expectCode(() => admitLtx(begin({}), { txid: 5n, checksum: FLAG | 4n }), "ESTREAMPREAPPLY");
  assert.equal(err.db, "d");
  admitEpoch({ type: "epoch", epoch: 7n, primaryNodeId: 1n }, 7n);
  admitEpoch({ type: "epoch", epoch: 8n, primaryNodeId: 1n }, 7n);
  expectCode(
    () => admitEpoch({ type: "epoch", epoch: 6n, primaryNodeId: 1n }, 7n),
    "ESTREAMEPOCH",
    "epoch fencing",
  );
});

test("a file the replica already has (its own HALT transaction coming back) is present, not an error", () => {
  const own = { minTxid: 6n, maxTxid: 6n, preApplyChecksum: FLAG | 5n, postApplyChecksum: FLAG | 6n };
  const lookups: string[] = [];
  const history = (link: typeof own | null) => (min: bigint, max: bigint) => {
    lookups.push(`${min}-${max}`);
    return link !== null && link.minTxid === min && link.maxTxid === max ? link : null;
  };
  // At that very position, or further on (its next HALT commit came first).
  assert.deepEqual(admitLtx(begin({}), { txid: 6n, checksum: FLAG | 6n }, history(own)), { kind: "present" });
  assert.deepEqual(admitLtx(begin({}), { txid: 9n, checksum: FLAG | 9n }, history(own)), { kind: "present" });
  assert.deepEqual(lookups, ["6-6", "6-6"]);
  // Another transaction at the same TXID (another branch), or no file of its own: still refused.
  for (const other of [
    { ...own, postApplyChecksum: FLAG | 7n },
    { ...own, preApplyChecksum: FLAG | 4n },
    null,
  ]) {
    expectCode(() => admitLtx(begin({}), { txid: 9n, checksum: FLAG | 9n }, history(other)), "ESTREAMTXID");
  }
  // The position's checksum says another branch, whatever the file says.
  expectCode(() => admitLtx(begin({}), { txid: 6n, checksum: FLAG | 8n }, history(own)), "ESTREAMTXID");
  // Not consulted for a file that continues the position, nor for snapshots.
  lookups.length = 0;
  assert.deepEqual(admitLtx(begin({}), { txid: 5n, checksum: FLAG | 5n }, history(own)), {
    kind: "incremental",
  });
  assert.deepEqual(lookups, []);
});

test("a snapshot replacing a diverged history tells the replica which of its TXIDs to quarantine", () => {
  const snap = (
    verdict: "shared" | "diverged" | "unverifiable",
    common: { txid: bigint; checksum: bigint } | null,
  ) =>
    begin({
      minTxid: 1n,
      maxTxid: 10n,
      preApplyChecksum: 0n,
      snapshot: { reason: "files-unavailable", verdict, common },
    });
  const at12 = { txid: 12n, checksum: FLAG | 12n };
  assert.deepEqual(admitLtx(snap("diverged", { txid: 8n, checksum: FLAG | 8n }), at12), {
    kind: "snapshot",
    quarantine: { fromTxid: 9n, toTxid: 12n, verdict: "diverged" },
  });
  assert.deepEqual(admitLtx(snap("unverifiable", null), at12), {
    kind: "snapshot",
    quarantine: { fromTxid: 1n, toTxid: 12n, verdict: "unverifiable" },
  });
  assert.deepEqual(admitLtx(snap("shared", { txid: 8n, checksum: FLAG | 8n }), at12), {
    kind: "snapshot",
    quarantine: null,
  });
  assert.deepEqual(admitLtx(snap("diverged", { txid: 8n, checksum: FLAG | 8n }), null), {
    kind: "snapshot",
    quarantine: null,
  });

  // From the planner's decision to the frame and back to the replica's quarantine range.
  const primaryFiles = [1n, 2n, 3n].map((t) => ({
    minTxid: t,
    maxTxid: t,
    preApplyChecksum: t === 1n ? 0n : FLAG | (t - 1n),
    postApplyChecksum: FLAG | t,
  }));
  const replica = { txid: 5n, checksum: FLAG | 55n };
  const recent = [
    { minTxid: 2n, maxTxid: 2n, preApplyChecksum: FLAG | 1n, postApplyChecksum: FLAG | 2n },
    { minTxid: 3n, maxTxid: 5n, preApplyChecksum: FLAG | 2n, postApplyChecksum: FLAG | 55n },
  ];
  const plan = planCatchUp({
    replica,
    replicaLinks: recent,
    primary: { txid: 3n, checksum: FLAG | 3n },
    primaryFiles,
  });
  assert.equal(plan.kind, "snapshot");
  if (plan.kind !== "snapshot") return;
  const info = snapshotInfoOf(plan);
  assert.deepEqual(info, {
    reason: "replica-ahead",
    verdict: "diverged",
    common: { txid: 2n, checksum: FLAG | 2n },
  });
  assert.equal(firstUnsharedTxid(info), 3n);
  assert.deepEqual(
    admitLtx(
      begin({ minTxid: 1n, maxTxid: 3n, preApplyChecksum: 0n, postApplyChecksum: FLAG | 3n, snapshot: info }),
      replica,
    ),
    {
      kind: "snapshot",
      quarantine: { fromTxid: 3n, toTxid: 5n, verdict: "diverged" },
    },
  );
});

test("reconnect backoff: at once after a handoff, then exponential with bounded jitter", () => {
  assert.equal(reconnectDelayMs({ kind: "end", reason: "handed-off" }, 1, 0.5), 0);
  assert.equal(reconnectDelayMs({ kind: "end", reason: "lease-lost" }, 0, 0.9), 0);
  assert.equal(reconnectDelayMs({ kind: "end", reason: "lease-lost" }, 2, 0.5), 200);
  assert.equal(reconnectDelayMs({ kind: "failure" }, 1, 0.5), 100);
  assert.equal(reconnectDelayMs({ kind: "end", reason: "shutdown" }, 1, 0.5), 100);
  let previous = 0;
  for (let failures = 1; failures < 80; failures++) {
    const middle = reconnectDelayMs({ kind: "failure" }, failures, 0.5);
    assert.ok(middle >= previous && middle <= 5000);
    assert.ok(reconnectDelayMs({ kind: "failure" }, failures, 0) >= middle * 0.8 - 1);
    assert.ok(reconnectDelayMs({ kind: "failure" }, failures, 0.999999) <= middle * 1.2 + 1);
    previous = middle;
  }
  assert.equal(previous, 5000);
  assert.throws(() => reconnectDelayMs({ kind: "failure" }, -1, 0.5), RangeError);
  assert.throws(() => reconnectDelayMs({ kind: "failure" }, 1, 1), RangeError);
});

test("an advertised URL (Litefs-Advertise-URL, /handoff's &url=) is kept only when it is http(s)", () => {
  assert.equal(httpUrlOrNull("http://10.0.0.2:20202"), "http://10.0.0.2:20202");
  assert.equal(httpUrlOrNull("https://[::1]:20202/base"), "https://[::1]:20202/base");
  for (const bad of [undefined, null, "", "10.0.0.2:20202", "ftp://h/", "http://", "javascript:x"]) {
    assert.equal(httpUrlOrNull(bad), null, String(bad));
  }
  assert.equal(httpUrlOrNull(`http://h/${"a".repeat(2048)}`), null, "longer than 2 KiB");
});
