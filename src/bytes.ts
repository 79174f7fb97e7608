/** Byte helpers shared by the transports, the API client and the tests. */

/** One buffer holding the chunks in order (always a new copy, so callers may reuse their chunks). */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/** Writes all of bytes to the connection (conn.write may take only part of them). */
export async function writeAll(
  conn: { write(p: Uint8Array): Promise<number> },
  bytes: Uint8Array,
): Promise<void> {
  if (bytes.length === 0) return;
  // most writes take everything at once: no subarray (an allocation) for the first
  let written = await conn.write(bytes);
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}

/**
 * Writes the chunks in order: large ones (>= joinLimit) as they are, with no copy; the small ones between
 * them (frame headers, channel bytes, small messages) joined up to joinLimit, so a header never costs a TLS
 * record and a syscall of its own next to its payload.
 */
export async function writeJoiningSmall(
  conn: { write(p: Uint8Array): Promise<number> },
  chunks: readonly Uint8Array[],
  joinLimit: number,
): Promise<void> {
  let small: Uint8Array[] = [];
  let smallBytes = 0;
  const flushSmall = async () => {
    if (smallBytes) await writeAll(conn, small.length === 1 ? small[0] : concatBytes(small));
    small = [];
    smallBytes = 0;
  };
  for (const chunk of chunks) {
    if (chunk.length >= joinLimit) {
      await flushSmall();
      await writeAll(conn, chunk);
      continue;
    }
    if (smallBytes + chunk.length > joinLimit) await flushSmall();
    small.push(chunk);
    smallBytes += chunk.length;
  }
  await flushSmall();
}
