/**
 * TCP_NODELAY and a tuned TCP keepalive on a Deno TCP or TLS connection, through libc's setsockopt.
 *
 * Why: Deno's native TLS is the only one that can present a client certificate *and* stop reading when kf
 * stops (`node:tls` keeps reading after `pause()`), and it costs a fraction of `node:tls`'s CPU per message.
 * But `Deno.connectTls` offers no `setNoDelay`, and without it every small write that follows another waits
 * for the server's delayed ACK (~40 ms), and `Deno.startTls` (which could start from a TCP connection that
 * has it) presents no client certificate. The TLS connection hides its descriptor, so it is found by its
 * local and remote ports (getsockname/getpeername over the open descriptors).
 *
 * The keepalive is tuned so that the kernel finds a dead path (laptop sleep, VPN switch, a dropped NAT entry)
 * within about half a minute, as kf's pings did: probes after 15 s of silence, and the connection fails once
 * 30 s pass without an answer (also with data unacknowledged, Linux's TCP_USER_TIMEOUT). That costs kf no
 * CPU: hundreds of idle forwarded connections each woke kf for a ping every 20 s (~0.2 ms each, measured).
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
/** IPPROTO_TCP options of the keepalive: idle seconds before probing, seconds between probes, probes. */
const KEEPALIVE_NAMES: Partial<
  Record<typeof Deno.build.os, { idle: number; interval: number; count: number; userTimeout?: number }>
> = {
  linux: { idle: 4, interval: 5, count: 6, userTimeout: 18 },
  darwin: { idle: 0x10, interval: 0x101, count: 0x102 },
};
/** When the kernel probes and gives up (see the top of this file). */
export const KERNEL_KEEPALIVE = Object.freeze({ idleS: 15, intervalS: 5, count: 3, userTimeoutMs: 30_000 });
/** The longest a dead path goes unnoticed with that keepalive. */
export const KERNEL_DEAD_PATH_MS =
  (KERNEL_KEEPALIVE.idleS + KERNEL_KEEPALIVE.intervalS * KERNEL_KEEPALIVE.count) *
  1000;

/** What tune() achieved: TCP_NODELAY, and whether the kernel now finds a dead path on its own. */
export interface Tuned {
  noDelay: boolean;
  kernelWatched: boolean;
}

/** A socket's options as the kernel has them (for tests and diagnostics). */
export interface SocketState {
  noDelay: boolean;
  keepAlive: boolean;
  /** TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT; TCP_USER_TIMEOUT in ms (0 where the OS has none). */
  keepIdleS: number;
  keepIntervalS: number;
  keepCount: number;
  userTimeoutMs: number;
}
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
  readonly #keepAliveNames: { idle: number; interval: number; count: number; userTimeout?: number };
  readonly #address = new Uint8Array(128);
  readonly #length = new Uint32Array(1);
  readonly #value = new Int32Array(1);
  /** Where the last search ended: new descriptors are usually near the last one found. */
  #hint = 3;

  private constructor(
    libc: Deno.DynamicLibrary<typeof SYMBOLS>,
    keepAlive: { level: number; keepAlive: number },
    keepAliveNames: { idle: number; interval: number; count: number; userTimeout?: number },
  ) {
    this.#libc = libc;
    this.#keepAlive = keepAlive;
    this.#keepAliveNames = keepAliveNames;
  }

  /** Loads libc's socket calls; undefined where that is not possible (other OS, no FFI permission). */
  static open(): SocketOptions | undefined {
    const name = LIBC[Deno.build.os];
    const keepAlive = SOCKET_LEVEL[Deno.build.os];
    const keepAliveNames = KEEPALIVE_NAMES[Deno.build.os];
    if (!name || !keepAlive || !keepAliveNames) return undefined;
    try {
      return new SocketOptions(Deno.dlopen(name, SYMBOLS), keepAlive, keepAliveNames);
    } catch {
      return undefined;
    }
  }

  /**
   * Sets TCP_NODELAY and the keepalive of KERNEL_KEEPALIVE on the connection's socket. Undefined when its
   * descriptor was not found; false fields for what the kernel refused (the connection works regardless).
   */
  tune(conn: Deno.Conn): Tuned | undefined {
    const fd = this.#descriptor(conn);
    if (fd === undefined) return undefined;
    this.#hint = fd;
    const names = this.#keepAliveNames;
    const noDelay = this.#set(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    const kernelWatched = this.#set(fd, this.#keepAlive.level, this.#keepAlive.keepAlive, 1) &&
      this.#set(fd, IPPROTO_TCP, names.idle, KERNEL_KEEPALIVE.idleS) &&
      this.#set(fd, IPPROTO_TCP, names.interval, KERNEL_KEEPALIVE.intervalS) &&
      this.#set(fd, IPPROTO_TCP, names.count, KERNEL_KEEPALIVE.count);
    if (names.userTimeout !== undefined) {
      this.#set(fd, IPPROTO_TCP, names.userTimeout, KERNEL_KEEPALIVE.userTimeoutMs);
    }
    return { noDelay, kernelWatched };
  }

  /** The connection's socket options as the kernel has them; undefined: socket not found. */
  read(conn: Deno.Conn): SocketState | undefined {
    const fd = this.#descriptor(conn);
    if (fd === undefined) return undefined;
    const names = this.#keepAliveNames;
    return {
      noDelay: this.#get(fd, IPPROTO_TCP, TCP_NODELAY) !== 0,
      keepAlive: this.#get(fd, this.#keepAlive.level, this.#keepAlive.keepAlive) !== 0,
      keepIdleS: this.#get(fd, IPPROTO_TCP, names.idle),
      keepIntervalS: this.#get(fd, IPPROTO_TCP, names.interval),
      keepCount: this.#get(fd, IPPROTO_TCP, names.count),
      userTimeoutMs: names.userTimeout === undefined ? 0 : this.#get(fd, IPPROTO_TCP, names.userTimeout),
    };
  }

  #descriptor(conn: Deno.Conn): number | undefined {
    const local = conn.localAddr as Deno.NetAddr;
    const remote = conn.remoteAddr as Deno.NetAddr;
    // a connection from Deno.startTls names no transport in its addresses: a port is what tells TCP
    if (typeof local.port !== "number" || typeof remote.port !== "number") return undefined;
    return this.#find(endpoints(local, remote));
  }

  #set(fd: number, level: number, name: number, value: number): boolean {
    this.#value[0] = value;
    return this.#libc.symbols.setsockopt(fd, level, name, this.#value, 4) === 0;
  }

  /** An int option's value; -1 when the kernel refused to say. */
  #get(fd: number, level: number, name: number): number {
    this.#length[0] = 4;
    return this.#libc.symbols.getsockopt(fd, level, name, this.#value, this.#length) === 0
      ? this.#value[0]
      : -1;
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
