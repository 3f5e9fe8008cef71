// The registry's text exposition, checked byte for byte against hand-written expectations, plus the
// rules it enforces (names, labels, values, buckets, limits) and two properties: any label value
// survives escaping, and histogram buckets agree with a naive count.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import fc from "fast-check";

import { Registry, exponentialBuckets, isMetricsError } from "../../src/metrics/index.js";
import type { MetricsErrorCode } from "../../src/metrics/index.js";

function throwsCode(fn: () => unknown, code: MetricsErrorCode): void {
  assert.throws(fn, (err: unknown) => isMetricsError(err, code));
}

describe("exposition format", () => {
  test("counters, labelled gauges and histograms render exactly (golden)", () => {
    const r = new Registry();
    const temperature = r.gaugeVec({
      name: "app_temperature_celsius",
      help: 'Temperature.\nSecond line, a \\ backslash and a "quote".',
      labelNames: ["room", "floor"],
    });
    const requests = r.counter({ name: "app_requests_total", help: "Requests served." });
    const latency = r.histogram({ name: "app_latency_seconds", help: "Latency.", buckets: [0.1, 0.5, 1] });

    requests.inc();
    requests.inc(2);
    temperature.set({ room: "b", floor: "1" }, -3.5);
    temperature.set({ room: "a", floor: "2" }, NaN);
    temperature.set({ room: "a", floor: "1" }, Infinity);
    latency.observe(0.1); // an observation equal to a bound is in that bucket (le: less or equal)
    latency.observe(0.25);
    latency.observe(2);

    assert.equal(
      r.exposition(),
      [
        "# HELP app_latency_seconds Latency.",
        "# TYPE app_latency_seconds histogram",
        'app_latency_seconds_bucket{le="0.1"} 1',
        'app_latency_seconds_bucket{le="0.5"} 2',
        'app_latency_seconds_bucket{le="1"} 2',
        'app_latency_seconds_bucket{le="+Inf"} 3',
        "app_latency_seconds_sum 2.35",
        "app_latency_seconds_count 3",
        "# HELP app_requests_total Requests served.",
        "# TYPE app_requests_total counter",
        "app_requests_total 3",
        // HELP escapes only backslash and newline; quotes stay as they are.
        '# HELP app_temperature_celsius Temperature.\\nSecond line, a \\\\ backslash and a "quote".',
        "# TYPE app_temperature_celsius gauge",
        // Label names sorted (floor before room), series sorted by label values in that order.
        'app_temperature_celsius{floor="1",room="a"} +Inf',
        'app_temperature_celsius{floor="1",room="b"} -3.5',
        'app_temperature_celsius{floor="2",room="a"} NaN',
        "",
      ].join("\n"),
    );
  });

  test("label values escape backslash, double quote and newline; nothing else", () => {
    const r = new Registry();
    r.counterVec({ name: "c_total", help: "h", labelNames: ["v"] }).inc({ v: 'a\\b"c\nd\té€' });
    assert.equal(
      r.exposition(),
      '# HELP c_total h\n# TYPE c_total counter\nc_total{v="a\\\\b\\"c\\nd\té€"} 1\n',
    );
  });

  test("labelled histograms put le last, after the sorted labels", () => {
    const r = new Registry();
    const h = r.histogramVec({ name: "op_seconds", help: "h", labelNames: ["op", "db"], buckets: [1, 2.5] });
    h.observe({ op: "commit", db: "x" }, 3);
    h.observe({ op: "commit", db: "x" }, 1);
    assert.equal(
      r.exposition(),
      [
        "# HELP op_seconds h",
        "# TYPE op_seconds histogram",
        'op_seconds_bucket{db="x",op="commit",le="1"} 1',
        'op_seconds_bucket{db="x",op="commit",le="2.5"} 1',
        'op_seconds_bucket{db="x",op="commit",le="+Inf"} 2',
        'op_seconds_sum{db="x",op="commit"} 4',
        'op_seconds_count{db="x",op="commit"} 2',
        "",
      ].join("\n"),
    );
  });

  test("values: integers, fractions, exponents, infinities, NaN", () => {
    const r = new Registry();
    const g = r.gaugeVec({ name: "g", help: "h", labelNames: ["k"] });
    const cases: [string, number, string][] = [
      ["a", 0, "0"],
      ["b", -0, "0"],
      ["c", 42, "42"],
      ["d", 0.25, "0.25"],
      ["e", 1e21, "1e+21"],
      ["f", 5e-7, "5e-7"],
      ["g", -Infinity, "-Inf"],
      ["h", 2 ** 53 + 2, "9007199254740994"],
    ];
    for (const [k, v] of cases) g.set({ k }, v);
    const lines = r.exposition().trimEnd().split("\n").slice(2);
    assert.deepEqual(
      lines,
      cases.map(([k, , text]) => `g{k="${k}"} ${text}`),
    );
  });

  test("an unlabelled metric is present at 0 from registration; a labelled one only once used", () => {
    const r = new Registry();
    r.gauge({ name: "up", help: "h" });
    const vec = r.counterVec({ name: "events_total", help: "h", labelNames: ["kind"] });
    assert.equal(r.exposition(), "# HELP up h\n# TYPE up gauge\nup 0\n");
    vec.inc({ kind: "x" });
    assert.match(r.exposition(), /events_total\{kind="x"\} 1\n/);
    assert.equal(vec.remove({ kind: "x" }), true);
    assert.equal(r.exposition(), "# HELP up h\n# TYPE up gauge\nup 0\n");
    assert.equal(new Registry().exposition(), "");
  });

  test("output does not depend on registration or first-use order", () => {
    const build = (order: number[]): string => {
      const r = new Registry();
      const make = [
        () => r.counterVec({ name: "b_total", help: "h", labelNames: ["x"] }),
        () => r.gaugeVec({ name: "a", help: "h", labelNames: ["x"] }),
        () => r.counterVec({ name: "c_total", help: "h", labelNames: ["x"] }),
      ];
      const vecs = order.map((i) => [i, make[i]()] as const).sort((p, q) => p[0] - q[0]);
      for (const value of order.map((i) => `v${i}`)) {
        for (const [, vec] of vecs) vec.labels({ x: value }).inc(1);
      }
      return r.exposition();
    };
    const first = build([0, 1, 2]);
    assert.equal(build([2, 0, 1]), first);
    assert.equal(build([1, 2, 0]), first);
    assert.deepEqual(
      first.split("\n").filter((l) => l.startsWith("# TYPE")),
      ["# TYPE a gauge", "# TYPE b_total counter", "# TYPE c_total counter"],
    );
  });
});

