/**
 * Binds one local port of a forward on every host its addresses stand for (`localhost` is 127.0.0.1 and
 * ::1), with the same port number on each, as `kubectl port-forward` does; a free port (0) is picked on
 * the first host and then asked for on the others.
 */

import type { ListenHost } from "../config/mod.ts";

export interface BoundListener {
  hostname: string;
  listener: Deno.TcpListener;
}

/** A host could not be bound; `cause` is the error from the OS. */
export class ListenFailure extends Error {
  override name = "ListenFailure";
  readonly hostname: string;
  readonly port: number;

  constructor(hostname: string, port: number, cause: unknown) {
    super(`cannot listen on ${hostname}:${port}`, { cause });
    this.hostname = hostname;
    this.port = port;
  }
}

export type ListenFn = (options: Deno.TcpListenOptions & { transport: "tcp" }) => Deno.TcpListener;

/** How often a free port is picked again when it turns out to be taken on one of the other hosts. */
const FREE_PORT_ATTEMPTS = 5;

/**
 * Listens on `port` on every host. Hosts marked skipIfUnavailable (::1 from localhost) are left out when
 * the machine has no IPv6 loopback; every other failure closes what was bound and throws ListenFailure.
 */
export function listenOnHosts(
  hosts: readonly ListenHost[],
  port: number,
  listen: ListenFn = Deno.listen,
): { port: number; listeners: BoundListener[] } {
  for (let attempt = 1;; attempt++) {
    const bound: BoundListener[] = [];
    let chosen = port;
    try {
      for (const host of hosts) {
        let listener: Deno.TcpListener;
        try {
          listener = listen({ hostname: host.hostname, port: chosen, transport: "tcp" });
        } catch (error) {
          if (host.skipIfUnavailable && isUnavailableAddress(error)) continue;
          throw new ListenFailure(host.hostname, chosen, error);
        }
        bound.push({ hostname: host.hostname, listener });
        if (chosen === 0) chosen = (listener.addr as Deno.NetAddr).port;
      }
      return { port: chosen, listeners: bound };
    } catch (error) {
      for (const { listener } of bound) listener.close();
      // the free port the OS gave us on the first host may be taken on another: pick again
      const pickAgain = port === 0 && bound.length > 0 && error instanceof ListenFailure &&
        error.cause instanceof Deno.errors.AddrInUse && attempt < FREE_PORT_ATTEMPTS;
      if (!pickAgain) throw error;
    }
  }
}

/** The address does not exist on this machine (no IPv6 loopback, or IPv6 disabled). */
function isUnavailableAddress(error: unknown): boolean {
  if (error instanceof Deno.errors.AddrNotAvailable) return true;
  // EAFNOSUPPORT (97 on Linux, 47 on macOS) when the kernel has IPv6 turned off entirely
  return error instanceof Error && /address family not supported|os error (97|47)\b/i.test(error.message);
}
