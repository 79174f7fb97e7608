/** Test program: warms up, releases its code pages, then keeps working; prints RSS figures as JSON. */
import { releaseCodePages } from "../code_pages.ts";

function rss(): { file: number; anon: number } {
  const status = Deno.readTextFileSync("/proc/self/status");
  const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1]) * 1024;
  return { file: kib("RssFile"), anon: kib("RssAnon") };
}

// start-up work of the kind kf does: modules, JSON, a TCP connection
const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const dialled = Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
const accepted = await listener.accept();
(await dialled).close();
accepted.close();
const before = rss();
const released = releaseCodePages();
const after = rss();
// the runtime keeps working: a new connection, crypto, compilation of new code
const again = Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
const peer = await listener.accept();
const conn = await again;
await conn.write(new TextEncoder().encode("ping"));
const buffer = new Uint8Array(4);
const read = await peer.read(buffer);
conn.close();
peer.close();
listener.close();
const digest = await crypto.subtle.digest("SHA-256", buffer);
const compiled = new Function("a", "b", "return a * b")(6, 7);
console.log(JSON.stringify({
  before,
  after,
  released,
  echoed: new TextDecoder().decode(buffer.subarray(0, read ?? 0)),
  digestBytes: digest.byteLength,
  compiled,
}));
