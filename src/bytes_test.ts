import assert from "node:assert/strict";
import { concatBytes, writeJoiningSmall } from "./bytes.ts";

/** A connection that records each write, and takes at most `most` bytes per write (a short write). */
function recorder(most = Infinity) {
  const writes: Uint8Array[] = [];
  return {
    writes,
    write(p: Uint8Array): Promise<number> {
      const n = Math.min(p.length, most);
      writes.push(p.slice(0, n));
      return Promise.resolve(n);
    },
  };
}

const filled = (n: number, value: number) => new Uint8Array(n).fill(value);

Deno.test("writeJoiningSmall: small chunks are joined up to the limit, large ones go out on their own", async () => {
  const conn = recorder();
  const chunks = [filled(2, 1), filled(3, 2), filled(20, 3), filled(4, 4), filled(5, 5), filled(6, 6)];
  await writeJoiningSmall(conn, chunks, 10);
  assert.deepEqual(conn.writes.map((w) => w.length), [5, 20, 9, 6]);
  assert.deepEqual(concatBytes(conn.writes), concatBytes(chunks));
});

Deno.test("writeJoiningSmall: short writes are completed, in order", async () => {
  const conn = recorder(7);
  const chunks = [filled(3, 1), filled(30, 2), filled(9, 3)];
  await writeJoiningSmall(conn, chunks, 10);
  assert.deepEqual(concatBytes(conn.writes), concatBytes(chunks));
});
