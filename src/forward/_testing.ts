/** Test helpers for the forward engine's unit tests: a real loopback TCP pair and a polling wait. */

/** Both ends of one loopback TCP connection: `local` for the code under test, `client` for the test. */
export async function loopbackPair(): Promise<{ local: Deno.TcpConn; client: Deno.TcpConn }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const connecting = Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    const local = await listener.accept();
    return { local, client: await connecting };
  } finally {
    listener.close();
  }
}

/** Waits until check() holds (code under test runs on real sockets, in real time); throws after `ms`. */
export async function until(check: () => boolean, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
