/**
 * Ends a local connection through its writer: close() flushes, then FIN; abort() drops what is queued.
 * Either way Deno closes the connection itself, so a later conn.close() would only build a BadResource error
 * (stack and all, once per forwarded connection: measurable under connection-heavy clients). The connection
 * is closed by hand only when the writer could not do it.
 */
export async function endLocal(
  conn: Deno.Conn,
  writer: WritableStreamDefaultWriter<Uint8Array>,
  reset: boolean,
): Promise<void> {
  const ended = await (reset ? writer.abort() : writer.close()).then(() => true, () => false);
  if (ended) return;
  try {
    conn.close();
  } catch {
    // already closed
  }
}
