/**
 * TCP_NODELAY and SO_KEEPALIVE on a `Deno.connectTls` connection, through libc's setsockopt.
 *
 * Why: Deno's native TLS is the only one that can present a client certificate *and* stop reading when kf
 * stops (`node:tls` keeps reading after `pause()`), and it costs a fraction of `node:tls`'s CPU per message.
 * But `Deno.connectTls` offers no `setNoDelay`, and without it every small write that follows another waits
 * for the server's delayed ACK (~40 ms), and `Deno.startTls` (which could start from a TCP connection that
 * has it) presents no client certificate. The TLS connection hides its descriptor, so it is found by its
 * local and remote ports (getsockname/getpeername over the open descriptors).
 *
 * Linux and macOS only (where libc's names and these option numbers are known); elsewhere, or without the
 * FFI permission, `open()` returns undefined and the caller stays on `node:tls`.
 */

const LIBC: Partial<Record<typeof Deno.build.os, string>> = {
  linux: "libc.so.6",
  darwin: "libSystem.B.dylib",
};
/** Option levels and names: IPPROTO_TCP and TCP_NODELAY are the same on both; SOL_SOCKET differs. */
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
const SOCKET_LEVEL: Partial<Record<typeof Deno.build.os, { level: number; keepAlive: number }>> = {
  linux: { level: 1, keepAlive: 9 },
  darwin: { level: 0xffff, keepAlive: 0x0008 },
};
/** Descriptors scanned for the connection; kf holds a few per forwarded connection. */
const MAX_DESCRIPTOR = 1 << 16;

const SYMBOLS = {
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getpeername: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
} as const;

export class SocketOptions {
  readonly #libc: Deno.DynamicLibrary<typeof SYMBOLS>;
  readonly #keepAlive: { level: number; keepAlive: number };
  readonly #address = new Uint8Array(128);
  readonly #length = new Uint32Array(1);
  readonly #one = new Int32Array([1]);
  /** Where the last search ended: new descriptors are usually near the last one found. */
  #hint = 3;

  private constructor(
    libc: Deno.DynamicLibrary<typeof SYMBOLS>,
    keepAlive: { level: number; keepAlive: number },
  ) {
    this.#libc = libc;
    this.#keepAlive = keepAlive;
  }

  /** Loads libc's socket calls; undefined where that is not possible (other OS, no FFI permission). */
  static open(): SocketOptions | undefined {
    const name = LIBC[Deno.build.os];
    const keepAlive = SOCKET_LEVEL[Deno.build.os];
    if (!name || !keepAlive) return undefined;
    try {
      return new SocketOptions(Deno.dlopen(name, SYMBOLS), keepAlive);
    } catch {
      return undefined;
    }
  }

  /**
   * Sets TCP_NODELAY and SO_KEEPALIVE on the connection's socket. False when its descriptor was not found
   * or the kernel refused (the connection then works, with Nagle's algorithm).
   */
  tune(conn: Deno.Conn): boolean {
    const local = conn.localAddr as Deno.NetAddr;
    const remote = conn.remoteAddr as Deno.NetAddr;
    if (local.transport !== "tcp" || remote.transport !== "tcp") return false;
    const fd = this.#find(endpoints(local, remote));
    if (fd === undefined) return false;
    this.#hint = fd;
    const symbols = this.#libc.symbols;
    const noDelay = symbols.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, this.#one, 4) === 0;
    symbols.setsockopt(fd, this.#keepAlive.level, this.#keepAlive.keepAlive, this.#one, 4);
    return noDelay;
  }

  /** The connection's TCP_NODELAY and SO_KEEPALIVE as the kernel has them; undefined: socket not found. */
  read(conn: Deno.Conn): { noDelay: boolean; keepAlive: boolean } | undefined {
    const local = conn.localAddr as Deno.NetAddr;
    const remote = conn.remoteAddr as Deno.NetAddr;
    const fd = this.#find(endpoints(local, remote));
    if (fd === undefined) return undefined;
    const value = new Int32Array(1);
    const length = new Uint32Array(1);
    const option = (level: number, name: number): boolean => {
      length[0] = 4;
      return this.#libc.symbols.getsockopt(fd, level, name, value, length) === 0 && value[0] !== 0;
    };
    return {
      noDelay: option(IPPROTO_TCP, TCP_NODELAY),
      keepAlive: option(this.#keepAlive.level, this.#keepAlive.keepAlive),
    };
  }

  /** The descriptor of the socket with these endpoints: from just below the hint up, then the rest. */
  #find(wanted: Endpoints): number | undefined {
    const start = Math.max(3, this.#hint - 64);
    let misses = 0;
    // descriptors are handed out lowest-free, so a long run of closed ones means the end of the open ones
    for (let fd = start; fd < MAX_DESCRIPTOR && misses < 256; fd++) {
      const found = this.#matches(fd, wanted);
      if (found) return fd;
      misses = found === undefined ? misses + 1 : 0;
    }
    for (let fd = 3; fd < start; fd++) if (this.#matches(fd, wanted)) return fd;
    return undefined;
  }

  /** True: this socket; false: another socket; undefined: no socket there (closed or not one). */
  #matches(fd: number, wanted: Endpoints): boolean | undefined {
    const symbols = this.#libc.symbols;
    this.#length[0] = this.#address.length;
    if (symbols.getsockname(fd, this.#address, this.#length) !== 0) return undefined;
    // sockaddr_in is 16 bytes and sockaddr_in6 28, and both keep the port big-endian at bytes 2-3, on Linux
    // and macOS alike
    if (this.#length[0] !== wanted.addressLength || this.#port() !== wanted.localPort) return false;
    this.#length[0] = this.#address.length;
    if (symbols.getpeername(fd, this.#address, this.#length) !== 0) return false;
    return this.#length[0] === wanted.addressLength && this.#port() === wanted.remotePort;
  }

  #port(): number {
    return (this.#address[2] << 8) | this.#address[3];
  }

  close(): void {
    this.#libc.close();
  }
}

/** What identifies a connection's socket here: its address family (by sockaddr size) and both ports. */
interface Endpoints {
  addressLength: number;
  localPort: number;
  remotePort: number;
}

function endpoints(local: Deno.NetAddr, remote: Deno.NetAddr): Endpoints {
  return {
    addressLength: local.hostname.includes(":") ? 28 : 16,
    localPort: local.port,
    remotePort: remote.port,
  };
}
