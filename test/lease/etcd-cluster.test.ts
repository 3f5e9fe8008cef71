// The etcd leaser against a real 3-member etcd cluster: the lease works through any member, and the
// loss of one member — the raft leader, and the endpoint the holder and a watcher were talking to —
// neither loses the held lease nor stops others from being refused, acquiring, or watching.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { PrimaryInfo } from "../../src/lease/leaser.js";
import { EtcdCluster } from "../support/etcd.js";
import { freshPrefix, identity, LeaserSet, pollUntil, rejectsWithCode } from "./lease-test-kit.js";

// 5 s: the raft election after the leader dies (election timeout 500 ms) must end well before the
// holder's deadline (TTL − 10 %) even on a loaded machine (with 3 s it did not, once, at load 7).
const TTL_MS = 5000;

let etcd: EtcdCluster;
before(async () => {
  etcd = await EtcdCluster.start({ members: 3, label: "lease-etcd3" });
});
after(async () => {
  await etcd?.stop();
});

/** The endpoints with member `first` at the head (the one a client tries first). */
function endpointsStartingAt(first: number): string[] {
  const all = etcd.endpoints;
  return [...all.slice(first), ...all.slice(0, first)];
}

test("the lease can be taken and seen through each member", async (t) => {
  const set = new LeaserSet();
  t.after(() => set.closeAll());
  const key = freshPrefix("members");
  const nodes = [0, 1, 2].map((i) =>
    set.etcd(`n${i}`, { endpoints: [etcd.endpoints[i]], key, ttlMs: TTL_MS }),
  );
  let previous = 0n;
  for (const [i, node] of nodes.entries()) {
    const lease = await node.acquire();
    assert.ok(lease.epoch > previous);
    previous = lease.epoch;
    for (const other of nodes) assert.equal((await other.primaryInfo())?.hostname, `n${i}`);
    await lease.release();
  }
});

test("losing one member (the leader) keeps the lease renewing, refusing, watching and acquirable", async (t) => {
  const set = new LeaserSet();
  t.after(() => set.closeAll());
  const key = freshPrefix("kill");
  const leader = await etcd.leaderIndex();
  const follower = (leader + 1) % 3;
  // The holder and the watcher talk to the leader first; the second node to a follower.
  const holder = set.etcd("holder", { endpoints: endpointsStartingAt(leader), key, ttlMs: TTL_MS });
  const second = set.etcd("second", { endpoints: endpointsStartingAt(follower), key, ttlMs: TTL_MS });
  const watcher = set.etcd("watcher", { endpoints: endpointsStartingAt(leader), key, ttlMs: TTL_MS });

  const controller = new AbortController();
  t.after(() => controller.abort());
  const seen: Array<PrimaryInfo | null> = [];
  const watching = (async () => {
    for await (const primary of watcher.watch(controller.signal)) seen.push(primary);
  })();

  const lease = await holder.acquire();
  let lostError: Error | undefined;
  lease.onLost((error) => (lostError = error));
  await pollUntil(
    "watcher sees the holder",
    async () => (seen.at(-1)?.hostname === "holder" ? true : undefined),
    5000,
  );

  await etcd.killMember(leader);
  // Across two full TTLs after the kill the holder never stops holding: renewals moved to other members.
  const until = performance.now() + 2 * TTL_MS;
  while (performance.now() < until) {
    assert.ok(lease.isHeld(), `lease lost after the member died: ${String(lostError)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal(lostError, undefined);
  await lease.renew();
  const refused = await rejectsWithCode<{ primary: PrimaryInfo } & Error>(second.acquire(), "ELEASEEXISTS");
  assert.deepEqual(refused.primary, { ...identity("holder"), epoch: lease.epoch });

  await lease.release();
  const next = await second.acquire();
  assert.ok(next.epoch > lease.epoch);
  // A node whose first endpoint is the dead member still gets answers.
  const late = set.etcd("late", { endpoints: endpointsStartingAt(leader), key, ttlMs: TTL_MS });
  assert.equal((await late.primaryInfo())?.hostname, "second");
  await rejectsWithCode(late.acquire(), "ELEASEEXISTS");

  await pollUntil(
    "watcher follows to the new holder",
    async () => (seen.at(-1)?.hostname === "second" ? true : undefined),
    5000,
  );
  controller.abort();
  await watching;
  assert.deepEqual(
    seen.filter((p) => p !== null).map((p) => p.hostname),
    ["holder", "second"],
  );
});
