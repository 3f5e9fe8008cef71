import assert from "node:assert/strict";
import { test } from "node:test";
import { parseHostPort } from "../../src/config/host-port.js";

test("Go host:port forms", () => {
  assert.deepEqual(parseHostPort(":20202"), { ok: true, host: "", port: 20202 });
  assert.deepEqual(parseHostPort("localhost:8080"), { ok: true, host: "localhost", port: 8080 });
  assert.deepEqual(parseHostPort("10.0.0.1:0"), { ok: true, host: "10.0.0.1", port: 0 });
  assert.deepEqual(parseHostPort("[::1]:65535"), { ok: true, host: "::1", port: 65535 });
  assert.deepEqual(parseHostPort("[::]:1"), { ok: true, host: "::", port: 1 });
});

test("bad addresses say what is wrong", () => {
  const reason = (addr: string) => {
    const result = parseHostPort(addr);
    assert.ok(!result.ok);
    return result.reason;
  };
  assert.match(reason("20202"), /expected host:port/);
  assert.match(reason("localhost"), /expected host:port/);
  assert.match(reason(":http"), /port must be a number/);
  assert.match(reason(":65536"), /port must be a number from 0 to 65535/);
  assert.match(reason("host:"), /port must be a number/);
  assert.match(reason("::1:80"), /IPv6 host needs brackets/);
  assert.match(reason("[::1"), /missing "\]"/);
  assert.match(reason("[::1]80"), /expected ":port"/);
});
