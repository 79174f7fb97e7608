// Node's fetch (undici, keep-alive) at 20 req/s until a stop file exists: GET / and POST /count?key=KEY
// with an Idempotency-Key, alternating. Prints one JSON line: requests, failed, posts_ok, errors.
import { existsSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";

const [base, key, stop] = process.argv.slice(2);
const result = { requests: 0, failed: 0, posts_ok: 0, errors: [] };
for (let i = 1; !existsSync(stop); i++) {
  const started = performance.now();
  const post = i % 2 === 0;
  try {
    const response = post
      ? await fetch(`${base}/count?key=${key}`, {
        method: "POST",
        body: "x",
        headers: { "Idempotency-Key": randomUUID() },
        signal: AbortSignal.timeout(35_000),
      })
      : await fetch(`${base}/`, { signal: AbortSignal.timeout(35_000) });
    const text = await response.text();
    if (response.status !== 200) throw new Error(`${response.status} ${text.trim().slice(0, 200)}`);
    if (post) result.posts_ok++;
  } catch (error) {
    result.failed++;
    result.errors.push(String(error.cause ?? error).slice(0, 300));
  }
  result.requests++;
  await sleep(Math.max(0, 50 - (performance.now() - started)));
}
console.log(JSON.stringify(result));