describe("gauges read at scrape time", () => {
  test("an unlabelled gauge's read callback runs at each exposition", () => {
    const r = new Registry();
    let lag = 1.5;
    r.gauge({ name: "lag_seconds", help: "h", read: () => lag });
    assert.match(r.exposition(), /^lag_seconds 1\.5$/m);
    lag = 3;
    assert.match(r.exposition(), /^lag_seconds 3$/m);
  });

  test("a gauge vector's collect callback sets and removes series", () => {
    const r = new Registry();
    const sizes = new Map([
      ["b.db", 8192],
      ["a.db", 4096],
    ]);
    r.gaugeVec({
      name: "db_bytes",
      help: "h",
      labelNames: ["db"],
      collect: (vec) => {
        vec.clear();
        for (const [db, bytes] of sizes) vec.set({ db }, bytes);
      },
    });
    assert.equal(
      r.exposition(),
      '# HELP db_bytes h\n# TYPE db_bytes gauge\ndb_bytes{db="a.db"} 4096\ndb_bytes{db="b.db"} 8192\n',
    );
    sizes.delete("a.db");
    assert.equal(r.exposition(), '# HELP db_bytes h\n# TYPE db_bytes gauge\ndb_bytes{db="b.db"} 8192\n');
  });

  test("a throwing callback fails the exposition with EMETRICCOLLECT naming the metric", () => {
    const r = new Registry();
    r.gauge({
      name: "broken",
      help: "h",
      read: () => {
        throw new Error("source gone");
      },
    });
    assert.throws(
      () => r.exposition(),
      (err: unknown) =>
        isMetricsError(err, "EMETRICCOLLECT") && err.metric === "broken" && /source gone/.test(err.message),
    );
  });
});

