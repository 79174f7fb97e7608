/**
 * A TCP relay that can stall, run as its own process so that pumping every byte of the clients under
 * test does not compete with the test's own request loops for one JavaScript thread. While stalled it
 * keeps every connection open and accepts new ones, but moves no byte (a VPN or Wi-Fi that silently drops
 * packets); on resume the held bytes flow on, as after TCP retransmits.
 *
 * Usage: deno run -A _stall_relay.ts TARGET_PORT — prints `listening PORT`, then reads `stall`/`resume`
 * lines on stdin and answers each with `ok`.
 */

const target = { hostname: "127.0.0.1", port: Number(Deno.args[0]) };
let gate: PromiseWithResolvers<void> | undefined;

async function pipe(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(64 * 1024);
  try {
    while (true) {
      const n = await from.read(buffer);
      if (n === null) break;
      while (gate) await gate.promise;
      let written = 0;
      while (written < n) written += await to.write(buffer.subarray(written, n));
    }
  } catch {
    // reset by one side
  }
  for (const conn of [from, to]) {
    try {
      conn.close();
    } catch {
      // closed already
    }
  }
}

const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
(async () => {
  for await (const client of listener) {
    Deno.connect(target).then((server) => {
      client.setNoDelay(true);
      server.setNoDelay(true);
      pipe(client, server);
      pipe(server, client);
    }, () => client.close());
  }
})();
console.log(`listening ${(listener.addr as Deno.NetAddr).port}`);

for await (const line of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  for (const command of line.split("\n").map((l) => l.trim()).filter(Boolean)) {
    if (command === "stall") gate ??= Promise.withResolvers();
    if (command === "resume") {
      gate?.resolve();
      gate = undefined;
    }
    console.log("ok");
  }
}
Deno.exit(0);