describe("rules", () => {
  test("metric and label names", () => {
    const r = new Registry();
    throwsCode(() => r.counter({ name: "1abc", help: "h" }), "EMETRICNAME");
    throwsCode(() => r.counter({ name: "a-b", help: "h" }), "EMETRICNAME");
    throwsCode(() => r.counter({ name: "", help: "h" }), "EMETRICNAME");
    throwsCode(() => r.counterVec({ name: "x", help: "h", labelNames: ["a:b"] }), "EMETRICNAME");
    throwsCode(() => r.counterVec({ name: "x", help: "h", labelNames: ["__x"] }), "EMETRICNAME");
    throwsCode(() => r.counterVec({ name: "x", help: "h", labelNames: ["a", "a"] }), "EMETRICNAME");
    throwsCode(
      () => r.histogramVec({ name: "x", help: "h", labelNames: ["le"], buckets: [1] }),
      "EMETRICNAME",
    );
    r.counter({ name: "ns:sub_total", help: "colons are allowed in metric names" });
    assert.deepEqual(r.names(), ["ns:sub_total"]);
  });

  test("names, and a histogram's sample names, are unique per registry", () => {
    const r = new Registry();
    r.counter({ name: "x", help: "h" });
    throwsCode(() => r.gauge({ name: "x", help: "h" }), "EMETRICDUPLICATE");
    throwsCode(() => r.histogram({ name: "x", help: "h", buckets: [1] }), "EMETRICDUPLICATE");
    r.histogram({ name: "lat", help: "h", buckets: [1] });
    throwsCode(() => r.counter({ name: "lat_sum", help: "h" }), "EMETRICDUPLICATE");
    throwsCode(() => r.gauge({ name: "lat_bucket", help: "h" }), "EMETRICDUPLICATE");
    r.gauge({ name: "y_count", help: "h" });
    throwsCode(() => r.histogram({ name: "y", help: "h", buckets: [1] }), "EMETRICDUPLICATE");
    // Refused registrations leave nothing behind.
    assert.deepEqual(r.names(), ["lat", "x", "y_count"]);
    // Two registries are independent: nothing is global.
    new Registry().counter({ name: "x", help: "h" });
  });

  test("label values must be exactly the label names, as strings", () => {
    const r = new Registry();
    const vec = r.counterVec({ name: "x", help: "h", labelNames: ["db", "kind"] });
    throwsCode(() => vec.inc({ db: "a" } as never), "EMETRICLABELS");
    throwsCode(() => vec.inc({ db: "a", kind: "b", extra: "c" } as never), "EMETRICLABELS");
    throwsCode(() => vec.inc({ db: "a", kind: 1 } as never), "EMETRICLABELS");
    throwsCode(() => vec.inc({ db: "a", other: "b" } as never), "EMETRICLABELS");
    vec.inc({ kind: "b", db: "a" });
    assert.equal(vec.labels({ db: "a", kind: "b" }).value, 1);
    assert.equal(vec.seriesCount, 1);
  });

  test("counters only go up by finite steps", () => {
    const c = new Registry().counter({ name: "x", help: "h" });
    throwsCode(() => c.inc(-1), "EMETRICVALUE");
    throwsCode(() => c.inc(NaN), "EMETRICVALUE");
    throwsCode(() => c.inc(Infinity), "EMETRICVALUE");
    c.inc(0);
    c.inc(0.5);
    assert.equal(c.value, 0.5);
  });

  test("histogram buckets and observations", () => {
    const r = new Registry();
    throwsCode(() => r.histogram({ name: "a", help: "h", buckets: [] }), "EMETRICBUCKETS");
    throwsCode(() => r.histogram({ name: "b", help: "h", buckets: [1, 1] }), "EMETRICBUCKETS");
    throwsCode(() => r.histogram({ name: "c", help: "h", buckets: [2, 1] }), "EMETRICBUCKETS");
    throwsCode(() => r.histogram({ name: "d", help: "h", buckets: [1, Infinity] }), "EMETRICBUCKETS");
    throwsCode(() => r.histogram({ name: "e", help: "h", buckets: [NaN] }), "EMETRICBUCKETS");
    const h = r.histogram({ name: "f", help: "h", buckets: [-1, 0, 1] });
    throwsCode(() => h.observe(NaN), "EMETRICVALUE");
    h.observe(-Infinity);
    h.observe(-1);
    h.observe(0.5);
    h.observe(Infinity);
    assert.deepEqual(h.cumulativeCounts(), [2, 2, 3, 4]);
    assert.equal(h.count, 4);
    assert.deepEqual(exponentialBuckets(0.001, 10, 4), [0.001, 0.01, 0.1, 1]);
    throwsCode(() => exponentialBuckets(0, 2, 3), "EMETRICBUCKETS");
  });

  test("a metric refuses label sets beyond its limit", () => {
    const vec = new Registry().counterVec({ name: "x", help: "h", labelNames: ["k"], maxSeries: 2 });
    vec.inc({ k: "a" });
    vec.inc({ k: "b" });
    vec.inc({ k: "a" }); // an existing series is not a new one
    throwsCode(() => vec.inc({ k: "c" }), "EMETRICCARDINALITY");
    vec.remove({ k: "a" });
    vec.inc({ k: "c" });
    assert.equal(vec.seriesCount, 2);
  });
});

describe("properties", () => {
  /** Reads back one label value from the text format (the inverse of its escaping). */
  function unescapeLabelValue(text: string): string {
    return text.replace(/\\(.)/gs, (_m, c: string) => (c === "n" ? "\n" : c));
  }

  test("any label value survives escaping and is read back unchanged", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "binary", maxLength: 40 }),
        fc.string({ unit: "binary", maxLength: 40 }),
        (a, b) => {
          const r = new Registry();
          r.gaugeVec({ name: "g", help: "h", labelNames: ["a", "b"] }).set({ a, b }, 1);
          const sample = r.exposition().split("\n")[2];
          // Each line is one sample: escaping leaves no raw newline inside a value.
          const m = /^g\{a="((?:[^"\\\n]|\\.)*)",b="((?:[^"\\\n]|\\.)*)"\} 1$/s.exec(sample);
          assert.ok(m, `unparsable sample line ${JSON.stringify(sample)}`);
          assert.equal(unescapeLabelValue(m[1]), a);
          assert.equal(unescapeLabelValue(m[2]), b);
        },
      ),
    );
  });

  test("histogram buckets, sum and count agree with a naive count", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }), {
          minLength: 1,
          maxLength: 8,
        }),
        fc.array(fc.double({ noNaN: true, min: -2e6, max: 2e6 }), { maxLength: 60 }),
        (rawBounds, values) => {
          const bounds = [...new Set(rawBounds.map((b) => (Object.is(b, -0) ? 0 : b)))].sort((x, y) => x - y);
          const h = new Registry().histogram({ name: "h", help: "h", buckets: bounds });
          for (const v of values) h.observe(v);
          const want = [...bounds.map((b) => values.filter((v) => v <= b).length), values.length];
          assert.deepEqual(h.cumulativeCounts(), want);
          assert.equal(h.count, values.length);
          assert.equal(
            h.sum,
            values.reduce((s, v) => s + v, 0),
          );
        },
      ),
    );
  });
});
